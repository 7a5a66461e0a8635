"""Exporting to ONNX: the graph computes PyTorch's logits, int8 keeps the accuracy, predict runs the export
without importing torch, and stale or missing exports are clear errors."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.config import TokenizerConfig
from llmcls.data.batching import pad_batch
from llmcls.data.prepare import encode_texts
from llmcls.data.readers import read_examples
from llmcls.data.tokenize import Tokenizer
from llmcls.data.vocab import Vocab
from llmcls.errors import ExportError
from llmcls.export.graph import build_onnx_model
from llmcls.export.write import export_run
from llmcls.inference.forward import batched_logits
from llmcls.inference.onnx_forward import OnnxClassifier
from llmcls.inference.predict import Predictor
from llmcls.inference.scoring import probabilities
from llmcls.model import LstmClassifier, ModelArgs
from llmcls.run.layout import EXPORT_MANIFEST as MANIFEST
from support.cold import cold_predict
from support.cpu import cpu_runs_bf16
from support.paths import FIXTURES

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fixture_batch():
    """48 real SST-2 texts as they come in the file (lengths 2 to 50 in one batch), and a vocabulary of them."""
    texts = read_examples(FIXTURES / "sst2_valid.csv").texts[:48]
    tokenizer = Tokenizer(TokenizerConfig())
    tokenized = tokenizer.tokenize_many(texts)
    vocab = Vocab.build_from(tokenized, max_size=300)
    encoded = encode_texts(tokenizer, vocab, texts)
    token_ids, lengths = pad_batch(encoded, np.arange(len(texts)), vocab.pad_index)
    assert lengths.min() <= 5 and lengths.max() >= 30
    return token_ids, lengths, len(vocab)


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "last_max"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_onnx_logits_equal_pytorch(fixture_batch, pooling, num_layers, bidirectional):
    token_ids, lengths, vocab_size = fixture_batch
    torch.manual_seed(num_layers)
    # the last 40 ids index fixed pretrained rows; 3 outputs for max/mean (cross-entropy), 1 logit otherwise
    args = ModelArgs(
        vocab_size=vocab_size - 40,
        fixed_vocab_size=40,
        embedding_dim=16,
        hidden_size=12,
        num_outputs=3 if pooling in ("max", "mean") else 1,
        num_layers=num_layers,
        bidirectional=bidirectional,
        pooling=pooling,
        lstm_dropout=0.3,
    )
    assert_onnx_equals_torch(args, token_ids, lengths)


@pytest.mark.parametrize("pooling,num_outputs", [("last", 1), ("last_max", 4)])
def test_onnx_wide_branch_equals_pytorch(fixture_batch, pooling, num_outputs):
    """The wide branch's hashed bigrams and masked mean are the same in the graph: few buckets, so that the hash
    wraps around and collides."""
    token_ids, lengths, vocab_size = fixture_batch
    torch.manual_seed(5)
    args = ModelArgs(
        vocab_size=vocab_size - 40,
        fixed_vocab_size=40,
        embedding_dim=16,
        hidden_size=12,
        num_outputs=num_outputs,
        pooling=pooling,
        wide_buckets=97,
        wide_dropout=0.5,
    )
    assert_onnx_equals_torch(args, token_ids, lengths)


def assert_onnx_equals_torch(args: ModelArgs, token_ids: np.ndarray, lengths: np.ndarray) -> None:
    """The exported graph of a randomly initialised `LstmClassifier(args)` gives its logits, whatever the padding."""
    model = LstmClassifier(args).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init, so that every gate matters
            p.uniform_(-0.6, 0.6)
    weights = {name: t.numpy() for name, t in model.state_dict().items()}
    session = onnxruntime.InferenceSession(
        build_onnx_model(args, weights).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    with torch.no_grad():
        expected = model(torch.from_numpy(token_ids), torch.from_numpy(lengths)).numpy()
    got = session.run(None, {"token_ids": token_ids, "lengths": lengths})[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.1  # the comparison is not between near-zero numbers

    # the padding ids do not matter, and neither do extra padded steps
    garbage = np.where(
        np.arange(token_ids.shape[1] + 3)[None, :] < lengths[:, None], np.pad(token_ids, ((0, 0), (0, 3))), 7
    )
    again = session.run(None, {"token_ids": garbage, "lengths": lengths})[0]
    np.testing.assert_allclose(again, expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def exported(trained_sst2, tmp_path_factory):
    """A copy of the shared tiny SST-2 run (so that other tests keep predicting with torch), exported with int8."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    return run_dir, export_run(run_dir, export_format="onnx", quantize="int8", seconds=0.2)


