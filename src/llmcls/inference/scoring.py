"""From class probabilities to scores: probabilities of logits, one decision threshold for every class, the
classification report of probabilities against targets, and their cross-entropy. NumPy only: the same for every
backend, torch or ONNX."""

from __future__ import annotations

import numpy as np

from llmcls.errors import ConfigError
from llmcls.inference.metrics import classification_report, multilabel_report
from llmcls.records import Report

EPSILON = 1e-12  # probabilities are clipped to [EPSILON, 1 - EPSILON] in the loss, so that it stays finite


def probabilities(logits: np.ndarray, multi_label: bool = False, temperature: float | None = None) -> np.ndarray:
    """Class probabilities [n, classes] float64 from logits [n, num_outputs]: one logit means two classes (a
    sigmoid); several, a softmax; multi-label: a sigmoid per class (a row need not sum to 1).

    Args:
        temperature: the run's fitted temperature T (llmcls.inference.calibration.fit_temperature): the logits are
            divided by it first, which changes how sure the probabilities are but no prediction; None: T = 1.
    """
    logits = np.asarray(logits).astype(np.float64)
    if temperature is not None:
        logits = logits / temperature
    if multi_label or logits.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-logits))
        return positive if multi_label else np.concatenate([1.0 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def uniform_thresholds(threshold: float, classes: int, *, multi_label: bool) -> np.ndarray:
    """One decision threshold for every class [classes] float64, in place of a multi-label run's own (as
    `llmcls predict --threshold` and a request's "threshold" give it).

    Raises:
        ConfigError: a single-label run, which decides by the most probable class; a threshold not in (0, 1).
    """
    if not multi_label:
        raise ConfigError("threshold: applies to multi-label runs only; this run has one label per text")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold: must be between 0 and 1 (got {threshold})")
    return np.full(classes, float(threshold))


def log_loss(probs: np.ndarray, targets: np.ndarray) -> float:
    """The mean cross-entropy of probabilities [n, classes] against class ids [n], or (multi-label) the mean
    binary cross-entropy against 0/1 rows [n, classes]."""
    p = np.clip(probs, EPSILON, 1.0 - EPSILON)
    if targets.ndim == 2:
        return float(-np.mean(targets * np.log(p) + (1.0 - targets) * np.log(1.0 - p)))
    return float(-np.mean(np.log(p[np.arange(len(targets)), targets])))


def report(
    probs: np.ndarray,
    targets: np.ndarray,
    *,
    labels: list[str],
    thresholds: np.ndarray | None = None,
    loss: float | None = None,
) -> Report:
    """The classification report (llmcls.inference.metrics) of probabilities [n, classes] against class ids [n],
    with the loss under "loss" (`loss` when given, e.g. computed exactly from logits; else `log_loss`).

    Multi-label (targets are 0/1 rows [n, classes]): a label is predicted when its probability is at least its
    threshold (`thresholds` [classes], default 0.5 each), and the report is `multilabel_report`'s, with the
    thresholds under "thresholds".
    """
    if targets.ndim == 2:
        limits = np.full(len(labels), 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        out = multilabel_report(targets, probs >= limits[None, :], labels)
        out["thresholds"] = dict(zip(labels, map(float, limits)))
    else:
        out = classification_report(targets, probs.argmax(1), labels)
    out["loss"] = log_loss(probs, targets) if loss is None else loss
    return out
