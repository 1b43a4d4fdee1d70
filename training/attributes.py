"""Attribute heads (issue 19) in training: the masked, class-weighted loss
of each head, joint fitting of the category and attribute heads, the
per-attribute threshold chosen on val, and the per-attribute report.

Targets are integer class indices with ``-1`` for a missing (or dropped)
label (``training.data.AttributeLabels``): a missing label adds nothing to
its head's loss and is left out of its metrics.

The job (``training/train.py``) trains the heads on the cached features
with :func:`joint_losses`; :func:`fit_joint` trains a whole model on pixels
(the tests' tiny models). ``training/pipeline.py`` evaluates every head,
chooses each attribute's threshold on val (:func:`choose_threshold`) and
writes them into the manifest (:func:`manifest_attributes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from shared.thresholds import NEVER
from training.config import ATTRIBUTE_LOSS_WEIGHT
from training.evaluate import classification_metrics
from training.model import CATEGORY_OUTPUT, attribute_output
from training.thresholds import choose

#: default per-head loss weights: the category head counts fully, each
#: attribute head a quarter (training.config.ATTRIBUTE_LOSS_WEIGHT, the
#: recipe's default), so the extra heads do not pull the shared features
#: away from the category
CATEGORY_LOSS_WEIGHT = 1.0
#: an attribute's threshold: the lowest top-1 score at which its val results
#: reach this precision with at least MIN_THRESHOLD_IMAGES of them
ATTRIBUTE_PRECISION = 0.90
MIN_THRESHOLD_IMAGES = 10


@keras.saving.register_keras_serializable(package="fashion")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Sparse categorical cross-entropy over integer targets ``(N,)`` or
    ``(N, 1)`` and softmax scores ``(N, classes)``, each sample weighted by
    its class's weight (``class_weights``, one float per class; empty: all
    1.0); a target below 0 is missing and contributes nothing.

    ``normalize``: ``"weights"`` (default) averages over the non-missing
    samples' weights (0 when a batch has none); ``"samples"`` divides the
    weighted sum by the batch size, as Keras' ``class_weight`` does (the
    single-head recipe's category loss). ``label_smoothing`` as Keras'
    ``CategoricalCrossentropy`` (the true class gets ``1 - s + s / classes``)."""

    def __init__(
        self,
        class_weights: list[float] | None = None,
        name: str = "masked_sparse_ce",
        *,
        label_smoothing: float = 0.0,
        normalize: str = "weights",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if normalize not in ("weights", "samples"):
            raise ValueError(f"normalize must be 'weights' or 'samples', not {normalize!r}")
        self.class_weights = list(class_weights or [])
        self.label_smoothing = float(label_smoothing)
        self.normalize = normalize

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        present = ops.cast(y_true >= 0, "float32")
        safe = ops.maximum(y_true, 0)
        if self.label_smoothing:
            classes = ops.shape(y_pred)[-1]
            smoothed = ops.one_hot(safe, classes) * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
                classes, "float32"
            )
            ce = keras.losses.categorical_crossentropy(smoothed, y_pred)
        else:
            ce = keras.losses.sparse_categorical_crossentropy(safe, y_pred)
        weight = present
        if self.class_weights:
            weight = weight * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), safe)
        if self.normalize == "samples":  # batch mean of weight * ce
            return ce * weight
        # per-sample values whose batch mean (the default reduction) is
        # sum(weight * ce) / sum(weight)
        count = ops.cast(ops.shape(ce)[0], "float32")
        return ce * weight * count / ops.maximum(ops.sum(weight), 1e-9)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_weights": self.class_weights,
            "label_smoothing": self.label_smoothing,
            "normalize": self.normalize,
        }


def joint_losses(
    schema: Mapping[str, Mapping[str, Any]],
    *,
    category_weights: list[float] | None = None,
    label_smoothing: float = 0.0,
    attribute_weight: float = ATTRIBUTE_LOSS_WEIGHT,
) -> tuple[dict[str, keras.losses.Loss], dict[str, float]]:
    """``(losses, loss_weights)`` keyed by output name for a multi-head
    model: the category head's cross-entropy as the single-head recipe has it
    (class weights averaged over the batch, label smoothing), and one masked,
    class-weighted loss per attribute of ``schema`` (``AttributeLabels.schema``)
    weighing ``attribute_weight`` each against the category's
    :data:`CATEGORY_LOSS_WEIGHT`."""
    losses: dict[str, keras.losses.Loss] = {
        CATEGORY_OUTPUT: MaskedSparseCrossEntropy(category_weights, label_smoothing=label_smoothing, normalize="samples")
    }
    weights = {CATEGORY_OUTPUT: CATEGORY_LOSS_WEIGHT}
    for name, head in schema.items():
        losses[attribute_output(name)] = MaskedSparseCrossEntropy(head.get("class_weights"))
        weights[attribute_output(name)] = attribute_weight
    return losses, weights