def test_export_writes_models_and_measures_them(exported, trained_sst2):
    run_dir, result = exported
    manifest = json.loads((run_dir / "export" / MANIFEST).read_text())
    assert set(manifest["models"]) == {"onnx", "onnx-int8"}
    assert manifest["inputs"]["token_ids"]["shape"] == ["batch", "seq"] and manifest["output"]["name"] == "logits"
    assert manifest["models"]["onnx-int8"]["quantized_ops"] == {"DynamicQuantizeLSTM": 1, "MatMulInteger": 1}
    assert all(m.path.is_file() for m in result.models)
    assert result.models[1].size_bytes < result.models[0].size_bytes

    assert result.n_texts == 200 and result.data.endswith("sst2_valid.csv")
    figures = {f.name: f for f in result.figures}
    # torch-bf16 is measured only where this CPU runs the LSTM in bfloat16
    assert set(figures) == {"torch", "onnx", "onnx-int8"} | ({"torch-bf16"} if cpu_runs_bf16() else set())
    assert figures["torch"].accuracy == pytest.approx(trained_sst2.valid["accuracy"])
    assert figures["onnx"].max_abs_diff < 1e-4
    assert figures["onnx"].accuracy == figures["torch"].accuracy
    assert abs(figures["onnx-int8"].accuracy - figures["torch"].accuracy) <= 0.01  # within 1 point
    if cpu_runs_bf16():
        assert 0 < figures["torch-bf16"].max_abs_diff < 0.1  # bf16 has 8 bits of mantissa
        assert abs(figures["torch-bf16"].accuracy - figures["torch"].accuracy) <= 0.01
    assert all(f.texts_per_s > 0 for f in result.figures)


def test_predictor_backends_agree(exported):
    run_dir, _ = exported
    texts = read_examples(FIXTURES / "sst2_valid.csv").texts[:100] + ["", "x"]
    by_torch = Predictor.load(run_dir, "cpu", backend="torch")
    by_onnx = Predictor.load(run_dir, "cpu", backend="onnx")
    assert by_onnx.backend == "onnx" and Predictor.load(run_dir, backend="auto").backend == "onnx"
    np.testing.assert_allclose(
        by_onnx.class_probabilities(texts), by_torch.class_probabilities(texts), atol=3e-5, rtol=0
    )  # logits within 1e-4
    assert [p.label for p in by_onnx.predict(texts)] == [p.label for p in by_torch.predict(texts)]
    int8, exact = Predictor.load(run_dir, backend="onnx-int8").predict_proba(texts), by_torch.predict_proba(texts)
    assert np.abs(int8 - exact).mean() < 0.02  # close on the whole, though a text near 0.5 may cross over
    assert np.mean(int8.argmax(1) == exact.argmax(1)) >= 0.95


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_apply_the_run_temperature(exported, backend):
    run_dir, _ = exported
    saved = json.loads((run_dir / "temperature.json").read_text())["temperature"]
    predictor = Predictor.load(run_dir, backend=backend)
    assert predictor.backend == backend and predictor.run.temperature == saved > 1.0
    texts = read_examples(FIXTURES / "sst2_valid.csv").texts[:60]
    # the predictor's own batches: int8's dynamic quantization scales activations per batch
    logits = batched_logits(
        predictor.forward,
        predictor.encode(texts),
        batch_size=predictor.batch_size,
        pad_index=predictor.run.vocab.pad_index,
        max_tokens=predictor.batch_tokens,
    )
    probs = predictor.class_probabilities(texts)
    np.testing.assert_allclose(probs, probabilities(logits / saved), rtol=1e-6)
    assert (probs.argmax(1) == probabilities(logits).argmax(1)).all()
    assert probs.max() < probabilities(logits).max()


runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_export_then_predict(trained_sst2, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    texts = ["a gripping , beautifully acted film", "dull , lifeless and boring", "it 's a film"]
    before = invoke("predict", run_dir, *texts, "--json")
    assert before.exit_code == 0, before.output

    result = invoke("export", run_dir, "--quantize", "int8", "--seconds", "0.1")
    assert result.exit_code == 0, result.output
    for expected in ("model.onnx", "model.int8.onnx", "DynamicQuantizeLSTM", "texts/s", "onnx-int8"):
        assert expected in result.output

    after = invoke("predict", run_dir, *texts, "--json")  # auto: the ONNX model now
    assert after.exit_code == 0, after.output
    old, new = ([json.loads(line) for line in r.output.splitlines()] for r in (before, after))
    assert [o["label"] for o in old] == [n["label"] for n in new]
    assert [o["probability"] for o in old] == pytest.approx([n["probability"] for n in new], abs=1e-5)
    assert invoke("predict", run_dir, texts[0], "--backend", "onnx-int8").exit_code == 0

    as_json = json.loads(invoke("export", run_dir, "--no-measure", "--json").output)
    assert as_json["figures"] == [] and not (run_dir / "export" / "model.int8.onnx").exists()


def test_onnx_predict_never_imports_torch(exported):
    run_dir, _ = exported
    proc = cold_predict([str(run_dir), "a gripping film", "--backend", "onnx"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split("\t")[0] in {"negative", "positive"} and lines[0].endswith("a gripping film")
    assert lines[-1] == "torch imported: False"


def test_stale_export_is_refused_and_auto_falls_back(exported, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir)
    manifest_path = run_dir / "export" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["weights_sha256"] = "0" * 64  # as if the run had been trained further after the export
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="exported from other weights"):
        Predictor.load(run_dir, backend="onnx")
    assert Predictor.load(run_dir, backend="auto").backend == "torch"
    result = invoke("predict", run_dir, "hello", "--backend", "onnx")
    assert result.exit_code == 1 and "export again with: llmcls export" in result.output


def test_export_hashes_exactly_the_weights_it_exports(trained_sst2, tmp_path, monkeypatch):
    """Training may rewrite model.safetensors while an export runs: the manifest's digest and the ONNX model must
    both come from the one reading of it."""
    import hashlib

    from safetensors.torch import load, save

    import llmcls.export.write as exporting

    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    read = exporting.read_weights
    exported_bytes = (run_dir / "model.safetensors").read_bytes()

    def then_training_writes(path):
        data = read(path)
        newer = {name: t * 2 for name, t in load(data).items()}
        (run_dir / "model.safetensors").write_bytes(save(newer))
        return data

    monkeypatch.setattr(exporting, "read_weights", then_training_writes)
    export_run(run_dir, export_format="onnx", measure=False)
    manifest = json.loads((run_dir / "export" / MANIFEST).read_text())
    assert manifest["weights_sha256"] == hashlib.sha256(exported_bytes).hexdigest()
    model = LstmClassifier(ModelArgs(**json.loads((run_dir / "meta.json").read_text())["model_args"])).eval()
    model.load_state_dict(load(exported_bytes))
    token_ids, lengths = np.array([[5, 9, 13, 2]]), np.array([4])
    with torch.no_grad():
        expected = model(torch.from_numpy(token_ids), torch.from_numpy(lengths)).numpy()
    onnx_model = OnnxClassifier(run_dir / "export" / "model.onnx", pad_index=0, num_outputs=expected.shape[1])
    np.testing.assert_allclose(onnx_model(token_ids, lengths), expected, atol=1e-5, rtol=0)
    with pytest.raises(ExportError, match="exported from other weights"):  # the file now holds newer ones
        Predictor.load(run_dir, backend="onnx")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "torchscript"], "torch.jit.script and torch.jit.trace are deprecated"),
        (["--format", "tflite"], "expected onnx"),
        (["--quantize", "int4"], "expected int8"),
    ],
)
def test_export_errors_are_one_line(trained_sst2, args, message):
    result = invoke("export", trained_sst2.run_dir, *args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_missing_onnxruntime_names_the_extra(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ExportError, match=r"pip install 'llmcls\[onnx\]'"):
        OnnxClassifier.from_run(exported[0])
    with pytest.raises(ExportError, match="has no onnx-int8 export|onnxruntime is not installed"):
        Predictor.load(exported[0], backend="onnx-int8")
    assert Predictor.load(exported[0], backend="auto").backend == "torch"


def test_onnx_backend_refuses_a_gpu(exported):
    with pytest.raises(ExportError, match="runs on the CPU"):
        Predictor.load(exported[0], "cuda", backend="onnx")
