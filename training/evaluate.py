"""Evaluate stage: accuracy, macro-F1, per-class precision/recall/F1 and the
confusion matrix, for the Keras model and for TFLite models run through the
shared Classifier (the serving path, not TensorFlow)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Everything the report and the quality gate need, as plain JSON types."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    matrix = confusion_matrix(truth, predicted, len(labels))
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted_count = matrix.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted_count, out=np.zeros_like(tp), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(1, len(truth))),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "images": len(truth),
        "per_class": {
            label: {
                "precision": round(float(precision[k]), 4),
                "recall": round(float(recall[k]), 4),
                "f1": round(float(f1[k]), 4),
                "support": int(support[k]),
            }
            for k, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
    }


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of images on which two models pick the same top-1 class."""
    a, b = np.asarray(a), np.asarray(b)
    return float((a == b).mean()) if len(a) else 1.0


#: the category head's output name in a model with attribute heads (training/model.py)
CATEGORY_OUTPUT = "probabilities"


def predict_keras_heads(model: Any, pixels: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """A Keras model's scores on float pixels: {output name: (N, classes)};
    a single-head model's scores come under :data:`CATEGORY_OUTPUT`."""
    out = model.predict(pixels.astype(np.float32), batch_size=batch_size, verbose=0)
    if isinstance(out, dict):
        return {name: np.asarray(values) for name, values in out.items()}
    return {CATEGORY_OUTPUT: np.asarray(out)}


def predict_keras(model: Any, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The category's ``(N, classes)`` scores of a Keras model (single- or multi-head)."""
    return predict_keras_heads(model, pixels, batch_size)[CATEGORY_OUTPUT]


def predict_classifier(classifier: Any, pixels: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Scores from the shared LiteRT Classifier, in batches."""
    chunks = [classifier.predict_arrays(pixels[k : k + batch_size]) for k in range(0, len(pixels), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(classifier.labels)), np.float32)


def predict_classifier_heads(
    classifier: Any, pixels: np.ndarray, batch_size: int = 32
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Category scores ``(N, classes)`` and {attribute: ``(N, classes)``}
    from the shared LiteRT Classifier (``predict_heads``, one invoke per
    batch); the attributes are those its manifest names."""
    categories, attributes = [], {}
    for k in range(0, len(pixels), batch_size):
        category, heads = classifier.predict_heads(pixels[k : k + batch_size])
        categories.append(category)
        for name, values in heads.items():
            attributes.setdefault(name, []).append(values)
    if not categories:
        return np.zeros((0, len(classifier.labels)), np.float32), {}
    return np.concatenate(categories), {name: np.concatenate(chunks) for name, chunks in attributes.items()}
