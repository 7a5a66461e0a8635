import numpy as np
import pytest

from llmcls.inference.calibration import calibration, confidences, expected_calibration_error, reliability

# Five texts, three classes; top-class confidence and whether the top class is the target:
# 0.90 right, 0.85 wrong, 0.70 right, 0.65 right, 0.38 wrong.
PROBS = np.array([[0.90, 0.05, 0.05], [0.10, 0.85, 0.05], [0.70, 0.20, 0.10], [0.25, 0.10, 0.65],
                  [0.38, 0.32, 0.30]])
TARGETS = np.array([0, 0, 0, 2, 1])


def test_confidences_are_the_top_class_probability_and_whether_it_is_true():
    confidence, correct = confidences(PROBS, TARGETS)
    assert confidence.tolist() == [0.90, 0.85, 0.70, 0.65, 0.38]
    assert correct.tolist() == [True, False, True, True, False]


def test_reliability_and_ece_by_hand():
    r = calibration(PROBS, TARGETS, n_bins=5)  # bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    assert [b["count"] for b in r["bins"]] == [0, 1, 0, 2, 2]
    assert r["bins"][0] == {"lower": 0.0, "upper": 0.2, "count": 0, "confidence": None, "accuracy": None}
    assert r["bins"][1]["confidence"] == pytest.approx(0.38) and r["bins"][1]["accuracy"] == 0.0
    assert r["bins"][3]["confidence"] == pytest.approx(0.675) and r["bins"][3]["accuracy"] == 1.0
    assert r["bins"][4]["confidence"] == pytest.approx(0.875) and r["bins"][4]["accuracy"] == 0.5
    # (1 * 0.38 + 2 * 0.325 + 2 * 0.375) / 5
    assert r["ece"] == pytest.approx(0.356)
    assert r["n_bins"] == 5 and r["over"] == "top-class confidence"


def test_fifteen_bins_by_default_and_a_calibrated_model_scores_zero():
    # confidence 0.75 four times, three of them right: what it says is what happens
    probs = np.array([[0.75, 0.25]] * 4)
    r = calibration(probs, np.array([0, 0, 0, 1]))
    assert r["n_bins"] == 15 and len(r["bins"]) == 15
    assert r["bins"][11]["lower"] == pytest.approx(11 / 15) and r["bins"][11]["count"] == 4
    assert r["ece"] == pytest.approx(0.0)


def test_bins_hold_their_upper_edge_and_the_first_holds_zero():
    bins = reliability(np.array([0.0, 0.5, 0.5000001, 1.0]), np.array([False, True, True, True]), n_bins=2)
    assert [b["count"] for b in bins] == [2, 2]
    assert bins[0]["confidence"] == pytest.approx(0.25) and bins[0]["accuracy"] == 0.5


def test_an_overconfident_model_has_the_gap_as_ece():
    probs = np.array([[0.99, 0.01]] * 10)  # always 99% sure, right half the time
    assert calibration(probs, np.array([0, 1] * 5))["ece"] == pytest.approx(0.49)


def test_multi_label_calibration_is_over_every_class_probability():
    # forecasts 0.9 (label present), 0.2, 0.1, 0.8 (absent)
    r = calibration(np.array([[0.9, 0.2], [0.1, 0.8]]), np.array([[1, 0], [0, 0]]), n_bins=5)
    assert [b["count"] for b in r["bins"]] == [2, 0, 0, 1, 1]
    assert r["bins"][0]["confidence"] == pytest.approx(0.15) and r["bins"][0]["accuracy"] == 0.0
    assert r["ece"] == pytest.approx((2 * 0.15 + 0.8 + 0.1) / 4)
    assert r["over"] == "every class probability"


def test_no_forecasts_give_zero_not_nan():
    bins = reliability(np.array([]), np.array([], dtype=bool))
    assert sum(b["count"] for b in bins) == 0 and expected_calibration_error(bins) == 0.0
