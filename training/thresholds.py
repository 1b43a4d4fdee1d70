"""Thresholds stage: each class's auto-file and quick-check thresholds,
chosen on the validation split through the served model (the shared LiteRT
Classifier), written into the manifest (``thresholds``, read by
``shared/thresholds.py``) and shown in the training report.

The rule, for each class ``c``, over the validation images the model predicts
as ``c`` (top-1), with their top-1 scores as serving rounds them (6 decimals):

- a candidate threshold ``t`` is one of those scores, below 1.0 (1.0 means
  *never*); at ``t`` the class *auto-files* the images scoring ``>= t``
  (ties all included); its *precision* is the share of them truly ``c``;
- ``auto`` is the lowest candidate at which that precision reaches
  ``auto_precision`` (default 0.98) with at least ``min_auto_images`` (default
  20) images auto-filed; the lowest, so the most images are auto-filed;
- ``check`` is chosen the same way among the images *not* auto-filed: the
  lowest of their scores at which those scoring at or above it (and below
  ``auto``) are right at least ``check_precision`` (default 0.90) of the time,
  with at least ``min_check_images`` (default 10) of them. So a result
  between ``check`` and ``auto`` is usually right and needs only a quick
  check (confirm at a glance); below ``check`` a full review. ``check <= auto``
  always;
- a class that never reaches its auto target (or has fewer than
  ``min_auto_images`` validation predictions) gets ``auto`` 1.0: never
  auto-filed (``auto_reached: false``); one whose check target is not reached
  gets ``check`` = ``auto``: no quick-check band, all of it to full review.

Precision is measured on the validation split only (the test split stays
for the README's evaluation, ``training/thresholds_report.py``); with tens of
images per class a measured 98% is an estimate, which ``min_auto_images``
keeps from resting on a handful of images.

``python -m training thresholds --model-dir <version folder> --data <dataset>``
runs it on an already trained model (its ``split.json`` names the validation
images), rewriting its ``manifest.json`` (the model file and its sha256 are
untouched) and, when the folder holds the report's inputs, its ``report.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared import thresholds as th

log = logging.getLogger(__name__)

#: scores are compared as serving rounds them (shared.classifier.Prediction)
SCORE_DECIMALS = 6
RULE = (
    "per predicted class, on the validation split through the served model: auto = the lowest top-1 score at which "
    "the images scoring at or above it reach auto_precision with at least min_auto_images of them (1.0 = never: not "
    "reached); check = the lowest score at which the images not auto-filed scoring at or above it reach "
    "check_precision with at least min_check_images of them (= auto: no check band)"
)


@dataclass(frozen=True)
class ThresholdConfig:
    """Options of the thresholds stage (``python -m training thresholds``)."""

    auto_precision: float = field(
        default=0.98, metadata={"help": "auto-file a class's results at scores where its validation precision reaches this"}
    )
    check_precision: float = field(
        default=0.90, metadata={"help": "quick check (rather than full review) where validation precision reaches this"}
    )
    min_auto_images: int = field(
        default=20, metadata={"help": "an auto threshold counts only with at least this many validation images auto-filed"}
    )
    min_check_images: int = field(
        default=10, metadata={"help": "a check threshold counts only with at least this many validation images in its band"}
    )
    model_dir: str | None = field(
        default=None,
        metadata={
            "help": "thresholds stage alone: a trained model's version folder (manifest.json, model.tflite, split.json) "
            "to measure and update; default: the work folder"
        },
    )

    def validate(self) -> None:
        """Raise ValueError unless 0 < check_precision <= auto_precision <= 1 and both minimum counts are >= 1."""
        if not 0.0 < self.check_precision <= self.auto_precision <= 1.0:
            raise ValueError("need 0 < check_precision <= auto_precision <= 1")
        if self.min_auto_images < 1 or self.min_check_images < 1:
            raise ValueError("min_auto_images and min_check_images must be at least 1")


@dataclass(frozen=True)
class Choice:
    """One chosen threshold and what it does on the validation images of its class."""

    threshold: float  # 0..1; th.NEVER when not reached
    reached: bool
    images: int  # validation images scoring >= threshold (0 when not reached)
    correct: int  # of those, truly of the class

    @property
    def precision(self) -> float | None:
        return self.correct / self.images if self.images else None


def choose(scores: Sequence[float], correct: Sequence[bool], target: float, min_images: int) -> Choice:
    """The lowest threshold at which the images scoring at or above it reach
    precision ``target`` with at least ``min_images`` of them.

    ``scores``: the top-1 scores (0..1) of the images predicted as one class;
    ``correct``: whether each is truly that class. Candidates are the distinct
    scores below 1.0; an image ties in or out with all others of its score.
    Returns ``Choice(th.NEVER, False, 0, 0)`` when no candidate qualifies."""
    values = np.asarray(scores, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if values.shape != right.shape:
        raise ValueError(f"scores {values.shape} and correct {right.shape} differ in shape")
    order = np.argsort(-values, kind="stable")
    values, right = values[order], right[order]
    hits = np.cumsum(right)
    best: Choice | None = None
    # the last index of each run of equal scores: the set "scores >= v" ends there
    ends = np.flatnonzero(np.append(values[1:] != values[:-1], True)) if len(values) else np.array([], dtype=int)
    for end in ends:
        v, n, k = float(values[end]), int(end + 1), int(hits[end])
        if v >= th.NEVER or n < min_images:
            continue
        if k >= target * n - 1e-9:
            best = Choice(v, True, n, k)  # scores descend: a later qualifying one is lower
    return best or Choice(th.NEVER, False, 0, 0)


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def measure_class(scores: np.ndarray, correct: np.ndarray, config: ThresholdConfig) -> dict[str, Any]:
    """The manifest entry of one class: both thresholds and what they do on
    the validation images predicted as the class (``scores``: their top-1
    scores; ``correct``: truly of the class). Rates are shares of those images."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    auto = choose(scores, correct, config.auto_precision, config.min_auto_images)
    in_auto = (scores >= auto.threshold) & (auto.threshold < th.NEVER)
    check = choose(scores[~in_auto], correct[~in_auto], config.check_precision, config.min_check_images)
    if not check.reached:
        check = Choice(auto.threshold, False, 0, 0)
    predicted = len(scores)
    in_check = (scores >= check.threshold) & ~in_auto & check.reached
    return {
        th.AUTO: auto.threshold,
        th.CHECK: check.threshold,
        "auto_reached": auto.reached,
        "check_reached": check.reached,
        "predicted": predicted,
        "auto_images": int(in_auto.sum()),
        "auto_rate": _rounded(float(in_auto.mean()) if predicted else 0.0),
        "auto_precision": _rounded(float(correct[in_auto].mean()) if in_auto.any() else None),
        "check_images": int(in_check.sum()),
        "check_rate": _rounded(float(in_check.mean()) if predicted else 0.0),
        "check_precision": _rounded(float(correct[in_check].mean()) if in_check.any() else None),
        "review_images": int(predicted - in_auto.sum() - in_check.sum()),
    }


