"""Classification metrics: accuracy, per-class and macro precision/recall/F1, confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [num_classes, num_classes]: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 counts as 0 (as scikit-learn's zero_division=0), e.g. precision of a class never predicted.
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
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
