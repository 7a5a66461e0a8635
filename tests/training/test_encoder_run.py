"""Fine-tuning the pretrained-encoder family end to end on the tiny random BERT (tests/support/tiny_bert.py): the
run directory, learning, multi-class and multi-label data, resume after kill -9, the ONNX export and its parity
with PyTorch, prediction without torch, eval and serving."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.errors import ConfigError
from llmcls.inference.predict import Predictor
from llmcls.run.checkpoint import load_checkpoint
from llmcls.run.config_file import resume_config
from llmcls.run.files import load_run_info
from llmcls.training.loop import train
from support.cold import cold_predict
from support.configs import encoder_config
from support.paths import FIXTURES
from support.resume import assert_same_run, run_until_killed

pytest.importorskip("tokenizers")


def test_an_encoder_run_is_a_complete_run_directory_with_its_tokenizer(trained_encoder, tiny_bert):
    run_dir = trained_encoder.run_dir
    for name in (
        "config.yaml",
        "meta.json",
        "labels.json",
        "tokenizer.json",
        "model.safetensors",
        "results.json",
        "temperature.json",
        "export/model.onnx",
        "plots/curves.png",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "vocab.json").exists()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["model_family"] == "encoder" and meta["model_args"]["num_layers"] == 2
    info = load_run_info(run_dir)
    assert info.config.model.encoder == str(tiny_bert) and info.config.train.optimizer == "adamw"
    assert (run_dir / "tokenizer.json").read_bytes() != b""  # the run needs the model folder no more


def test_fine_tuning_learns(trained_encoder):
    losses = [record["train_loss"] for record in trained_encoder.history]
    assert losses[-1] < losses[0] - 0.05, losses
    assert trained_encoder.valid["accuracy"] > 0.55  # 200 texts, half of each class


def majority_share(path) -> float:
    with open(path, newline="", encoding="utf-8") as fh:
        labels = [row["label"] for row in csv.DictReader(fh)]
    return Counter(labels).most_common(1)[0][1] / len(labels)


def test_multi_class_learns_above_the_majority_class(tiny_bert, tmp_path):
    result = train(
        encoder_config(tmp_path, tiny_bert, "trec", train={"plots": False, "export_onnx": False}), device="cpu"
    )
    assert result.test["accuracy"] > majority_share(FIXTURES / "trec_test.csv") + 0.05


def test_multi_label_data_trains_with_one_sigmoid_per_class(tiny_bert, tmp_path):
    config = encoder_config(
        tmp_path,
        tiny_bert,
        "trec",
        train={"plots": False, "export_onnx": False, "epochs": 2},
        data={
            "train": str(FIXTURES / "trec_multi_train.csv"),
            "test": None,
            "label_column": "labels",
            "multi_label": True,
        },
    )
    result = train(config, device="cpu")
    info = load_run_info(result.run_dir)
    assert info.model_args["num_outputs"] == len(info.labels) > 2 and info.thresholds is not None
    assert "micro_f1" in result.valid


def test_kill_minus_nine_mid_epoch_then_resume_equals_the_uninterrupted_run(tiny_bert, tmp_path):
    config = encoder_config(
        tmp_path, tiny_bert, train={"epochs": 2, "checkpoint_every_steps": 10, "plots": False, "export_onnx": False}
    )
    expected = train(config, device="cpu", run_dir=tmp_path / "reference")
    run_dir = tmp_path / "killed"
    run_until_killed(config, run_dir, kill_at_step=46)  # 38 batches an epoch: resumes from step 40
    assert load_checkpoint(run_dir)["state"]["global_step"] == 40
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert_same_run(resumed, expected)


def test_the_onnx_export_predicts_what_pytorch_predicts(trained_encoder):
    texts = ["a gripping , beautifully acted film", "a dull , lifeless mess", "", "what is the capital of peru ?"]
    torch_probs = Predictor.load(trained_encoder.run_dir, "cpu", backend="torch").predict_proba(texts)
    onnx_probs = Predictor.load(trained_encoder.run_dir, "cpu", backend="onnx").predict_proba(texts)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-5)
    import llmcls

    clf = llmcls.load(trained_encoder.run_dir)  # the Python API: the ONNX export by default
    assert clf.backend == "onnx"
    np.testing.assert_allclose(clf.predict_proba(texts), torch_probs, atol=1e-5)


def test_predict_on_an_encoder_run_does_not_import_torch(trained_encoder):
    proc = cold_predict([str(trained_encoder.run_dir), "a gripping film", "--format", "jsonl"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "torch imported: False"
    assert json.loads(lines[0])["label"] in ("negative", "positive")


def test_long_texts_are_read_in_windows_the_model_can_take(trained_encoder):
    long_text = " ".join(["a gripping film"] * 200)  # far past the 64 tokens trained on
    predictor = Predictor.load(trained_encoder.run_dir, "cpu", backend="onnx", chunking={"max_tokens": 64})
    probs = predictor.predict_proba([long_text, "a gripping film"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1)
    with pytest.raises(ConfigError, match="chunking.max_tokens: 500 tokens is more than this model reads at once"):
        Predictor.load(trained_encoder.run_dir, "cpu", backend="onnx", chunking={"max_tokens": 500})


def test_eval_and_int8_export_through_the_cli(trained_encoder):
    runner = CliRunner()
    result = runner.invoke(
        app, ["eval", str(trained_encoder.run_dir), "--data", str(FIXTURES / "sst2_valid.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(trained_encoder.valid["accuracy"])
    result = runner.invoke(app, ["export", str(trained_encoder.run_dir), "--quantize", "int8", "--json"])
    assert result.exit_code == 0, result.output
    figures = {f["name"]: f for f in json.loads(result.stdout)["figures"]}
    assert figures["onnx"]["max_abs_diff"] < 1e-4
    assert abs(figures["onnx-int8"]["accuracy"] - figures["torch"]["accuracy"]) <= 0.05


def test_training_keeps_the_int8_export_only_where_it_keeps_the_accuracy(trained_encoder, tmp_path, monkeypatch):
    import shutil

    import llmcls.export.write as write

    run_dir = tmp_path / "run"
    shutil.copytree(trained_encoder.run_dir, run_dir)
    result = write.export_run(run_dir, export_format="onnx", quantize="int8", measure=False)
    kept = write.keep_int8_if_accurate(result)
    assert kept == (run_dir / "export" / "model.int8.onnx").exists()
    monkeypatch.setattr(write, "INT8_MAX_LOSS", -1.0)  # no int8 model is that good
    result = write.export_run(run_dir, export_format="onnx", quantize="int8", measure=False)
    assert write.keep_int8_if_accurate(result) is False
    assert not (run_dir / "export" / "model.int8.onnx").exists()
    assert list(json.loads((run_dir / "export" / "manifest.json").read_text())["models"]) == ["onnx"]
    assert Predictor.load(run_dir, "cpu", backend="onnx").predict_proba(["a film"]).shape == (1, 2)
