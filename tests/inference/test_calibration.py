import numpy as np
import pytest

from llmcls.inference.calibration import (
    T_RANGE,
    calibration,
    confidences,
    expected_calibration_error,
    fit_temperature,
    reliability,
    scaled_nll,
)
from llmcls.inference.scoring import probabilities

# Five texts, three classes; top-class confidence and whether the top class is the target:
# 0.90 right, 0.85 wrong, 0.70 right, 0.65 right, 0.38 wrong.
PROBS = np.array([[0.90, 0.05, 0.05], [0.10, 0.85, 0.05], [0.70, 0.20, 0.10], [0.25, 0.10, 0.65], [0.38, 0.32, 0.30]])
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


def synthetic(true_temperature: float, kind: str, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model `true_temperature` times too sure: targets are drawn from the probabilities of
    `logits / true_temperature`, so that T = true_temperature calibrates them exactly."""
    rng = np.random.default_rng(seed)
    if kind == "softmax":
        true = rng.normal(0.0, 2.0, (n, 4))
        p = np.exp(true - true.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        targets = (rng.random((n, 1)) > p.cumsum(1)).sum(1)  # a draw from each row
    else:  # "binary" (one logit) or "multi-label" (three independent labels)
        true = rng.normal(0.0, 2.0, (n, 1 if kind == "binary" else 3))
        drawn = rng.random(true.shape) < 1.0 / (1.0 + np.exp(-true))
        targets = drawn[:, 0].astype(int) if kind == "binary" else drawn.astype(int)
    return true * true_temperature, targets


@pytest.mark.parametrize("kind", ["softmax", "binary", "multi-label"])
@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(kind, true_temperature):
    logits, targets = synthetic(true_temperature, kind)
    assert fit_temperature(logits, targets) == pytest.approx(true_temperature, rel=0.05)


def test_the_fitted_temperature_minimises_the_nll_and_lowers_the_ece():
    logits, targets = synthetic(3.0, "softmax", n=5_000)
    t = fit_temperature(logits, targets)
    assert scaled_nll(logits, targets, t) < min(
        scaled_nll(logits, targets, t * 0.97), scaled_nll(logits, targets, t * 1.03)
    )
    assert scaled_nll(logits, targets, t) < scaled_nll(logits, targets, 1.0)
    before = calibration(probabilities(logits), targets)["ece"]
    after = calibration(probabilities(logits, temperature=t), targets)["ece"]
    assert after < 0.03 < 0.1 < before


def test_scaled_nll_is_the_log_loss_of_the_scaled_probabilities():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    targets = np.array([0, 2])
    p = probabilities(logits / 2.0)
    assert scaled_nll(logits, targets, 2.0) == pytest.approx(-np.mean(np.log(p[[0, 1], [0, 2]])))
    one = np.array([[1.5], [-0.5], [40.0]])  # one logit: a sigmoid; 40 / T stays finite in the log
    p_pos = 1.0 / (1.0 + np.exp(-one[:, 0] / 0.5))
    # -log(1 - sigmoid(80)) = log(1 + e^80), which is 80 to double precision
    expected = np.mean([-np.log(p_pos[0]), -np.log(1.0 - p_pos[1]), 80.0])
    assert scaled_nll(one, np.array([1, 0, 0]), 0.5) == pytest.approx(expected)


def test_a_temperature_changes_no_argmax_and_stays_in_its_bounds():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 5.0, (500, 3))
    for t in (0.1, 0.7, 4.0):
        scaled = probabilities(logits, temperature=t)
        assert (scaled.argmax(1) == probabilities(logits).argmax(1)).all()
        np.testing.assert_allclose(scaled.sum(1), 1.0)
    one = rng.normal(0.0, 5.0, (500, 1))
    assert (probabilities(one, temperature=3.0).argmax(1) == probabilities(one).argmax(1)).all()
    # labels that contradict the logits: the flattest temperature searched; labels that follow them exactly: the
    # sharpest
    assert fit_temperature(one, (one[:, 0] < 0).astype(int)) == pytest.approx(T_RANGE[1], rel=1e-3)
    assert fit_temperature(one, (one[:, 0] > 0).astype(int)) == pytest.approx(T_RANGE[0], rel=1e-3)
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0
