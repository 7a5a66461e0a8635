import numpy as np
import pytest

from llmcls.inference.metrics import classification_report, confusion_matrix


def test_confusion_matrix_rows_are_true_classes():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_report_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["n"] == 6 and r["accuracy"] == pytest.approx(4 / 6)
    # a: P 2/2, R 2/3; b: P 1/2, R 1/2; c: P 1/2, R 1/1
    assert r["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert r["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_class_never_predicted_scores_zero_not_nan():
    r = classification_report(np.array([0, 1]), np.array([0, 0]), ["x", "y"])
    assert r["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro_f1"] == pytest.approx((2 / 3) / 2)
