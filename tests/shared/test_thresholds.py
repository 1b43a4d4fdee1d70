"""Per-class thresholds and bands (shared/thresholds.py), the manifest's
``thresholds`` (backwards compatible) and the CLASS_THRESHOLDS setting."""

from __future__ import annotations

import hashlib
import math

import pytest

from shared.errors import ModelError
from shared.manifest import Manifest
from shared.records import BAND_AUTO, BAND_CHECK, BAND_REVIEW
from shared.settings import Settings, SettingsError
from shared.thresholds import NEVER, ClassThresholds, ThresholdPolicy, parse_overrides

LABELS = ["Tops", "Casual Shoes", "Watches"]
MEASURED = {"classes": {"Tops": {"auto": 0.9, "check": 0.5}, "Watches": {"auto": 0.3, "check": 0.3}}}
BASE = {"GOOGLE_CLOUD_PROJECT": "p", "INCOMING_BUCKET": "in", "PROCESSED_BUCKET": "out", "MODELS_BUCKET": "m"}


def test_bands_follow_the_two_thresholds() -> None:
    t = ClassThresholds(0.9, 0.5)
    assert [t.band(c) for c in (0.95, 0.9, 0.89, 0.5, 0.49, 0.0)] == [
        BAND_AUTO,
        BAND_AUTO,
        BAND_CHECK,
        BAND_CHECK,
        BAND_REVIEW,
        BAND_REVIEW,
    ]
    assert ClassThresholds(0.6, 0.6).band(0.59) == BAND_REVIEW  # no check band
    never = ClassThresholds(NEVER, 0.7)
    assert never.band(1.0) == BAND_CHECK and never.band(0.69) == BAND_REVIEW  # 1.0: never auto-filed, even at 1.0
    assert ClassThresholds(0.0, 0.0).band(0.0) == BAND_AUTO


def test_the_manifest_thresholds_apply_per_class_and_the_global_one_elsewhere() -> None:
    policy = ThresholdPolicy(MEASURED, LABELS, fallback=0.6)
    assert policy.band("Tops", 0.8) == (BAND_CHECK, ClassThresholds(0.9, 0.5, "manifest"))
    assert policy.band("Watches", 0.35)[0] == BAND_AUTO  # an easy class auto-files low scores
    assert policy.band("Casual Shoes", 0.59) == (BAND_REVIEW, ClassThresholds(0.6, 0.6, "global"))
    assert policy.band("Casual Shoes", 0.6)[0] == BAND_AUTO
    old = ThresholdPolicy({}, LABELS, fallback=0.6)  # a manifest from before thresholds
    assert old.band("Tops", 0.8)[0] == BAND_AUTO and old.band("Tops", 0.5)[0] == BAND_REVIEW


def test_overrides_win_per_class_then_for_every_class() -> None:
    overrides = parse_overrides(" Tops=0.97 , Casual Shoes=0.8/0.4,*=0.6 ")
    policy = ThresholdPolicy(MEASURED, LABELS, fallback=0.6, overrides=overrides)
    assert policy.for_label("Tops") == ClassThresholds(0.97, 0.5, "override")  # the measured check kept
    assert policy.for_label("Casual Shoes") == ClassThresholds(0.8, 0.4, "override")
    assert policy.for_label("Watches") == ClassThresholds(0.6, 0.6, "override")  # "*": one threshold for all; no check band
    capped = ThresholdPolicy(MEASURED, LABELS, fallback=0.6, overrides=parse_overrides("Tops=0.4"))
    assert capped.for_label("Tops") == ClassThresholds(0.4, 0.4, "override")  # the check capped at auto
    plain = ThresholdPolicy({}, LABELS, fallback=0.6, overrides=parse_overrides("Tops=0.9"))
    assert plain.for_label("Tops") == ClassThresholds(0.9, 0.9, "override")  # the fallback had no check band
    assert parse_overrides("") == {} and math.isnan(parse_overrides("A=0.5")["A"].check)


@pytest.mark.parametrize(
    "text", ["Tops", "=0.5", "Tops=x", "Tops=1.5", "Tops=0.5/0.7", "Tops=0.5,Tops=0.6", "Tops=0.5/", "Tops=nan"]
)
def test_malformed_overrides_are_refused_when_settings_are_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_overrides(text)
    with pytest.raises(SettingsError):
        Settings.from_env({**BASE, "CLASS_THRESHOLDS": text})


def test_the_setting_is_read_once_and_parsed() -> None:
    settings = Settings.from_env({**BASE, "CLASS_THRESHOLDS": "Tops=0.9/0.8"})
    assert settings.threshold_overrides == {"Tops": ClassThresholds(0.9, 0.8, "override")}


def _manifest(**extra) -> dict:
    return {
        "version": "v1",
        "labels": LABELS,
        "input_size": 224,
        "input_dtype": "float32",
        "quantization": {"type": "float16"},
        "model_sha256": hashlib.sha256(b"model").hexdigest(),
        **extra,
    }


def test_a_manifest_without_thresholds_still_loads_and_one_with_them_round_trips() -> None:
    assert Manifest.from_dict(_manifest()).thresholds == {}
    manifest = Manifest.from_dict(_manifest(thresholds=MEASURED | {"rule": "r"}))
    assert Manifest.from_dict(manifest.to_dict()).thresholds == manifest.thresholds


@pytest.mark.parametrize(
    "thresholds, problem",
    [
        ({"classes": {"Dresses": {"auto": 0.9, "check": 0.5}}}, "Dresses"),
        ({"classes": {"Tops": {"auto": 0.5, "check": 0.9}}}, "above the auto"),
        ({"classes": {"Tops": {"auto": 1.2, "check": 0.5}}}, "between 0 and 1"),
        ({"classes": {"Tops": {"check": 0.5}}}, "auto"),
        ({"classes": ["Tops"]}, "classes"),
    ],
)
def test_a_malformed_thresholds_map_is_refused(thresholds: dict, problem: str) -> None:
    with pytest.raises(ModelError, match=problem):
        Manifest.from_dict(_manifest(thresholds=thresholds))
