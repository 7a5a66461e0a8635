"""Runs that survive: checkpoints, SIGKILL and resume, run-directory claims, non-finite losses."""

import json
import subprocess
import sys

import pytest
import torch

from llmcls.config import save_config, validate_config
from llmcls.errors import ConfigError, RunError, TrainingError
from llmcls.run.checkpoint import CHECKPOINT, load_checkpoint
from llmcls.run.claim import run_lock
from llmcls.run.config_file import resume_config
from llmcls.run.exports import weights_digest
from llmcls.run.files import load_run
from llmcls.training.loop import train
from support.configs import small_config
from support.resume import assert_same_run, comparable, run_until_killed


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resumed run must equal."""
    tmp = tmp_path_factory.mktemp("reference")
    config = small_config(tmp, train={"epochs": 3, "checkpoint_every_steps": 7})
    return config, train(config, device="cpu", run_dir=tmp / "run")


# 38 batches an epoch, a checkpoint every 7 steps and at the end of each epoch: killed at step 40, the run
# resumes from the end of epoch 1 (step 38); killed at step 45, from the middle of epoch 2 (step 42).
@pytest.mark.parametrize("kill_at_step,resumed_from", [(40, 38), (45, 42)])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(reference, tmp_path, kill_at_step, resumed_from):
    config, expected = reference
    run_dir = tmp_path / "run"
    run_until_killed(config, run_dir, kill_at_step=kill_at_step)
    state = load_checkpoint(run_dir)["state"]
    assert (state["epoch"], state["global_step"]) == (2, resumed_from)
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert_same_run(resumed, expected)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


def test_a_run_with_weight_averaging_resumes_with_its_average(tmp_path):
    """train.ema: killed mid-epoch 2 (the average already started, at step 23) and resumed from step 42, the run
    ends with the uninterrupted run's averaged weights, bit for bit, and the same average to go on from."""
    config = small_config(tmp_path, train={"epochs": 3, "checkpoint_every_steps": 7, "ema": 0.95, "ema_start": 0.2})
    expected = train(config, device="cpu", run_dir=tmp_path / "reference")
    run_dir = tmp_path / "run"
    run_until_killed(config, run_dir, kill_at_step=45)
    assert load_checkpoint(run_dir)["state"]["global_step"] == 42
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert_same_run(resumed, expected)
    ema, reference_ema = load_checkpoint(run_dir)["ema"], load_checkpoint(expected.run_dir)["ema"]
    assert ema.keys() == reference_ema.keys() and all(torch.equal(ema[k], reference_ema[k]) for k in ema)


def test_sigkill_during_checkpoint_write_keeps_the_previous_one(reference, tmp_path):
    config, expected = reference
    run_dir = tmp_path / "run"
    run_until_killed(config, run_dir, kill_at_checkpoint_write=12)  # the write at the end of epoch 2 (step 76)
    assert list(run_dir.glob(f".{CHECKPOINT}.*.tmp")), "the kill should leave the unfinished temporary file"
    assert load_checkpoint(run_dir)["state"]["global_step"] == 70  # the previous checkpoint is intact
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert not list(run_dir.glob(".*.tmp"))
    assert_same_run(resumed, expected)


def test_resume_with_more_epochs_equals_the_longer_run(tmp_path):
    longer = train(small_config(tmp_path / "a", train={"epochs": 3}), device="cpu")
    config = small_config(tmp_path / "b", train={"epochs": 2})
    first = train(config, device="cpu")
    resumed = train(resume_config(first.run_dir, ["train.epochs=3"]), device="cpu", run_dir=first.run_dir, resume=True)
    assert_same_run(resumed, longer)
    assert "epochs: 3" in (first.run_dir / "config.yaml").read_text()


def test_resume_removes_what_the_old_weights_made(tmp_path, monkeypatch):
    first = train(small_config(tmp_path, train={"epochs": 1}), device="cpu")
    run = first.run_dir
    coverage = json.loads((run / "results.json").read_text())["vector_coverage"]
    (run / "export").mkdir(exist_ok=True)  # training wrote an export: overwritten below
    for name in ("export/manifest.json", "export/model.onnx", "thresholds.json", "export/mine.txt"):
        (run / name).write_text("of the old weights")
    (run / "temperature.json").write_text('{"temperature": 99.0}')
    seen = {}

    def note_at_start(config, on_event, **tables):  # what the run directory holds once the resumed run has begun
        seen.update(
            {
                name: (run / name).exists()
                for name in ("results.json", "thresholds.json", "export/model.onnx", "plots/confusion_matrix.png")
            }
        )
        return prepare(config, on_event, **tables)

    import llmcls.training.setup as setup

    prepare = setup.prepare_data
    monkeypatch.setattr(setup, "prepare_data", note_at_start)
    resumed = train(resume_config(run, ["train.epochs=2"]), device="cpu", run_dir=run, resume=True)
    assert seen == {
        "results.json": True,
        "thresholds.json": True,
        "export/model.onnx": True,
        "plots/confusion_matrix.png": True,
    }  # kept until the data is read: a failed start loses nothing
    assert not (run / "thresholds.json").exists()
    # the temperature is fitted again, to the new weights
    assert json.loads((run / "temperature.json").read_text())["temperature"] != 99.0
    # the export of the old weights is gone; training ends by exporting the new ones
    assert json.loads((run / "export" / "manifest.json").read_text())["weights_sha256"] == weights_digest(run)
    assert (run / "export" / "mine.txt").read_text() == "of the old weights"
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == 2 == len(resumed.history)
    assert results["vector_coverage"] == coverage and coverage["tokens"] > 0.99  # measured at the start, kept


