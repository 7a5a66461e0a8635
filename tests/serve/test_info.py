"""llmcls.serve.info: what GET /v1/info says about a copy of the tiny SST-2 run, and which plots are served. No
local path is said; a plot reached through a symbolic link, one that is not a file, or one too large is neither
listed nor read; a results.json that is missing, damaged, not an object or a link gives an info without metrics
rather than an error."""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("fastapi")

from llmcls import __version__
from llmcls.inference.predict import Predictor
from llmcls.run.artifacts import MAX_PLOT_BYTES, read_plot
from llmcls.serve.info import _public_config, run_info
from llmcls.serve.settings import ServeSettings
from support.configs import encoder_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def run(trained_sst2, tmp_path):
    """A copy of the run, its results.json and plots ours to damage."""
    copy = tmp_path / "served-run"
    shutil.copytree(trained_sst2.run_dir, copy, symlinks=True)
    return copy


def info_of(run_dir, settings: ServeSettings | None = None) -> dict:
    return run_info(Predictor.load(run_dir, backend="auto"), settings or ServeSettings())


def test_info_says_what_the_run_is(run, trained_sst2):
    settings = ServeSettings(max_texts=7, max_text_chars=99)
    info = info_of(run, settings)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert info["llmcls_version"] == __version__ and info["run"] == "served-run" and info["backend"] == "onnx"
    assert info["labels"] == ["negative", "positive"] and info["multi_label"] is False
    assert info["best_epoch"] == results["best_epoch"] == trained_sst2.best_epoch
    assert list(info["metrics"]) == ["valid"]  # no test split in this run
    valid = info["metrics"]["valid"]
    assert set(valid) == {"n", "accuracy", "macro_f1", "loss"}  # scalars only: no per-class tables
    assert valid["accuracy"] == results["valid"]["accuracy"] and valid["n"] == 200
    assert info["confusion_matrix"] == results["valid"]["confusion_matrix"]
    assert sum(map(sum, info["confusion_matrix"])) == 200
    assert info["plots"] == ["curves.png", "confusion_matrix.png"]
    assert info["limits"] == settings.limits()
    assert info["config"]["model"]["hidden_size"] == 32 and info["config"]["name"] == "tiny-sst2"


def test_info_names_no_local_path(run, trained_sst2):
    text = json.dumps(info_of(run))
    for path in (run, run.parent, trained_sst2.run_dir.parent, os.path.expanduser("~")):
        assert str(path) not in text
    assert "/" not in text.replace("/v1", "")  # no path of any kind
    config = info_of(run)["config"]
    assert set(config) == {"name", "model", "tokenizer", "chunking"}  # not data, embeddings, output_dir, train
    assert "cache_dir" not in config["tokenizer"]


def test_an_encoder_folder_is_named_by_its_name_only(tmp_path, tiny_bert):
    public = _public_config(encoder_config(tmp_path, tiny_bert))
    assert public["model"]["encoder"] == tiny_bert.name and str(tiny_bert.parent) not in json.dumps(public)


def test_a_symlinked_plot_is_neither_listed_nor_read(run, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + b"not for the web")
    (run / "plots" / "curves.png").unlink()
    (run / "plots" / "curves.png").symlink_to(secret)
    assert info_of(run)["plots"] == ["confusion_matrix.png"]
    assert read_plot(run, "curves.png") is None
    assert read_plot(run, "confusion_matrix.png").startswith(PNG)


def test_a_symlinked_plots_folder_lists_nothing(run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "plots", elsewhere)
    (run / "plots").symlink_to(elsewhere, target_is_directory=True)
    assert info_of(run)["plots"] == []
    assert read_plot(run, "curves.png") is None and read_plot(run, "confusion_matrix.png") is None


@pytest.mark.parametrize(
    "name", ["../model.safetensors", "../results.json", "/etc/passwd", "", ".", "..", "nothing.png", "plots/curves.png"]
)
def test_only_a_plot_of_the_plots_folder_is_read(run, name):
    assert read_plot(run, name) is None


def test_a_plot_that_is_a_folder_or_too_large_is_not_served(run):
    (run / "plots" / "curves.png").unlink()
    (run / "plots" / "curves.png").mkdir()
    with open(run / "plots" / "confusion_matrix.png", "r+b") as fh:
        fh.truncate(MAX_PLOT_BYTES + 1)  # sparse: no 20 MB written
    assert read_plot(run, "curves.png") is None and read_plot(run, "confusion_matrix.png") is None
    assert "curves.png" not in info_of(run)["plots"]


@pytest.mark.parametrize("damage", ["missing", "not json", "a list", "empty", "a link", "a folder"])
def test_results_that_are_missing_or_damaged_give_an_info_without_metrics(run, tmp_path, damage):
    results = run / "results.json"
    good = results.read_bytes()
    results.unlink()
    if damage == "not json":
        results.write_bytes(good[: len(good) // 2])
    elif damage == "a list":
        results.write_text("[1, 2, 3]", encoding="utf-8")
    elif damage == "empty":
        results.write_bytes(b"")
    elif damage == "a link":
        (tmp_path / "elsewhere.json").write_bytes(good)
        results.symlink_to(tmp_path / "elsewhere.json")
    elif damage == "a folder":
        results.mkdir()
    info = info_of(run)
    assert (info["best_epoch"], info["metrics"], info["confusion_matrix"]) == (None, {}, None)
    assert info["labels"] == ["negative", "positive"] and info["plots"] == ["curves.png", "confusion_matrix.png"]


def test_metrics_keep_numbers_only(run):
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    results["valid"]["accuracy"] = "0.99"  # not a number: left out
    results["valid"]["loss"] = None
    results["test"] = {"n": 10, "accuracy": 0.7, "per_class": {"a": 1}, "confusion_matrix": [[1]]}
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    info = info_of(run)
    assert set(info["metrics"]["valid"]) == {"n", "macro_f1"}
    assert info["metrics"]["test"] == {"n": 10, "accuracy": 0.7}
