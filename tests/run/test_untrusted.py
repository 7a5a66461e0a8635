"""A run directory is untrusted input: crafted runs of both model families (a BiLSTM and a tiny pretrained
encoder) with links, sizes that contradict the weights and token tables that do not fit are refused with one
error naming the file, before anything is allocated or served."""

import json
import shutil
from pathlib import Path

import pytest

from llmcls.errors import RunError
from llmcls.inference.predict import Predictor
from llmcls.run.files import load_run, load_run_info
from llmcls.run.paths import read_run_bytes, run_file


@pytest.fixture(params=["trained_sst2", "trained_encoder"])
def run_copy(request, tmp_path) -> Path:
    """A copy of a trained run of each family (with its ONNX export when onnx is installed)."""
    target = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(request.param).run_dir, target)
    return target


def token_file(run: Path) -> str:
    return "vocab.json" if (run / "vocab.json").exists() else "tokenizer.json"


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_run_file_stays_inside_the_run_and_follows_no_link(trained_sst2, tmp_path):
    run = trained_sst2.run_dir
    assert run_file(run, "plots/curves.png") == run_file(run, "plots", "curves.png") == run / "plots" / "curves.png"
    assert run_file(run, "plots", "none.png", missing_ok=True) == run / "plots" / "none.png"
    for outside in ("/etc/passwd", "../tiny-sst2/meta.json", "plots/../../x", "", "."):
        with pytest.raises(RunError, match="is not a path inside the run directory|names no file|is not a file name"):
            run_file(run, outside)
    with pytest.raises(RunError, match="plots: is not a regular file"):
        run_file(run, "plots")
    with pytest.raises(RunError, match="missing"):
        run_file(run, "plots", "none.png")


def test_linked_plots_are_refused(trained_sst2, tmp_path):
    """The plot a server would send: a link at plots/curves.png, or plots/ itself a link, is never followed."""
    run = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"private")
    (run / "plots" / "curves.png").unlink()
    (run / "plots" / "curves.png").symlink_to(secret)
    with pytest.raises(RunError, match="run/plots/curves.png: is a symbolic link"):
        read_run_bytes(run, "plots/curves.png")
    shutil.rmtree(run / "plots")
    (run / "plots").symlink_to(tmp_path)
    with pytest.raises(RunError, match="run/plots: is a symbolic link"):
        run_file(run, "plots", "secret.png")


@pytest.mark.parametrize(
    "name", ["model.safetensors", "config.yaml", "meta.json", "TOKENS", "labels.json", "temperature.json"]
)
def test_a_linked_run_file_is_refused(run_copy, tmp_path, name):
    name = token_file(run_copy) if name == "TOKENS" else name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes((run_copy / name).read_bytes())  # the same content: only the link is wrong
    (run_copy / name).unlink()
    (run_copy / name).symlink_to(elsewhere)
    with pytest.raises(RunError, match=f"run/{name}: is a symbolic link"):
        Predictor.load(run_copy, "cpu", backend="torch").encode(["a text"])


def network_size(run: Path) -> str:
    """A size in meta.json that changes the shapes of the weights, and none of the token or label tables."""
    return "hidden_size" if (run / "vocab.json").exists() else "intermediate_size"


def test_meta_sizes_that_contradict_the_weights_are_refused(run_copy):
    key = network_size(run_copy)
    edit_json(run_copy / "meta.json", lambda meta: meta["model_args"].update({key: meta["model_args"][key] + 16}))
    load_run_info(run_copy)  # the tables still agree with meta.json
    with pytest.raises(
        RunError,
        match=r"run/model.safetensors: tensor \S+ is \[[0-9, ]+\], but the model meta.json "
        r"describes has it \[[0-9, ]+\]; the files come from different runs",
    ):
        load_run(run_copy)


def test_an_impossible_size_is_refused_before_anything_is_allocated(run_copy):
    """10^12 hidden units would take terabytes: refused from the weights' header alone."""
    key = network_size(run_copy)
    edit_json(run_copy / "meta.json", lambda meta: meta["model_args"].update({key: 10**12}))
    with pytest.raises(RunError, match=f"run/meta.json: model_args.{key} = {10**12} is impossible beside "):
        load_run(run_copy)


@pytest.mark.parametrize("change", [1, -1])
def test_a_vocabulary_of_another_size_than_the_embedding_rows_is_refused(trained_sst2, tmp_path, change):
    run = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run)
    vocab = json.loads((run / "vocab.json").read_text())
    rows = len(vocab["tokens"])
    vocab["tokens"] = vocab["tokens"] + ["zzz-extra"] if change > 0 else vocab["tokens"][:-1]
    (run / "vocab.json").write_text(json.dumps(vocab))
    message = f"run/vocab.json: {rows + change:,} tokens, but the model meta.json describes has {rows:,} embedding rows"
    for backend in ("torch", "onnx"):
        with pytest.raises(RunError, match=message):
            Predictor.load(run, "cpu", backend=backend)


def test_a_tokenizer_with_ids_past_the_embedding_rows_is_refused(trained_encoder, tmp_path):
    from tokenizers import Tokenizer

    run = tmp_path / "run"
    shutil.copytree(trained_encoder.run_dir, run)
    tokenizer = Tokenizer.from_file(str(run / "tokenizer.json"))
    rows = tokenizer.get_vocab_size(with_added_tokens=True)
    tokenizer.add_tokens(["zzzextra", "zzzmore"])
    tokenizer.save(str(run / "tokenizer.json"))
    message = f"run/tokenizer.json: {rows + 2:,} tokens, but the model meta.json describes has {rows:,} embedding rows"
    for backend in ("torch", "onnx"):
        with pytest.raises(RunError, match=message):
            Predictor.load(run, "cpu", backend=backend)


def test_labels_that_do_not_fit_the_outputs_are_refused(run_copy):
    edit_json(run_copy / "labels.json", lambda saved: saved["labels"].append("neutral"))
    with pytest.raises(
        RunError,
        match="run/labels.json: 3 labels take 3 outputs, but the model meta.json describes "
        "has 1; the files come from different runs",
    ):
        load_run_info(run_copy)
    edit_json(run_copy / "labels.json", lambda saved: saved.update(labels=["negative", "negative"]))
    with pytest.raises(RunError, match="run/labels.json: the labels must be distinct strings"):
        load_run_info(run_copy)
