"""Publish stage: upload a model version and move the current-version
pointer only when the quality gate passes, or publish it as the candidate
(``models/candidate.json``: scored in shadow, never acted upon, until
``fashionctl model promote`` moves it through the gate)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ModelError
from shared.manifest import Manifest
from shared.model_layout import CANDIDATE_POINTER, MANIFEST_FILE, POINTER, parse_pointer, pointer_payload, version_prefix
from training.storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateConfig:
    min_accuracy: float = field(default=0.90, metadata={"help": "quality gate: floor on test accuracy"})
    max_regression: float = field(
        default=0.01, metadata={"help": "quality gate: how far below the current model's accuracy a new one may be"}
    )


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    candidate_accuracy: float
    current_version: str | None = None
    current_accuracy: float | None = None
    #: per source (source_gate): name -> {"candidate", "current", "images", "passed"}; None: one overall figure
    per_source: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def quality_gate(candidate: float, current: float | None, config: GateConfig, current_version: str | None = None) -> GateDecision:
    """Accept when ``candidate`` reaches the floor and is not worse than
    ``current`` by more than the allowed margin."""
    if candidate < config.min_accuracy:
        return GateDecision(
            False,
            f"test accuracy {candidate:.2%} is below the floor {config.min_accuracy:.2%}",
            candidate,
            current_version,
            current,
        )
    if current is not None and candidate < current - config.max_regression:
        return GateDecision(
            False,
            f"test accuracy {candidate:.2%} is more than {config.max_regression:.2%} below "
            f"the current model {current_version} ({current:.2%})",
            candidate,
            current_version,
            current,
        )
    if current is None:
        return GateDecision(
            True,
            f"test accuracy {candidate:.2%} reaches the floor {config.min_accuracy:.2%}; no current model to compare with",
            candidate,
        )
    return GateDecision(
        True,
        f"test accuracy {candidate:.2%} reaches the floor {config.min_accuracy:.2%} and is within "
        f"{config.max_regression:.2%} of the current model {current_version} ({current:.2%})",
        candidate,
        current_version,
        current,
    )


def source_gate(
    candidate: dict[str, dict], current: dict[str, dict] | None, config: GateConfig, current_version: str | None, base: str
) -> GateDecision:
    """The quality gate per source, both models scored on the same fixed
    test sets (``{source: {"accuracy": 0..1, "images": n}}``): the ``base``
    source's accuracy (the catalogue) must reach the floor, and on every
    source the candidate may be at most ``max_regression`` below the current
    model (None: no current model, the floor only). A source with no test
    image is reported, not judged."""
    failures, per_source = [], {}
    for name, figures in candidate.items():
        mine = figures["accuracy"]
        theirs = (current or {}).get(name, {}).get("accuracy")
        ok = figures["images"] == 0 or theirs is None or mine >= theirs - config.max_regression
        per_source[name] = {"candidate": mine, "current": theirs, "images": figures["images"], "passed": ok}
        if not ok:
            failures.append(
                f"on {name} ({figures['images']} test images) {mine:.2%} is more than {config.max_regression:.2%} "
                f"below the current model {current_version} ({theirs:.2%})"
            )
    floor = candidate.get(base, {}).get("accuracy", 0.0)
    if floor < config.min_accuracy:
        failures.insert(0, f"test accuracy on {base} {floor:.2%} is below the floor {config.min_accuracy:.2%}")
    figures = "; ".join(
        f"{name}: {v['candidate']:.2%}" + (f" vs {v['current']:.2%}" if v["current"] is not None else "") + f" ({v['images']})"
        for name, v in per_source.items()
    )
    against = f"the current model {current_version}" if current is not None else "no current model"
    reason = (
        "; ".join(failures) if failures else f"passes against {against}"
    ) + f" [per source, candidate vs current: {figures}]"
    current_base = (current or {}).get(base, {}).get("accuracy")
    return GateDecision(not failures, reason, floor, current_version, current_base, per_source)


def current_model(store: Store) -> tuple[str | None, Manifest | None]:
    """The version the pointer names and its manifest, or (None, None)."""
    if not store.exists(POINTER):
        return None, None
    version = parse_pointer(store.read_bytes(POINTER))
    try:
        data = json.loads(store.read_bytes(version_prefix(version) + MANIFEST_FILE))
        return version, Manifest.from_dict(data)
    except (FileNotFoundError, ValueError, ModelError) as exc:
        log.warning("current model %s is unreadable: %s", version, exc, extra={"stage": "publish"})
        return version, None


def decide(store: Store, accuracy: float, gate: GateConfig) -> GateDecision:
    """Run the quality gate of a candidate against the store's current model."""
    current_version, current = current_model(store)
    current_accuracy = (current.metrics or {}).get("test_accuracy") if current else None
    return quality_gate(accuracy, current_accuracy, gate, current_version)


def publish(
    store: Store,
    version: str,
    artifacts: dict[str, Path],
    decision: GateDecision,
    *,
    force: bool = False,
    as_candidate: bool = False,
) -> bool:
    """Upload ``artifacts`` to ``models/<version>/`` (manifest last, so a
    half-uploaded version is never readable), then move the pointer if the
    gate passed (or ``force``); the pointer records the version it replaced
    (``previous``, for a rollback). Returns whether the pointer moved.
    ``as_candidate``: write the candidate pointer instead, whatever the gate
    says (a candidate never serves; promotion applies the gate)."""
    prefix = version_prefix(version)
    for name in sorted(artifacts, key=lambda n: n == MANIFEST_FILE):
        store.write_bytes(prefix + name, artifacts[name].read_bytes())
    if as_candidate:
        store.write_bytes(CANDIDATE_POINTER, pointer_payload(version).encode(), "application/json")
        log.info(
            "published %s as the candidate (shadow only; the gate %s: %s)",
            version,
            "passes" if decision.passed else "refuses",
            decision.reason,
            extra={"stage": "publish", "version": version, "store": store.uri, "candidate": True},
        )
        return True
    if decision.passed or force:
        previous = parse_pointer(store.read_bytes(POINTER)) if store.exists(POINTER) else None
        previous = previous if previous != version else None
        store.write_bytes(POINTER, pointer_payload(version, previous=previous).encode(), "application/json")
        log.info(
            "published %s as the current model: %s",
            version,
            decision.reason,
            extra={"stage": "publish", "version": version, "store": store.uri, "forced": force and not decision.passed},
        )
        return True
    log.warning(
        "REFUSED to make %s the current model: %s. It is stored at %s/%s; the current model stays %s",
        version,
        decision.reason,
        store.uri,
        prefix.rstrip("/"),
        decision.current_version,
        extra={"stage": "publish", "version": version, "store": store.uri},
    )
    return False