def measure(
    labels: list[str], truth: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, config: ThresholdConfig
) -> dict[str, Any]:
    """The manifest's ``thresholds`` value from validation results.

    ``truth``, ``predicted``: (N,) class indices into ``labels``;
    ``confidence``: (N,) top-1 scores 0..1 as serving rounds them."""
    config.validate()
    truth, predicted, confidence = np.asarray(truth), np.asarray(predicted), np.asarray(confidence, dtype=np.float64)
    classes = {
        label: measure_class(confidence[predicted == k], truth[predicted == k] == k, config) for k, label in enumerate(labels)
    }
    return {
        "rule": RULE,
        "auto_precision": config.auto_precision,
        "check_precision": config.check_precision,
        "min_auto_images": config.min_auto_images,
        "min_check_images": config.min_check_images,
        "split": "val",
        "images": len(truth),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        th.CLASSES: classes,
    }


def served_results(classifier: Any, pixels: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class index (N,), top-1 score (N,)) of ``pixels`` ((N, size, size, 3)
    uint8) through the shared Classifier, each score rounded as serving rounds it."""
    index = {label: k for k, label in enumerate(classifier.labels)}
    predicted, confidence = [], []
    for start in range(0, len(pixels), batch_size):
        for prediction in classifier.classify_pixels(pixels[start : start + batch_size], top_k=1):
            predicted.append(index[prediction.label])
            confidence.append(prediction.confidence)
    return np.asarray(predicted, dtype=np.int64), np.asarray(confidence, dtype=np.float64)


def log_summary(thresholds: dict[str, Any]) -> None:
    """One structured log line per class."""
    for label, entry in thresholds[th.CLASSES].items():
        log.info(
            "thresholds %s: auto %s (%s of %d auto-filed, precision %s), check %s",
            label,
            entry[th.AUTO] if entry["auto_reached"] else "never",
            entry["auto_images"],
            entry["predicted"],
            entry["auto_precision"],
            entry[th.CHECK],
            extra={"stage": "thresholds", "label": label, **{k: v for k, v in entry.items() if k != "label"}},
        )
