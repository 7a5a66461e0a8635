"""An export read from an untrusted run directory: the manifest's file names stay in RUN/export/, no link is
followed, the model file must have the digest the manifest records, and the manifest's network must be meta.json's.
Each is one RunError naming the file, for both model families, and `auto` does not fall back over it."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.errors import ExportError, RunError
from llmcls.inference.predict import Predictor

pytest.importorskip("onnxruntime")


@pytest.fixture(params=["trained_sst2", "trained_encoder"])
def run_copy(request, tmp_path) -> Path:
    """A copy of a trained run of each family with the ONNX export training wrote at its end."""
    target = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(request.param).run_dir, target)
    assert (target / "export" / "manifest.json").is_file()
    return target


def edit_manifest(run: Path, change) -> None:
    path = run / "export" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def refused(run: Path, message: str) -> None:
    """`onnx` and `auto` both refuse the run (auto does not fall back to torch over a damaged export)."""
    for backend in ("onnx", "auto"):
        with pytest.raises(RunError, match=message):
            Predictor.load(run, "cpu", backend=backend)


def test_the_manifest_records_each_file_and_its_network(run_copy):
    manifest = json.loads((run_copy / "export" / "manifest.json").read_text())
    meta = json.loads((run_copy / "meta.json").read_text())
    assert manifest["format_version"] == 2 and manifest["model_args"] == meta["model_args"]
    for entry in manifest["models"].values():
        data = (run_copy / "export" / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert Predictor.load(run_copy, "cpu", backend="auto").backend == "onnx"


@pytest.mark.parametrize("where", ["absolute", "parent", "folder"])
def test_a_manifest_path_outside_the_export_folder_is_refused(run_copy, tmp_path, where):
    """Another .onnx elsewhere (here: a copy of the run's own) is never loaded through the manifest."""
    other = {
        "absolute": tmp_path / "elsewhere" / "model.onnx",
        "parent": run_copy / "model.onnx",
        "folder": run_copy / "plots" / "model.onnx",
    }[where]
    other.parent.mkdir(exist_ok=True)
    shutil.copy(run_copy / "export" / "model.onnx", other)
    name = {"absolute": str(other), "parent": "../model.onnx", "folder": "../plots/model.onnx"}[where]
    edit_manifest(run_copy, lambda manifest: manifest["models"]["onnx"].update(file=name))
    refused(run_copy, f"run/export/manifest.json: file '{name}' is not a file name in export/")


def test_a_linked_model_file_is_refused(run_copy, tmp_path):
    elsewhere = tmp_path / "model.onnx"
    shutil.move(run_copy / "export" / "model.onnx", elsewhere)
    (run_copy / "export" / "model.onnx").symlink_to(elsewhere)
    refused(run_copy, "run/export/model.onnx: is a symbolic link")


def test_a_linked_manifest_is_refused(run_copy, tmp_path):
    elsewhere = tmp_path / "manifest.json"
    shutil.move(run_copy / "export" / "manifest.json", elsewhere)
    (run_copy / "export" / "manifest.json").symlink_to(elsewhere)
    refused(run_copy, "run/export/manifest.json: is a symbolic link")


def test_a_tampered_model_file_is_refused(run_copy):
    path = run_copy / "export" / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of a weight: still a model onnxruntime would load
    path.write_bytes(bytes(data))
    refused(
        run_copy,
        r"run/export/model.onnx: its bytes do not match their sha256 in manifest.json \(the file was "
        r"changed after the export\); export again with: llmcls export",
    )
    result = CliRunner().invoke(app, ["predict", str(run_copy), "a fine film"])
    assert result.exit_code == 1 and "do not match their sha256" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_an_int8_model_in_place_of_the_float_one_is_refused(trained_encoder, tmp_path):
    from llmcls.export.write import export_run

    run = tmp_path / "run"
    shutil.copytree(trained_encoder.run_dir, run)
    export_run(run, quantize="int8", measure=False)
    shutil.copy(run / "export" / "model.int8.onnx", run / "export" / "model.onnx")
    refused(run, "run/export/model.onnx: its bytes do not match their sha256")
    assert Predictor.load(run, "cpu", backend="onnx-int8").backend == "onnx-int8"


def test_a_manifest_of_another_network_is_refused(run_copy):
    edit_manifest(run_copy, lambda manifest: manifest["model_args"].update(vocab_size=10**6))
    refused(run_copy, "run/export/manifest.json: exported from a network with other arguments than")


def test_an_export_of_an_older_format_is_stale_not_damaged(run_copy):
    edit_manifest(run_copy, lambda manifest: manifest.update(format_version=1))
    with pytest.raises(ExportError, match="export format version 1, this llmcls reads 2; export again"):
        Predictor.load(run_copy, "cpu", backend="onnx")
    assert Predictor.load(run_copy, "cpu", backend="auto").backend == "torch"
