"""Where a model goes wrong: its most confident mistakes and the classes it confuses, from probabilities and
targets. NumPy only."""

from __future__ import annotations

import numpy as np

from llmcls.records import Confusion, ErrorAnalysis, Mistake, Report

MISTAKES = 10  # how many of the most confident mistakes a report lists by default


def answers(
    probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The model's answers and which of them are wrong.

    Args:
        probs: [n, classes] class probabilities.
        targets: [n] class ids, or (multi-label) [n, classes] 0/1 rows.
        thresholds: multi-label: [classes] decision thresholds (default 0.5 each).

    Returns:
        (predicted, wrong): [n] class ids (multi-label: [n, classes] bool label sets) and [n] bool, true where
        the answer (multi-label: the whole set) is not the target.
    """
    if targets.ndim == 2:
        limits = np.full(probs.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        predicted = probs >= limits[None, :]
        return predicted, (predicted != targets.astype(bool)).any(axis=1)
    predicted = probs.argmax(axis=1)
    return predicted, predicted != targets


def predicted_confidence(probs: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """How sure the model is of each of its answers.

    Args:
        probs: [n, classes] class probabilities.
        predicted: [n] class ids (single-label), or [n, classes] bool label sets (multi-label).

    Returns:
        [n] float64: the predicted class's probability; multi-label, the probability of the predicted set as a
        whole (the product over classes of p for a predicted label and 1 - p for the others, the sigmoids being
        independent).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if predicted.ndim == 2:
        return np.where(predicted, probs, 1.0 - probs).prod(axis=1)
    return probs[np.arange(len(probs)), predicted]


def confident_mistakes(
    probs: np.ndarray,
    targets: np.ndarray,
    *,
    texts: list[str],
    labels: list[str],
    thresholds: np.ndarray | None = None,
    limit: int = MISTAKES,
) -> list[Mistake]:
    """The `limit` wrong answers given with the highest confidence, most confident first (ties: input order).

    Args:
        probs: [n, classes] class probabilities.
        targets: [n] class ids, or (multi-label) [n, classes] 0/1 rows.
        texts: the n texts.
        labels: the class names.
        thresholds: multi-label: [classes] decision thresholds (default 0.5 each).

    Returns:
        Dicts {"index" (0-based position in the data), "text", "true", "predicted", "confidence"
        (`predicted_confidence`)}; multi-label, "true" and "predicted" are lists of labels (a mistake is a
        predicted set that is not the true one).
    """
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    predicted, wrong = answers(probs, targets, thresholds)
    confidence = predicted_confidence(probs, predicted)
    rows = np.flatnonzero(wrong)
    rows = rows[np.argsort(-confidence[rows], kind="stable")][:limit]

    def name(answer: np.ndarray) -> str | list[str]:
        return [labels[j] for j in np.flatnonzero(answer)] if answer.ndim else labels[int(answer)]

    return [
        {
            "index": int(i),
            "text": texts[i],
            "true": name(targets[i]),
            "predicted": name(predicted[i]),
            "confidence": float(confidence[i]),
        }
        for i in rows
    ]


def top_confusions(matrix: list[list[int]] | np.ndarray, labels: list[str]) -> list[Confusion]:
    """The off-diagonal cells of a confusion matrix that are not empty, the largest first (ties: the larger share,
    then the matrix order).

    Args:
        matrix: [classes, classes] counts; rows are true classes, columns predicted ones.

    Returns:
        Dicts {"true", "predicted", "count", "share" (of the true class's examples)}.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    support = matrix.sum(axis=1)
    cells = [
        (int(matrix[t, p]), matrix[t, p] / support[t], t, p)
        for t in range(len(labels))
        for p in range(len(labels))
        if t != p and matrix[t, p]
    ]
    cells.sort(key=lambda cell: (-cell[0], -cell[1], cell[2], cell[3]))
    return [
        {"true": labels[t], "predicted": labels[p], "count": count, "share": float(share)}
        for count, share, t, p in cells
    ]


def error_report(
    probs: np.ndarray,
    targets: np.ndarray,
    *,
    texts: list[str],
    report: Report,
    thresholds: np.ndarray | None = None,
    limit: int = MISTAKES,
) -> ErrorAnalysis:
    """The error analysis of an evaluation, to add to its classification report.

    Args:
        probs: [n, classes] class probabilities.
        targets: [n] class ids, or (multi-label) [n, classes] 0/1 rows.
        texts: the n texts.
        report: the classification report of the same probabilities (llmcls.inference.scoring.report): its
            labels, and its confusion matrix.
        thresholds: multi-label: [classes] decision thresholds (default 0.5 each).
        limit: how many mistakes to list.

    Returns:
        {"n_mistakes" (texts answered wrong), "mistakes" (`confident_mistakes`), "confusions" (`top_confusions`;
         None for multi-label, which has no confusion matrix: see its per-class precision and recall)}.
    """
    labels, targets = report["labels"], np.asarray(targets)
    _, wrong = answers(np.asarray(probs, dtype=np.float64), targets, thresholds)
    confusions = None if targets.ndim == 2 else top_confusions(report["confusion_matrix"], labels)
    return {
        "n_mistakes": int(wrong.sum()),
        "mistakes": confident_mistakes(probs, targets, texts=texts, labels=labels, thresholds=thresholds, limit=limit),
        "confusions": confusions,
    }
