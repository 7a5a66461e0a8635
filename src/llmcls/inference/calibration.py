"""How far probabilities mean what they say: the expected calibration error (ECE) and the reliability data behind
it, from probabilities and targets. NumPy only.

A model is calibrated when, of the predictions it makes with confidence 0.8, 80% are right. The confidences are
cut into equal-width bins over [0, 1]; per bin, the mean confidence is set against the share of right answers (the
reliability diagram), and the ECE is the mean gap, each bin weighted by its share of the predictions.

Temperature scaling makes them so after training: `fit_temperature` finds the T by which to divide the logits so
that the validation split's probabilities are as likely as they can be; it changes no prediction.
"""

from __future__ import annotations

import numpy as np

from llmcls.records import CalibrationReport

N_BINS = 15  # as Guo et al. (2017), "On calibration of modern neural networks"


def confidences(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forecasts that calibration is measured on, and whether each came true.

    Single-label (`targets` are class ids [n]): each text's top-class probability, and whether that class is the
    true one. Multi-label (`targets` are 0/1 rows [n, classes]): every class's probability of every text, as a
    forecast that the label is present, and whether it is.

    Returns:
        (confidence, correct): float64 [m] and bool [m]; m = n (single-label) or n * classes (multi-label).
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if targets.ndim == 2:
        return probs.ravel(), targets.astype(bool).ravel()
    predicted = probs.argmax(axis=1)
    return probs.max(axis=1), predicted == targets


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """The reliability data of forecasts: per equal-width bin of confidence, how many and how right.

    A bin holds the confidences in (lower, upper]; the first also holds 0.

    Args:
        confidence: [m] forecast probabilities in [0, 1].
        correct: [m] whether each forecast came true.

    Returns:
        `n_bins` dicts {"lower", "upper", "count", "confidence" (mean), "accuracy" (share correct)}, lowest bin
        first; an empty bin has count 0 and None for its mean confidence and accuracy.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")  # [m]: bin i holds (edges[i], edges[i + 1]]
    counts = np.bincount(which, minlength=n_bins)
    conf_sums = np.bincount(which, weights=confidence, minlength=n_bins)
    right_sums = np.bincount(which, weights=correct, minlength=n_bins)
    bins = []
    for i in range(n_bins):
        n = int(counts[i])
        bins.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "count": n,
                "confidence": float(conf_sums[i] / n) if n else None,
                "accuracy": float(right_sums[i] / n) if n else None,
            }
        )
    return bins


def expected_calibration_error(bins: list[dict]) -> float:
    """The ECE of reliability bins: the mean |accuracy - confidence| over bins, weighted by their counts (0 when
    there are no forecasts)."""
    total = sum(b["count"] for b in bins)
    if not total:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def calibration(probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> CalibrationReport:
    """The calibration of probabilities [n, classes] against class ids [n] or (multi-label) 0/1 rows [n, classes].

    Returns:
        {"ece", "n_bins", "over" ("top-class confidence", or "every class probability" for multi-label),
         "bins": `reliability`'s list}.
    """
    confidence, correct = confidences(probs, targets)
    bins = reliability(confidence, correct, n_bins)
    over = "every class probability" if np.asarray(targets).ndim == 2 else "top-class confidence"
    return {"ece": expected_calibration_error(bins), "n_bins": n_bins, "over": over, "bins": bins}


T_RANGE = (0.05, 20.0)  # the temperatures `fit_temperature` searches
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # 0.618...: how much of the interval each golden-section step keeps


def scaled_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """The mean negative log-likelihood of targets under the probabilities of `logits / temperature`.

    Args:
        logits: [n, num_outputs]: one column is the positive logit of two classes (a sigmoid), several a softmax;
            multi-label: one sigmoid per class.
        targets: class ids [n], or (multi-label) 0/1 rows [n, classes].
        temperature: T > 0.

    Returns:
        The mean NLL per text (multi-label: per label decision), computed from logits (stable for any size).
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    targets = np.asarray(targets)
    if targets.ndim == 2:  # -log sigmoid(z) = log(1 + e^-z); -log(1 - sigmoid(z)) = log(1 + e^z)
        return float(np.mean(np.logaddexp(0.0, np.where(targets > 0, -z, z))))
    if z.shape[1] == 1:
        return float(np.mean(np.logaddexp(0.0, np.where(targets == 1, -z[:, 0], z[:, 0]))))
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(targets)), targets]))


def fit_temperature(
    logits: np.ndarray, targets: np.ndarray, *, bounds: tuple[float, float] = T_RANGE, tolerance: float = 1e-4
) -> float:
    """The temperature T that minimises `scaled_nll` of held-out logits (temperature scaling, Guo et al. 2017).

    Dividing logits by T > 0 changes no argmax (and, for a sigmoid, no side of 0): only how sure the
    probabilities are. T > 1 softens an overconfident model. The NLL is convex in 1/T, so it has one minimum along
    log T, which a golden-section search finds; the search runs over log T so that 0.1 and 10 are as far from 1.

    Args:
        logits: [n, num_outputs], as `scaled_nll` reads them.
        targets: class ids [n], or (multi-label) 0/1 rows [n, classes].
        bounds: the range of T searched; the answer is clipped to it.
        tolerance: the search stops when the interval of log T is this narrow.

    Returns:
        T, a float in `bounds` (1.0 when there is nothing to fit on).
    """
    if len(targets) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])

    def nll(log_t: float) -> float:
        return scaled_nll(logits, targets, float(np.exp(log_t)))

    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f_a, f_b = nll(a), nll(b)
    while hi - lo > tolerance:
        if f_a <= f_b:  # the minimum is in [lo, b]
            hi, b, f_b = b, a, f_a
            a = hi - _GOLDEN * (hi - lo)
            f_a = nll(a)
        else:  # in [a, hi]
            lo, a, f_a = a, b, f_b
            b = lo + _GOLDEN * (hi - lo)
            f_b = nll(b)
    return float(np.exp((lo + hi) / 2.0))
