"""Publish stage: upload a model version and move the current-version
pointer only when the quality gate passes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ModelError
from shared.manifest import Manifest
from shared.model_layout import MANIFEST_FILE, POINTER, parse_pointer, pointer_payload, version_prefix
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


def publish(store: Store, version: str, artifacts: dict[str, Path], decision: GateDecision, *, force: bool = False) -> bool:
    """Upload ``artifacts`` to ``models/<version>/`` (manifest last, so a
    half-uploaded version is never readable), then move the pointer if the
    gate passed (or ``force``). Returns whether the pointer moved."""
    prefix = version_prefix(version)
    for name in sorted(artifacts, key=lambda n: n == MANIFEST_FILE):
        store.write_bytes(prefix + name, artifacts[name].read_bytes())
    if decision.passed or force:
        store.write_bytes(POINTER, pointer_payload(version).encode(), "application/json")
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