def test_resuming_a_finished_run_changes_nothing(trained_sst2):
    before = (trained_sst2.run_dir / "model.safetensors").read_bytes()
    again = train(resume_config(trained_sst2.run_dir), device="cpu", run_dir=trained_sst2.run_dir, resume=True)
    assert comparable(again.history) == comparable(trained_sst2.history)
    assert (trained_sst2.run_dir / "model.safetensors").read_bytes() == before


def test_config_drift_is_refused_naming_the_keys(trained_sst2, tmp_path):
    changed = trained_sst2.run_dir.parent / "changed.yaml"
    config = load_run(trained_sst2.run_dir).config
    save_config(
        config.model_copy(update={"model": config.model.model_copy(update={"hidden_size": 64}), "seed": 99}), changed
    )
    with pytest.raises(ConfigError, match=r"differs from the config of .* in model\.hidden_size, seed"):
        resume_config(trained_sst2.run_dir, [], changed)
    with pytest.raises(ConfigError, match="--set model.dropout: cannot change when resuming"):
        resume_config(trained_sst2.run_dir, ["model.dropout=0.1"])
    assert resume_config(trained_sst2.run_dir, ["train.epochs=20"]).train.epochs == 20


def test_an_existing_run_directory_is_never_reused_by_accident(tmp_path):
    config = small_config(tmp_path, train={"epochs": 1})
    first = train(config, device="cpu")
    with pytest.raises(RunError, match="already exists.*--resume.*--overwrite"):
        train(config, device="cpu")
    again = train(config, device="cpu", overwrite=True)
    assert comparable(again.history) == comparable(first.history)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(RunError, match=r"--overwrite refused, nothing deleted: .* did not write \(1\): thesis.tex"):
        train(config, device="cpu", run_dir=other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    with pytest.raises(RunError, match="no checkpoint-last.pt to resume from"):
        train(config, device="cpu", run_dir=tmp_path / "empty", resume=True)


def test_two_processes_cannot_write_one_run(tmp_path):
    config = small_config(tmp_path, train={"epochs": 1})
    run_dir = tmp_path / "locked"
    with run_lock(run_dir):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, json; from llmcls.config import validate_config; "
                "from llmcls.training.loop import train; "
                "train(validate_config(json.loads(sys.argv[1]), 't'), device='cpu', run_dir=sys.argv[2])",
                json.dumps(config.to_dict()),
                str(run_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode != 0 and "another llmcls process is writing this run" in proc.stderr
    assert not (run_dir / "meta.json").exists()


def test_non_finite_loss_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import llmcls.training.step as training  # the step computes the loss

    calls = {"n": 0}
    real = training.compute_loss

    def poisoned(criterion, logits, targets):
        loss = real(criterion, logits, targets)
        if logits.requires_grad:
            calls["n"] += 1
            if calls["n"] == 38 + 5:  # epoch 2, batch 5
                return loss * float("nan")
        return loss

    monkeypatch.setattr(training, "compute_loss", poisoned)
    config = small_config(tmp_path, train={"epochs": 3})
    with pytest.raises(TrainingError, match="loss became nan at epoch 2, batch 5"):
        train(config, device="cpu")
    run_dir = config.run_dir()
    state = load_checkpoint(run_dir)["state"]
    assert (state["epoch"], state["step"], len(state["history"])) == (2, 0, 1)
    monkeypatch.setattr(training, "compute_loss", real)
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert len(resumed.history) == 3


def test_metrics_csv_matches_jsonl(trained_sst2):
    import csv

    rows = list(csv.DictReader(open(trained_sst2.run_dir / "metrics.csv")))
    lines = [json.loads(line) for line in (trained_sst2.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines) == len(trained_sst2.history)
    for row, line in zip(rows, lines):
        assert float(row["valid_accuracy"]) == pytest.approx(line["valid_accuracy"])
        assert int(row["epoch"]) == line["epoch"]


def test_checkpoint_loads_without_arbitrary_unpickling(trained_sst2, tmp_path, monkeypatch):
    import pickle
    import shutil

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("touch PWNED",))

    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    torch.save({"state": Exploit()}, run_dir / CHECKPOINT, pickle_module=pickle)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunError, match="damaged checkpoint"):
        load_checkpoint(run_dir)
    assert not (tmp_path / "PWNED").exists()


def test_class_weights_config_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="train.class_weights: labels not in the training data: neutral"):
        train(small_config(tmp_path, train={"class_weights": {"neutral": 2.0}}), device="cpu")
    with pytest.raises(ConfigError, match="weights must be > 0"):
        validate_config({"data": {"train": "x"}, "train": {"class_weights": {"a": -1}}}, "t")


def test_tensorboard_logs_or_says_what_to_install(tmp_path):
    config = small_config(tmp_path, train={"epochs": 2, "tensorboard": True})
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'llmcls\[tensorboard\]'"):
            train(config, device="cpu")
        return
    train(config, device="cpu")
    assert list((config.run_dir() / "tensorboard").glob("events.out.tfevents.*"))
