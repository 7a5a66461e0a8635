"""Loading a run reads JSON, YAML and safetensors only; damaged or foreign runs are refused cleanly."""

import json
import pickle
import shutil

import pytest

from llmcls.errors import RunError
from llmcls.fileio import atomic_write_bytes
from llmcls.run.files import FORMAT_VERSION, load_run, load_run_info


@pytest.fixture
def run_copy(trained_sst2, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, target)
    return target


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_a_pickle_in_place_of_the_weights_is_never_executed(run_copy, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (run_copy / "model.safetensors").write_bytes(pickle.dumps({"weights": _Exploit()}))
    with pytest.raises(RunError, match="damaged run directory"):
        load_run(run_copy)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_weights(run_copy):
    data = (run_copy / "model.safetensors").read_bytes()
    (run_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="damaged run directory"):
        load_run(run_copy)


def test_other_format_version_is_refused(run_copy):
    meta = json.loads((run_copy / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (run_copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match=f"format version {FORMAT_VERSION + 1}"):
        load_run(run_copy)


@pytest.mark.parametrize(
    "saved, message",
    [
        ('{"temperature": Infinity}', "temperature: inf is not a finite number > 0"),
        ('{"temperature": NaN}', "temperature: nan is not a finite number > 0"),
        ('{"temperature": -1.5}', "temperature: -1.5 is not a finite number > 0"),
        ('{"temperature": 0}', "temperature: 0 is not a finite number > 0"),
        ('{"temperature": "hot"}', "temperature: 'hot' is not a finite number > 0"),
        ('{"T": 2}', "temperature: None is not a finite number > 0"),
        ("[2]", "temperature: None is not a finite number > 0"),
        ("{", "damaged, not valid JSON"),
    ],
)
def test_a_damaged_temperature_is_refused(run_copy, saved, message):
    (run_copy / "temperature.json").write_text(saved)
    with pytest.raises(RunError, match=f"run/temperature.json: {message}"):
        load_run_info(run_copy)


@pytest.mark.parametrize(
    "saved, message",
    [
        ({"negative": 1.0, "positive": 0.5}, "threshold of 'negative': 1.0 is not a finite number between 0 and 1"),
        ({"negative": float("nan"), "positive": 0.5}, "threshold of 'negative': nan is not a finite number"),
        ({"negative": 0.3, "positive": float("inf")}, "threshold of 'positive': inf is not a finite number"),
        ({"negative": -0.1, "positive": 0.5}, "threshold of 'negative': -0.1 is not a finite number"),
        ({"negative": 0.3}, "no threshold for 'positive'"),
    ],
)
def test_thresholds_out_of_range_are_refused(run_copy, saved, message):
    (run_copy / "thresholds.json").write_text(json.dumps({"method": "tuned", "thresholds": saved}))
    with pytest.raises(RunError, match=f"run/thresholds.json: {message}"):
        load_run_info(run_copy)
    (run_copy / "thresholds.json").write_text(json.dumps({"thresholds": {"negative": 0.3, "positive": 0.6}}))
    assert load_run_info(run_copy).thresholds.tolist() == [0.3, 0.6]


def test_a_run_without_a_temperature_loads_with_none(run_copy):
    assert load_run_info(run_copy).temperature > 1.0
    (run_copy / "temperature.json").unlink()
    assert load_run_info(run_copy).temperature is None


def test_missing_file_is_named(run_copy):
    (run_copy / "vocab.json").unlink()
    with pytest.raises(RunError, match="missing vocab.json"):
        load_run(run_copy)


def test_loaded_model_is_in_eval_mode(trained_sst2):
    run = load_run(trained_sst2.run_dir)
    assert not run.model.training
    assert run.config.name == "tiny-sst2"


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_results_and_history_are_read_as_untrusted_run_files(tmp_path):
    from llmcls.run.results import read_history, read_results

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(RunError, match="no metrics.jsonl"):
        read_history(run)
    assert read_results(run) is None  # still training
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.5}\n\n{"epoch": 2, "train_loss": 0.4}\n')
    assert [r["epoch"] for r in read_history(run)] == [1, 2]
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2\n')
    with pytest.raises(RunError, match="metrics.jsonl, line 2: damaged"):
        read_history(run)
    (run / "results.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="not the results of a run"):
        read_results(run)
    (run / "results.json").unlink()
    (run / "results.json").symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"valid": {}}')
    with pytest.raises(RunError):
        read_results(run)
