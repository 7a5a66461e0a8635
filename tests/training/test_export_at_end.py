"""Training ends by writing the ONNX export, so that predict, eval and serve start without torch by default;
an export that does not match the weights is never used."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from llmcls.events import Info
from llmcls.export.write import export_after_training
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.run.exports import find_export, weights_digest
from llmcls.training.loop import train
from support.cold import cold_predict
from support.configs import small_config
from support.paths import FIXTURES

pytest.importorskip("onnxruntime")


def test_training_writes_an_export_of_its_best_weights(trained_sst2):
    run_dir = trained_sst2.run_dir
    path, manifest, why = find_export(run_dir)
    assert why == "" and path == run_dir / "export" / "model.onnx"
    assert manifest["weights_sha256"] == weights_digest(run_dir)
    assert set(manifest["models"]) == {"onnx"}  # no int8 model unless asked for
    assert Predictor.load(run_dir).backend == "torch"  # the library's default is unchanged ...
    assert Predictor.load(run_dir, backend="auto").backend == "onnx"  # ... and auto finds the export


def test_eval_uses_the_export_and_reproduces_the_metrics(trained_sst2):
    report = evaluate_file(trained_sst2.run_dir, FIXTURES / "sst2_valid.csv", device="cpu")
    torch_report = evaluate_file(trained_sst2.run_dir, FIXTURES / "sst2_valid.csv", device="cpu", backend="torch")
    assert report["accuracy"] == torch_report["accuracy"] == pytest.approx(trained_sst2.valid["accuracy"])
    assert report["loss"] == pytest.approx(torch_report["loss"], rel=1e-5)


def test_cold_predict_on_a_freshly_trained_run_never_imports_torch(trained_sst2):
    proc = cold_predict([str(trained_sst2.run_dir), "a gripping film"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "torch imported: False"


def test_export_can_be_turned_off(tmp_path):
    result = train(small_config(tmp_path, train={"epochs": 1, "export_onnx": False, "plots": False}), device="cpu")
    assert not (result.run_dir / "export").exists()
    assert Predictor.load(result.run_dir, backend="auto").backend == "torch"


def test_without_onnx_training_notes_it_and_predict_uses_torch(trained_sst2, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    shutil.rmtree(run_dir / "export")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if `pip install llmcls` without the onnx extra
    events = []
    assert export_after_training(run_dir, events.append) is None
    assert [e.message for e in events if isinstance(e, Info)] == [
        "no ONNX export (onnx is not installed; pip install 'llmcls[onnx]'); predict will load torch"
    ]
    assert not (run_dir / "export").exists()
    assert Predictor.load(run_dir, backend="auto").backend == "torch"


def test_an_export_of_other_weights_is_never_used(trained_sst2, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    weights = run_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")  # any change to the bytes: the digest no longer matches
    assert find_export(run_dir)[0] is None
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert manifest["weights_sha256"] != weights_digest(run_dir)
