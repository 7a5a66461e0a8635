import numpy as np
import pytest

from llmcls.inference.error_analysis import confident_mistakes, error_report, predicted_confidence, top_confusions
from llmcls.inference.scoring import report as score

LABELS = ["a", "b", "c"]
TEXTS = ["zero", "one", "two", "three", "four", "five"]
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # true b, predicted a: wrong at 0.90
        [0.20, 0.70, 0.10],  # true b: right
        [0.10, 0.30, 0.60],  # true a, predicted c: wrong at 0.60
        [0.05, 0.95, 0.00],  # true c, predicted b: wrong at 0.95
        [0.60, 0.30, 0.10],  # true b, predicted a: wrong at 0.60 (after text 2, its tie)
        [0.80, 0.10, 0.10],  # true a: right
    ]
)
TARGETS = np.array([1, 1, 0, 2, 1, 0])


def test_most_confident_mistakes_first_ties_in_input_order():
    mistakes = confident_mistakes(PROBS, TARGETS, texts=TEXTS, labels=LABELS)
    assert [m["index"] for m in mistakes] == [3, 0, 2, 4]
    assert mistakes[0] == {"index": 3, "text": "three", "true": "c", "predicted": "b", "confidence": 0.95}
    assert [m["confidence"] for m in mistakes] == [0.95, 0.90, 0.60, 0.60]
    assert [m["index"] for m in confident_mistakes(PROBS, TARGETS, texts=TEXTS, labels=LABELS, limit=2)] == [3, 0]


def test_largest_confusions_first_with_their_share_of_the_true_class():
    matrix = score(PROBS, TARGETS, labels=LABELS)["confusion_matrix"]
    assert matrix == [[1, 0, 1], [2, 1, 0], [0, 1, 0]]
    assert top_confusions(matrix, LABELS) == [
        {"true": "b", "predicted": "a", "count": 2, "share": pytest.approx(2 / 3)},
        {"true": "c", "predicted": "b", "count": 1, "share": 1.0},  # a larger share before a smaller one
        {"true": "a", "predicted": "c", "count": 1, "share": 0.5},
    ]


def test_no_mistakes_no_confusions():
    assert top_confusions([[3, 0], [0, 2]], ["x", "y"]) == []
    assert confident_mistakes(np.array([[0.9, 0.1]]), np.array([0]), texts=["fine"], labels=["x", "y"]) == []


def test_error_report_of_a_single_label_evaluation():
    r = error_report(PROBS, TARGETS, texts=TEXTS, report=score(PROBS, TARGETS, labels=LABELS), limit=1)
    assert r["n_mistakes"] == 4 and [m["index"] for m in r["mistakes"]] == [3]
    assert r["confusions"][0] == {"true": "b", "predicted": "a", "count": 2, "share": pytest.approx(2 / 3)}


def test_multi_label_mistakes_are_wrong_label_sets_ranked_by_the_sets_probability():
    labels, thresholds = ["x", "y"], np.array([0.5, 0.3])
    probs = np.array([[0.9, 0.4], [0.2, 0.1], [0.6, 0.2], [0.4, 0.35]])
    targets = np.array([[1, 0], [0, 0], [1, 1], [1, 1]])
    # predicted sets {x, y}, {}, {x}, {y}: the set's probability 0.9 * 0.4, 0.8 * 0.9, 0.6 * 0.8, 0.6 * 0.35
    predicted = probs >= thresholds
    assert predicted_confidence(probs, predicted) == pytest.approx([0.36, 0.72, 0.48, 0.21])
    report = score(probs, targets, labels=labels, thresholds=thresholds)
    r = error_report(probs, targets, texts=["p", "q", "r", "s"], report=report, thresholds=thresholds)
    assert r["n_mistakes"] == 3 and r["confusions"] is None
    assert [m["index"] for m in r["mistakes"]] == [2, 0, 3]
    assert r["mistakes"][0] == {
        "index": 2,
        "text": "r",
        "true": ["x", "y"],
        "predicted": ["x"],
        "confidence": pytest.approx(0.48),
    }
    assert r["mistakes"][2]["predicted"] == ["y"]
