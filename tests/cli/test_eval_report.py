"""`llmcls eval`'s calibration, error analysis and HTML report, in-process on the tiny SST-2 run."""

import csv
import html
import json

from typer.testing import CliRunner

import llmcls
from llmcls.cli import app
from support.paths import FIXTURES

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_eval_json_has_calibration_mistakes_and_confusions(trained_sst2, tmp_path):
    page = tmp_path / "report.html"
    result = invoke(
        "eval", trained_sst2.run_dir, "--data", FIXTURES / "sst2_valid.csv", "--json", "--mistakes", 5, "--report", page
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = list(csv.DictReader(open(FIXTURES / "sst2_valid.csv", encoding="utf-8")))
    assert report["n"] == len(rows) == 200
    assert report["accuracy"] == trained_sst2.valid["accuracy"]  # the existing keys are unchanged

    calibration = report["calibration"]
    assert 0.0 <= calibration["ece"] <= 1.0 and calibration["n_bins"] == len(calibration["bins"]) == 15
    assert sum(b["count"] for b in calibration["bins"]) == report["n"]
    assert all(0.5 <= b["confidence"] <= 1.0 for b in calibration["bins"] if b["count"])  # two classes

    mistakes = report["mistakes"]
    assert report["n_mistakes"] == round(report["n"] * (1 - report["accuracy"])) and len(mistakes) == 5
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    model = llmcls.load(trained_sst2.run_dir, device="cpu")
    for m, prediction in zip(mistakes, model.predict([m["text"] for m in mistakes])):
        assert rows[m["index"]]["text"] == m["text"] and rows[m["index"]]["label"] == m["true"]
        assert prediction.label == m["predicted"] != m["true"]
        assert abs(prediction.probability - m["confidence"]) < 1e-5

    matrix, labels = report["confusion_matrix"], report["labels"]
    off_diagonal = {(labels[t], labels[p]): matrix[t][p] for t in range(2) for p in range(2) if t != p and matrix[t][p]}
    assert {(c["true"], c["predicted"]): c["count"] for c in report["confusions"]} == off_diagonal

    text = page.read_text(encoding="utf-8")
    assert html.escape(mistakes[0]["text"]) in text
    assert all(f">{v}</td>" in text for row in matrix for v in row)
    assert f"{calibration['ece']:.4f}" in text and "<svg" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_eval_table_shows_calibration_and_mistakes(trained_sst2):
    result = invoke("eval", trained_sst2.run_dir, "--data", FIXTURES / "sst2_valid.csv", "--mistakes", 3)
    assert result.exit_code == 0, result.output
    assert "calibration: ECE 0." in result.output
    assert "15 equal-width bins over top-class confidence" in result.output
    section = result.output.split("most confident mistakes (3 of ")[1].split("\n\n")[0]
    assert len(section.splitlines()) == 1 + 3 and " -> " in section
    assert "confusions (true -> predicted" in result.output