def compile_joint(
    model: keras.Model,
    schema: Mapping[str, Mapping[str, Any]],
    *,
    learning_rate: float = 1e-3,
    category_weights: list[float] | None = None,
    loss_weights: Mapping[str, float] | None = None,
) -> None:
    """Compile a multi-head model (outputs named as ``training.model``
    names them) with one masked loss per head and per-head loss weights
    (``loss_weights``: output name -> weight; default
    :data:`CATEGORY_LOSS_WEIGHT` / :data:`ATTRIBUTE_LOSS_WEIGHT`)."""
    losses = {CATEGORY_OUTPUT: MaskedSparseCrossEntropy(category_weights)}
    weights = {CATEGORY_OUTPUT: CATEGORY_LOSS_WEIGHT}
    for name, head in schema.items():
        losses[attribute_output(name)] = MaskedSparseCrossEntropy(head.get("class_weights"))
        weights[attribute_output(name)] = ATTRIBUTE_LOSS_WEIGHT
    weights.update(loss_weights or {})
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights)


def joint_targets(category: np.ndarray, attributes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Category targets ``(N,)`` and {attribute: ``(N,)``} -> the dict of
    int64 targets keyed by output name that ``fit`` takes."""
    out = {CATEGORY_OUTPUT: np.asarray(category, np.int64)}
    out.update({attribute_output(name): np.asarray(t, np.int64) for name, t in attributes.items()})
    return out


def fit_joint(
    model: keras.Model,
    pixels: np.ndarray,
    category: np.ndarray,
    attributes: Mapping[str, np.ndarray],
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train a compiled (:func:`compile_joint`) multi-head model on uint8
    ``pixels`` (N, size, size, 3); returns the per-epoch loss history
    (total and per head)."""
    keras.utils.set_random_seed(seed)
    result = model.fit(
        pixels.astype(np.float32),
        joint_targets(category, attributes),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
    )
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def choose_threshold(
    scores: np.ndarray, targets: np.ndarray, *, precision: float = ATTRIBUTE_PRECISION, min_images: int = MIN_THRESHOLD_IMAGES
) -> dict[str, Any]:
    """One attribute's threshold from its val scores ``(N, classes)`` and
    targets ``(N,)`` (-1 missing): the lowest top-1 score at which the
    results at or above it are right at least ``precision`` of the time,
    with at least ``min_images`` of them (``training.thresholds.choose``);
    ``shared.thresholds.NEVER`` (1.0: always left empty) when none does."""
    present = np.asarray(targets) >= 0
    scores, targets = np.asarray(scores)[present], np.asarray(targets)[present]
    choice = choose(scores.max(axis=1), scores.argmax(axis=1) == targets, precision, min_images)
    return {
        "threshold": round(choice.threshold, 6) if choice.reached else NEVER,
        "reached": choice.reached,
        "val_images": int(present.sum()),
        "val_kept": choice.images,
        "val_precision": None if choice.precision is None else round(choice.precision, 4),
        "target_precision": precision,
    }


def attribute_metrics(scores: np.ndarray, targets: np.ndarray, classes: list[str], threshold: float) -> dict[str, Any]:
    """The report of one attribute on a split: accuracy, macro-F1,
    per-class figures and the confusion matrix (``training.evaluate``) over
    its non-missing targets, plus ``coverage`` (share at or above
    ``threshold``, i.e. filled in) and ``accuracy_when_filled``."""
    present = np.asarray(targets) >= 0
    scores, targets = np.asarray(scores)[present], np.asarray(targets)[present]
    predicted = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
    metrics = classification_metrics(targets, predicted, classes)
    filled = (scores.max(axis=1) >= threshold) & (threshold < NEVER) if len(scores) else np.zeros(0, bool)
    metrics["missing"] = int((~present).sum())
    metrics["coverage"] = float(filled.mean()) if len(filled) else 0.0
    metrics["accuracy_when_filled"] = float((predicted[filled] == targets[filled]).mean()) if filled.any() else None
    return metrics


def manifest_attributes(schema: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest's ``attributes`` (shared/manifest.py) from the data's
    schema (``AttributeLabels.schema``) and :func:`choose_threshold`'s
    results; an attribute without a measured threshold gets NEVER."""
    return {
        name: {
            "labels": list(head["classes"]),
            "output": attribute_output(name),
            "threshold": float(thresholds.get(name, {}).get("threshold", NEVER)),
            "mapping": dict(head.get("mapping", {})),
        }
        for name, head in schema.items()
    }
