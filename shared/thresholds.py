"""Per-class confidence thresholds and the band of a result.

A model's manifest may carry, for each class, two thresholds the training
job measured on its validation split (``training/thresholds.py`` chooses
them): at or above ``auto`` a result is filed under ``<category>/`` (band
``auto``, status classified); at or above ``check`` but below ``auto`` it goes
to ``review/<category>/`` for a quick check (band ``check``); below ``check``
to ``review/<category>/`` for a full review (band ``review``). An ``auto`` of
1.0 means *never* auto-filed, whatever the score (the class never reached its
precision target on validation).

Where the thresholds of a class come from, first match wins:

1. ``CLASS_THRESHOLDS`` names the class (``Tops=0.95/0.8``);
2. ``CLASS_THRESHOLDS`` has a ``*`` entry (``*=0.6`` restores the single
   global threshold for every class);
3. the manifest's ``thresholds.classes[<label>]``;
4. ``CONFIDENCE_THRESHOLD`` (default 0.6) as ``auto`` and ``check`` alike: a
   manifest without thresholds (models trained before them) keeps the old
   behaviour, two bands only (auto and review).

Pure logic: no I/O, no clients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.records import BAND_AUTO, BAND_CHECK, BAND_REVIEW

#: an ``auto`` threshold of this value: the class is never auto-filed
NEVER = 1.0
#: the manifest key holding the thresholds, and its map of classes
MANIFEST_KEY = "thresholds"
CLASSES = "classes"
AUTO, CHECK = "auto", "check"
#: where a class's thresholds came from (ClassThresholds.source)
FROM_OVERRIDE, FROM_MANIFEST, FROM_GLOBAL = "override", "manifest", "global"
#: the CLASS_THRESHOLDS entry that applies to every class
EVERY_CLASS = "*"


@dataclass(frozen=True)
class ClassThresholds:
    """The two thresholds of one class, scores 0..1 (``check <= auto``)."""

    auto: float
    check: float
    source: str = FROM_MANIFEST

    def band(self, confidence: float) -> str:
        """The band of a top-1 score ``confidence`` (0..1) predicted for this class."""
        if self.auto < NEVER and confidence >= self.auto:
            return BAND_AUTO
        if confidence >= self.check and self.check < self.auto:
            return BAND_CHECK
        return BAND_REVIEW

    def to_dict(self) -> dict[str, Any]:
        return {AUTO: self.auto, CHECK: self.check, "source": self.source}


def _threshold(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a number between 0 and 1, not {value!r}")
    return float(value)


def pair(auto: Any, check: Any, what: str, source: str) -> ClassThresholds:
    """Checked ClassThresholds. Raises ValueError naming ``what`` when a value
    is not in [0, 1] or ``check`` exceeds ``auto``."""
    auto_value, check_value = _threshold(auto, f"{what} auto"), _threshold(check, f"{what} check")
    if check_value > auto_value:
        raise ValueError(f"{what}: check threshold {check_value} is above the auto threshold {auto_value}")
    return ClassThresholds(auto_value, check_value, source)


def from_manifest(thresholds: Any, labels: list[str]) -> dict[str, ClassThresholds]:
    """A manifest's ``thresholds`` value -> {label: ClassThresholds}; ``{}``
    when it holds none. Raises ValueError when it is malformed or names a class
    the manifest does not list."""
    if thresholds in (None, {}):
        return {}
    if not isinstance(thresholds, Mapping) or not isinstance(thresholds.get(CLASSES), Mapping):
        raise ValueError("thresholds must be an object with a 'classes' object")
    result = {}
    for label, entry in thresholds[CLASSES].items():
        if label not in labels:
            raise ValueError(f"thresholds name the class {label!r}, which is not one of the labels")
        if not isinstance(entry, Mapping):
            raise ValueError(f"thresholds of {label!r} must be an object with 'auto' and 'check'")
        result[label] = pair(entry.get(AUTO), entry.get(CHECK), f"thresholds of {label!r}:", FROM_MANIFEST)
    return result


def parse_overrides(text: str) -> dict[str, ClassThresholds]:
    """``CLASS_THRESHOLDS`` -> {label or "*": ClassThresholds}.

    The format: comma-separated ``<label>=<auto>[/<check>]`` entries, e.g.
    ``"Tops=0.95/0.8, Casual Shoes=0.9, *=0.6"``. Without ``/<check>`` the
    class keeps the check threshold it would have had, capped at ``auto``
    (``auto`` itself where it had no check band: classes on the global
    fallback, or whose check target was not reached), resolved by
    :class:`ThresholdPolicy`; here it is stored as NaN. Raises ValueError on
    a malformed entry."""
    overrides: dict[str, ClassThresholds] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        label, equals, values = entry.partition("=")
        label = label.strip()
        if not equals or not label:
            raise ValueError(f"CLASS_THRESHOLDS entry {entry!r} is not <label>=<auto>[/<check>]")
        auto_text, slash, check_text = values.partition("/")
        try:
            auto = float(auto_text)
            check = float(check_text) if slash else math.nan
        except ValueError as exc:
            raise ValueError(f"CLASS_THRESHOLDS entry {entry!r}: the thresholds must be numbers") from exc
        if label in overrides:
            raise ValueError(f"CLASS_THRESHOLDS names {label!r} twice")
        if slash:
            overrides[label] = pair(auto, check, f"CLASS_THRESHOLDS {label!r}", FROM_OVERRIDE)
        else:
            overrides[label] = ClassThresholds(_threshold(auto, f"CLASS_THRESHOLDS {label!r}"), math.nan, FROM_OVERRIDE)
    return overrides


class ThresholdPolicy:
    """Which thresholds apply to each class of one model, and the band of a result.

    ``manifest_thresholds``: the manifest's ``thresholds`` value (None or ``{}``
    when it has none); ``labels``: the manifest's labels; ``fallback``:
    ``CONFIDENCE_THRESHOLD``; ``overrides``: :func:`parse_overrides` of
    ``CLASS_THRESHOLDS``. Raises ValueError when the manifest's thresholds are malformed."""

    def __init__(
        self,
        manifest_thresholds: Any,
        labels: list[str],
        *,
        fallback: float,
        overrides: Mapping[str, ClassThresholds] | None = None,
    ) -> None:
        self.measured = from_manifest(manifest_thresholds, labels)
        self.fallback = ClassThresholds(fallback, fallback, FROM_GLOBAL)
        self.overrides = dict(overrides or {})

    def for_label(self, label: str) -> ClassThresholds:
        """The thresholds that apply to results predicted as ``label``."""
        base = self.measured.get(label, self.fallback)
        override = self.overrides.get(label) or self.overrides.get(EVERY_CLASS)
        if override is None:
            return base
        if math.isnan(override.check):  # only auto given: keep the measured check band (if any), capped at auto
            check = min(base.check, override.auto) if base.check < base.auto else override.auto
            return ClassThresholds(override.auto, check, FROM_OVERRIDE)
        return override

    def band(self, label: str, confidence: float) -> tuple[str, ClassThresholds]:
        """(band, the thresholds used) of a result predicted as ``label`` with top-1 score ``confidence``."""
        thresholds = self.for_label(label)
        return thresholds.band(confidence), thresholds


def policy(manifest: Any, settings: Any) -> ThresholdPolicy:
    """The policy of a loaded model (``manifest``: a shared.manifest.Manifest,
    already validated) under ``settings`` (shared.settings.Settings: its
    ``confidence_threshold`` and ``threshold_overrides``)."""
    return ThresholdPolicy(
        manifest.thresholds,
        list(manifest.labels),
        fallback=settings.confidence_threshold,
        overrides=settings.threshold_overrides,
    )
