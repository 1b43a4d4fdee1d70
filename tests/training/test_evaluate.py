"""Evaluation metrics, computed with numpy and checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import agreement, classification_metrics


def test_metrics_match_a_hand_computed_example():
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    m = classification_metrics(truth, predicted, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class"]["a"] == {"precision": round(2 / 3, 4), "recall": round(2 / 3, 4), "f1": round(2 / 3, 4), "support": 3}
    assert m["per_class"]["b"]["precision"] == round(2 / 3, 4) and m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)


def test_absent_classes_do_not_drag_macro_f1():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0


def test_agreement():
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
