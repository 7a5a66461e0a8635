"""Temperature scaling at the end of training: fitted on the validation split, saved with the run, used by every
consumer of probabilities; `train.calibrate: none` leaves a run as it was."""

import json

import numpy as np
import pytest

from llmcls.data.readers import read_examples
from llmcls.events import Info
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.run.files import load_run_info
from llmcls.training.loop import train
from support.configs import small_config
from support.paths import FIXTURES

VALID = FIXTURES / "sst2_valid.csv"


@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory):
    """The shared tiny SST-2 run's config with `train.calibrate: none` (the same seed: the same weights)."""
    lines = []
    config = small_config(
        tmp_path_factory.mktemp("raw"), train={"calibrate": "none", "export_onnx": False, "plots": False}
    )
    result = train(config, device="cpu", on_event=lambda e: lines.append(e.message) if isinstance(e, Info) else None)
    return result, lines


def test_the_default_run_saves_its_temperature(trained_sst2):
    run = trained_sst2.run_dir
    saved = json.loads((run / "temperature.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert saved["temperature"] == results["temperature"] == load_run_info(run).temperature
    assert 1.0 < saved["temperature"] < 20.0  # the tiny run is overconfident: T softens it
    assert saved["valid_ece_before"] == results["valid_ece_before"]
    assert results["valid_ece_after"] < results["valid_ece_before"]


def test_calibrated_probabilities_keep_every_answer_and_are_less_sure(trained_sst2, uncalibrated):
    raw_result, lines = uncalibrated
    assert not (raw_result.run_dir / "temperature.json").exists()
    raw_results = json.loads((raw_result.run_dir / "results.json").read_text())
    assert raw_results["temperature"] is None
    assert raw_results["valid_ece_after"] == raw_results["valid_ece_before"]
    assert any(line.startswith("calibration: none") for line in lines)

    texts = read_examples(VALID).texts
    calibrated = Predictor.load(trained_sst2.run_dir, "cpu", backend="torch").class_probabilities(texts)
    raw = Predictor.load(raw_result.run_dir, "cpu", backend="torch").class_probabilities(texts)
    assert (calibrated.argmax(1) == raw.argmax(1)).all()
    assert calibrated.max(1).mean() < raw.max(1).mean()
    assert calibrated.max() < raw.max()
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    assert raw_results["valid"]["confusion_matrix"] == trained_sst2.valid["confusion_matrix"]


def test_eval_reports_the_calibrated_probabilities(trained_sst2, uncalibrated):
    results = json.loads((trained_sst2.run_dir / "results.json").read_text())
    calibrated = evaluate_file(trained_sst2.run_dir, VALID, device="cpu")
    raw = evaluate_file(uncalibrated[0].run_dir, VALID, device="cpu")
    assert calibrated["calibration"]["ece"] == pytest.approx(results["valid_ece_after"])
    assert raw["calibration"]["ece"] == pytest.approx(results["valid_ece_before"])
    assert calibrated["calibration"]["ece"] <= raw["calibration"]["ece"]
    assert calibrated["loss"] < raw["loss"]  # the NLL the temperature minimises
    assert calibrated["accuracy"] == raw["accuracy"]


def test_training_says_what_calibration_did(tmp_path):
    lines = []
    config = small_config(tmp_path, train={"epochs": 2, "export_onnx": False, "plots": False})
    train(config, device="cpu", on_event=lambda e: lines.append(e.message) if isinstance(e, Info) else None)
    saved = json.loads((config.run_dir() / "temperature.json").read_text())
    assert (
        f"calibration: temperature T={saved['temperature']:.3f}, validation ECE "
        f"{saved['valid_ece_before']:.4f} -> {saved['valid_ece_after']:.4f}"
    ) in lines


def test_a_run_without_the_file_gives_raw_probabilities(trained_sst2, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained_sst2.run_dir, old)
    (old / "temperature.json").unlink()  # as a run trained before calibration existed
    texts = read_examples(VALID).texts[:50]
    assert load_run_info(old).temperature is None
    calibrated = Predictor.load(trained_sst2.run_dir, "cpu", backend="torch")
    probs = Predictor.load(old, "cpu", backend="torch").class_probabilities(texts)
    t = calibrated.run.temperature
    logits = np.log(probs[:, 1]) - np.log(probs[:, 0])  # one logit: log p / (1 - p)
    np.testing.assert_allclose(
        calibrated.class_probabilities(texts)[:, 1], 1.0 / (1.0 + np.exp(-logits / t)), rtol=1e-6
    )
