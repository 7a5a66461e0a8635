"""The run directory's table of names: --overwrite removes only what llmcls writes, resume drops what the weights
made, and the lock is never written through a link."""

import os

import pytest

from llmcls.errors import RunError
from llmcls.run.claim import check_new_run, clear_for_new_run, remove_from_run, run_lock
from llmcls.run.layout import FROM_WEIGHTS


def make_files(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


EVERY_NAME = ["config.yaml", "meta.json", "vocab.json", "labels.json", "model.safetensors", "metrics.jsonl",
              "metrics.csv", "checkpoint-last.pt", "results.json", "thresholds.json", "temperature.json",
              ".meta.json.1.ab12cd34.tmp",
              "plots/curves.png", "plots/confusion_matrix.png", "plots/.curves.png.7.00ff00ff.tmp",
              "export/manifest.json", "export/model.onnx", "export/model.int8.onnx",
              "export/.quantize-x1y2/prepared.onnx", "tensorboard/events.out.tfevents.1700000000.host.1.0"]


def test_overwrite_clears_every_name_llmcls_writes_and_keeps_the_lock(tmp_path):
    make_files(tmp_path, EVERY_NAME + [".lock"])
    check_new_run(tmp_path, overwrite=True)
    assert len(list(tmp_path.rglob("*"))) == len(EVERY_NAME) + 1 + 4  # checking deleted nothing (4 folders)
    clear_for_new_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


@pytest.mark.parametrize("foreign, named", [
    ("notes.txt", "(1): notes.txt"),
    ("plots/mine.png", "(1): plots"),  # a folder llmcls writes, holding something else
    ("export/model.onnx.bak", "(1): export"),
    ("tensorboard/other-run/events.out.tfevents.1", "(1): tensorboard"),
    ("model.safetensors.orig", "(1): model.safetensors.orig"),
])
def test_overwrite_refuses_anything_llmcls_did_not_write_and_deletes_nothing(tmp_path, foreign, named):
    make_files(tmp_path, EVERY_NAME + [foreign])
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(RunError, match="--overwrite refused, nothing deleted") as refused:
        clear_for_new_run(tmp_path)
    assert str(refused.value).endswith(f"llmcls did not write {named}")
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_the_refusal_names_the_first_five_and_counts_the_rest(tmp_path):
    make_files(tmp_path, ["config.yaml"] + [f"n{i}.txt" for i in range(7)])
    with pytest.raises(RunError, match=r"\(7\): n0.txt, n1.txt, n2.txt, n3.txt, n4.txt and 2 more$"):
        check_new_run(tmp_path, overwrite=True)


def test_links_are_removed_never_followed(tmp_path):
    outside = tmp_path / "outside"
    make_files(outside, ["weights.bin", "plots/curves.png"])
    run = tmp_path / "run"
    make_files(run, ["config.yaml", "meta.json"])
    (run / "model.safetensors").symlink_to(outside / "weights.bin")
    clear_for_new_run(run)
    assert list(run.iterdir()) == [] and (outside / "weights.bin").read_text() == "weights.bin"
    make_files(run, ["config.yaml"])
    (run / "plots").symlink_to(outside / "plots")  # a link where llmcls writes a folder is not llmcls's
    with pytest.raises(RunError, match=r"\(1\): plots"):
        clear_for_new_run(run)
    assert (outside / "plots" / "curves.png").read_text() == "plots/curves.png"


def test_resume_drops_what_the_weights_made_and_nothing_else(tmp_path):
    make_files(tmp_path, EVERY_NAME + ["export/mine.txt"])
    remove_from_run(tmp_path, FROM_WEIGHTS)
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == set(EVERY_NAME) - {"results.json", "thresholds.json", "temperature.json", "plots/confusion_matrix.png",
                                      "export/manifest.json", "export/model.onnx", "export/model.int8.onnx",
                                      "export/.quantize-x1y2/prepared.onnx"} | {"export/mine.txt"}


def test_resume_does_not_follow_a_linked_export_folder(tmp_path):
    outside = tmp_path / "outside"
    make_files(outside, ["manifest.json"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "export").symlink_to(outside)
    remove_from_run(run, FROM_WEIGHTS)
    assert (outside / "manifest.json").is_file() and (run / "export").is_symlink()  # not llmcls's: left alone


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder"])
def test_the_lock_is_never_written_through(tmp_path, kind):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    if kind == "symlink":
        (run / ".lock").symlink_to(outside)
    elif kind == "hardlink":
        os.link(outside, run / ".lock")
    else:
        (run / ".lock").mkdir()
    why = {"symlink": "is a symbolic link", "hardlink": "is a hard link to another file",
           "folder": "cannot be opened"}[kind]
    with pytest.raises(RunError, match=f"run/.lock: {why}"):
        with run_lock(run):
            pass
    assert outside.read_text() == "precious"
