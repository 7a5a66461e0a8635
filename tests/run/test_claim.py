"""The run directory's table of names: --overwrite removes only what llmcls writes, resume drops what the weights
made, and the lock is never written through a link."""

import hashlib
import os
import threading
from pathlib import Path

import pytest

from llmcls.errors import RunError
from llmcls.run.claim import (
    check_new_run,
    claim_run_dir,
    clear_for_new_run,
    remove_from_run,
    remove_stale_temporaries,
    run_lock,
)
from llmcls.run.layout import FROM_WEIGHTS


def make_files(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


EVERY_NAME = [
    "config.yaml",
    "meta.json",
    "vocab.json",
    "labels.json",
    "model.safetensors",
    "metrics.jsonl",
    "metrics.csv",
    "checkpoint-last.pt",
    "results.json",
    "thresholds.json",
    "temperature.json",
    ".meta.json.1.ab12cd34.tmp",
    "plots/curves.png",
    "plots/confusion_matrix.png",
    "plots/.curves.png.7.00ff00ff.tmp",
    "export/manifest.json",
    "export/model.onnx",
    "export/model.int8.onnx",
    "export/.quantize-k3j_x9a2/prepared.onnx",
    "tensorboard/events.out.tfevents.1700000000.host.1.0",
]


def test_overwrite_clears_every_name_llmcls_writes_and_keeps_the_lock(tmp_path):
    make_files(tmp_path, EVERY_NAME + [".lock"])
    check_new_run(tmp_path, overwrite=True)
    assert len(list(tmp_path.rglob("*"))) == len(EVERY_NAME) + 1 + 4  # checking deleted nothing (4 folders)
    clear_for_new_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


@pytest.mark.parametrize(
    "foreign, named",
    [
        ("notes.txt", "(1): notes.txt"),
        ("plots/mine.png", "(1): plots"),  # a folder llmcls writes, holding something else
        ("export/model.onnx.bak", "(1): export"),
        ("tensorboard/other-run/events.out.tfevents.1", "(1): tensorboard"),
        ("model.safetensors.orig", "(1): model.safetensors.orig"),
        (".x.tmp", "(1): .x.tmp"),  # a temporary file, but of no atomic write of llmcls's
        (".notes.txt.12.abcdef01.tmp", "(1): .notes.txt.12.abcdef01.tmp"),  # of a file llmcls does not write
        ("export/.quantize-mine/prepared.onnx", "(1): export"),  # not a name tempfile gives
        ("export/.quantize-abcd1234/notes.txt", "(1): export"),  # the scratch folder's name, not its files
    ],
)
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
    assert left == set(EVERY_NAME) - {
        "results.json",
        "thresholds.json",
        "temperature.json",
        "plots/confusion_matrix.png",
        "export/manifest.json",
        "export/model.onnx",
        "export/model.int8.onnx",
        "export/.quantize-k3j_x9a2/prepared.onnx",
    } | {"export/mine.txt"}


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
    why = {"symlink": "is a symbolic link", "hardlink": "is a hard link to another file", "folder": "cannot be opened"}[
        kind
    ]
    with pytest.raises(RunError, match=f"run/.lock: {why}"):
        with run_lock(run):
            pass
    assert outside.read_text() == "precious"


def test_resume_removes_only_the_temporaries_of_its_own_files(tmp_path):
    make_files(tmp_path, ["config.yaml", ".meta.json.12.abcdef01.tmp", ".x.tmp", ".notes.txt.12.abcdef01.tmp"])
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".meta.json.12.abcdef01.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.12.abcdef01.tmp", ".x.tmp", "config.yaml"]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed): a file's sha256, a link's target, or "folder"."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "link to " + os.readlink(path)
        else:
            out[key] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def foreign_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    make_files(folder, ["thesis.tex", ".x.tmp", "export/.quantize-abcd1234/notes.txt"])
    return folder


@pytest.mark.parametrize("linked", [False, True])
@pytest.mark.parametrize("resume, overwrite", [(False, False), (False, True), (True, False)])
def test_a_refused_run_dir_is_left_byte_identical(tmp_path, linked, resume, overwrite):
    """A foreign folder, or a link to one, as --run-dir: refused before anything is written (no .lock)."""
    folder = foreign_folder(tmp_path)
    run_dir = folder
    if linked:
        run_dir = tmp_path / "runs" / "latest"
        run_dir.parent.mkdir()
        run_dir.symlink_to(folder)
    before = snapshot(tmp_path)
    with pytest.raises(RunError, match="already exists and is not empty|--overwrite refused|no checkpoint-last.pt"):
        with claim_run_dir(run_dir, resume=resume, overwrite=overwrite):
            pytest.fail("claimed a foreign folder")
    assert snapshot(tmp_path) == before


def test_train_leaves_a_refused_run_dir_byte_identical(tmp_path):
    from llmcls.training.loop import train
    from support.configs import small_config

    folder = foreign_folder(tmp_path)
    (tmp_path / "link").symlink_to(folder)
    before = snapshot(tmp_path)
    for run_dir in (folder, tmp_path / "link"):
        for overwrite in (False, True):
            with pytest.raises(RunError, match="already exists and is not empty|--overwrite refused"):
                train(small_config(tmp_path), device="cpu", run_dir=run_dir, overwrite=overwrite)
    assert snapshot(tmp_path) == before


def test_a_failed_start_removes_the_directory_it_created_only(tmp_path):
    with pytest.raises(KeyError):
        with claim_run_dir(tmp_path / "new" / "run", resume=False):
            assert (tmp_path / "new" / "run" / ".lock").is_file()
            raise KeyError("the data file is missing")
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(KeyError):
        with claim_run_dir(tmp_path / "mine", resume=False):
            raise KeyError("the data file is missing")
    assert (tmp_path / "mine").is_dir()  # the user's own empty folder stays


def test_two_claims_of_one_new_directory_at_once(tmp_path):
    """Two threads (each opens the lock on its own, as two processes do) claim one new directory at the same
    moment, many times: exactly one holds it, and the other's refusal deletes nothing of it; then the holder's
    start fails, and the directory goes only if the holder created it."""
    for round in range(20):
        run_dir = tmp_path / f"run{round}"
        start, refused, outcomes = threading.Barrier(2), threading.Event(), []

        def claim(run_dir=run_dir, start=start, refused=refused, outcomes=outcomes):
            start.wait()
            try:
                with claim_run_dir(run_dir, resume=False):
                    refused.wait(10)  # hold it until the other has failed and cleaned up after itself
                    outcomes.append(("held", (run_dir / ".lock").is_file()))
                    with pytest.raises(RunError, match="another llmcls process"):  # still locked
                        with run_lock(run_dir):
                            pass
                    (run_dir / "meta.json").write_text("{}")  # the run is written: it stays
            except RunError as exc:
                outcomes.append(("refused", "another llmcls process is writing this run" in str(exc)))
                refused.set()

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(outcomes) == [("held", True), ("refused", True)]
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "meta.json"]
