"""Classification metrics: accuracy, per-class and macro precision/recall/F1, confusion matrix; for multi-label
classification micro/macro F1, subset accuracy, and per-class thresholds."""

from __future__ import annotations

import numpy as np

from llmcls.records import Report


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [num_classes, num_classes]: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 counts as 0 (as scikit-learn's zero_division=0), e.g. precision of a class never predicted.
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Report:
    """All metrics of one evaluation, as plain JSON-ready values.

    Returns:
        {"n", "accuracy", "macro_precision", "macro_recall", "macro_f1",
         "per_class": {label: {"precision", "recall", "f1", "support"}}, "labels", "confusion_matrix"}
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _ratio(true_pos, matrix.sum(axis=0).astype(np.float64))
    recall = _ratio(true_pos, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    n = int(matrix.sum())
    return {
        "n": n,
        "accuracy": float(true_pos.sum() / n) if n else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Report:
    """The metrics of a multi-label evaluation, as plain JSON-ready values.

    Args:
        y_true: [n, classes] 0/1 (or bool), the true label sets.
        y_pred: [n, classes] 0/1 (or bool), the predicted label sets.
        labels: the class names.

    Returns:
        {"n", "multi_label": True, "accuracy" (subset accuracy: the whole set right), "hamming_loss" (share of
         wrong label decisions), "micro_precision", "micro_recall", "micro_f1" (over all label decisions),
         "macro_precision", "macro_recall", "macro_f1" (mean over classes),
         "per_class": {label: {"precision", "recall", "f1", "support", "predicted"}}, "labels"}
    """
    truth = np.asarray(y_true).astype(bool)
    pred = np.asarray(y_pred).astype(bool)
    true_pos = (truth & pred).sum(0).astype(np.float64)  # [classes]
    support = truth.sum(0)
    predicted = pred.sum(0)
    precision = _ratio(true_pos, predicted.astype(np.float64))
    recall = _ratio(true_pos, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    tp, n_pred, n_true = true_pos.sum(), predicted.sum(), support.sum()
    micro_p = float(tp / n_pred) if n_pred else 0.0
    micro_r = float(tp / n_true) if n_true else 0.0
    n = len(truth)
    return {
        "n": n,
        "multi_label": True,
        "accuracy": float((truth == pred).all(1).mean()) if n else 0.0,
        "hamming_loss": float((truth != pred).mean()) if truth.size else 0.0,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s), "predicted": int(k)}
            for label, p, r, f, s, k in zip(labels, precision, recall, f1, support, predicted)
        },
        "labels": list(labels),
    }


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def tune_thresholds(probs: np.ndarray, y_true: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Per class, the threshold of `grid` that maximises the class's F1 (ties: the one nearest 0.5).

    A coarse grid rather than every observed probability, so that a small validation split does not pick a
    threshold that fits its last few examples.

    Args:
        probs: [n, classes] predicted probabilities.
        y_true: [n, classes] 0/1 true label sets.

    Returns:
        [classes] float64 thresholds; 0.5 for a class without positives or predictions to tune on.
    """
    truth = np.asarray(y_true).astype(bool)
    out = np.full(truth.shape[1], 0.5)
    by_closeness = grid[np.argsort(np.abs(grid - 0.5), kind="stable")]
    for j in range(truth.shape[1]):
        best = 0.0
        for t in by_closeness:
            pred = probs[:, j] >= t
            tp = float((pred & truth[:, j]).sum())
            f1 = 2 * tp / (pred.sum() + truth[:, j].sum()) if tp else 0.0
            if f1 > best:
                best, out[j] = f1, t
    return out
