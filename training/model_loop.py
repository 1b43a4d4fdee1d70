"""The model loop's operations on a model store: score models on a
candidate's fixed test sets per source, compare the candidate with the
current model, promote it through the quality gate, roll back.

No TensorFlow: models run through the shared LiteRT ``Classifier`` (the
serving path). ``fashionctl model compare|promote|rollback`` are thin
commands over :func:`compare`, :func:`promote` and :func:`rollback`; the
training job's gate stage uses :func:`score_sources` too.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared import records as rec
from shared.classifier import Classifier
from shared.errors import ImageError, ModelError
from shared.manifest import Manifest
from shared.model_layout import (
    CANDIDATE_POINTER,
    MANIFEST_FILE,
    MODEL_FILE,
    POINTER,
    parse_pointer,
    pointer_payload,
    pointer_previous,
    version_prefix,
)
from training import data as data_stage
from training import evaluate as ev
from training import sources as src
from training.publish import GateConfig, GateDecision, source_gate
from training.storage import Store

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json"


class LoopError(RuntimeError):
    """An operation cannot run (no candidate, nothing to roll back to, an unreadable model)."""


def pointed(store: Store, pointer: str) -> str | None:
    """The version a pointer names, or None when it is absent."""
    return parse_pointer(store.read_bytes(pointer)) if store.exists(pointer) else None


def load_classifier(store: Store, version: str) -> Classifier:
    """``models/<version>/`` of ``store`` in the shared Classifier (the sha256 is checked). Raises ModelError."""
    prefix = version_prefix(version)
    try:
        manifest = Manifest.from_dict(json.loads(store.read_bytes(prefix + MANIFEST_FILE)))
        return Classifier(store.read_bytes(prefix + MODEL_FILE), manifest)
    except (FileNotFoundError, ValueError) as exc:
        raise ModelError(f"model {version} in {store.uri} is unreadable: {exc}") from exc


def score_sources(classifier: Classifier, dataset: data_stage.Dataset) -> dict[str, dict[str, Any]]:
    """Accuracy of ``classifier`` on the test split of ``dataset``, per
    source: ``{source: {"accuracy": 0..1, "images": n}}`` (labels mapped by
    name, so a model with another label order scores correctly)."""
    pixels, truth = dataset.pixels["test"], dataset.targets["test"]
    if len(truth) == 0:
        return {name: {"accuracy": 0.0, "images": 0} for name in src.masks_by_source(dataset.split)}
    order = [classifier.labels.index(label) if label in classifier.labels else -1 for label in dataset.split.labels]
    scores = ev.predict_classifier(classifier, pixels)
    by_split_label = np.stack([scores[:, k] if k >= 0 else np.full(len(scores), -1.0) for k in order], axis=1)
    predicted = by_split_label.argmax(axis=1)
    out = {}
    for name, mask in src.masks_by_source(dataset.split).items():
        n = int(mask.sum())
        out[name] = {"accuracy": float((predicted[mask] == truth[mask]).mean()) if n else 0.0, "images": n}
    return out


def gate_on_split(
    candidate: Classifier,
    current: Classifier | None,
    dataset: data_stage.Dataset,
    gate: GateConfig,
    *,
    candidate_scores: dict[str, dict[str, Any]] | None = None,
) -> GateDecision:
    """:func:`training.publish.source_gate` with both models scored on the
    same fixed test sets of ``dataset`` (the candidate's split)."""
    mine = candidate_scores or score_sources(candidate, dataset)
    theirs = score_sources(current, dataset) if current is not None else None
    return source_gate(mine, theirs, gate, current.version if current else None, src.BASE)


def candidate_test_set(store: Store, version: str, size: int, overrides: dict[str, str] | None = None) -> data_stage.Dataset:
    """The fixed test sets of a published model (its ``split.json``), decoded
    at ``size``; ``overrides``: source -> another location of its data."""
    try:
        split = data_stage.Split.from_json(store.read_bytes(version_prefix(version) + SPLIT_FILE).decode())
    except FileNotFoundError as exc:
        raise LoopError(f"model {version} has no {SPLIT_FILE} in {store.uri}: its test sets are unknown") from exc
    stores = src.stores_of(split, overrides)
    return data_stage.load_split(stores[src.BASE], split, size=size, names=("test",), stores=stores)


@dataclass
class Comparison:
    """What ``fashionctl model compare`` reports (:meth:`to_dict` is its JSON)."""

    current: str | None
    candidate: str
    shadowed: int = 0  # records carrying the candidate's answer
    agreement: float | None = None  # share of those where both top labels agree
    would_change: dict[str, dict[str, int]] = field(default_factory=dict)  # current label -> {candidate label: n}
    reviewed: dict[str, Any] = field(default_factory=dict)  # {"items", "current_accuracy", "candidate_accuracy", "excluded"}
    gate: GateDecision | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "candidate": self.candidate,
            "shadowed": self.shadowed,
            "agreement": self.agreement,
            "would_change": self.would_change,
            "reviewed": self.reviewed,
            "gate": self.gate.to_dict() if self.gate else None,
        }


def shadow_agreement(records: Iterable[rec.Classification], candidate: str) -> tuple[int, float | None, dict]:
    """Over the records carrying ``candidate``'s shadow answer: how many,
    the share whose top label equals the served one, and the would-be changes
    (served label -> {candidate label: count}, disagreements only)."""
    n = same = 0
    changes: dict[str, Counter[str]] = {}
    for record in records:
        answer = record.candidate or {}
        if answer.get("model_version") != candidate or not record.label:
            continue
        n += 1
        if answer.get("label") == record.label:
            same += 1
        else:
            changes.setdefault(record.label, Counter())[str(answer.get("label"))] += 1
    return n, (same / n if n else None), {label: dict(c) for label, c in sorted(changes.items())}


def reviewed_accuracy(
    records: Iterable[rec.Classification],
    fetch: Callable[[rec.Classification], bytes | None],
    current: Classifier,
    candidate: Classifier,
    trained_on: set[str],
) -> dict[str, Any]:
    """Both models' accuracy on the human-labelled records (approved or
    relabeled), their files read with ``fetch`` and classified afresh by
    both. Records the candidate trained on (their ids in ``trained_on``) are
    left out (``excluded``), so the candidate is not scored on its own training data."""
    items = hits_current = hits_candidate = excluded = 0
    for record in records:
        label = record.final_label if record.status == rec.REVIEWED else None
        if label is None:
            continue
        if record.id in trained_on:
            excluded += 1
            continue
        data = fetch(record)
        if not data:
            continue
        try:
            mine, theirs = candidate.classify(data), current.classify(data)
        except ImageError:
            continue
        items += 1
        hits_candidate += mine.label == label
        hits_current += theirs.label == label
    return {
        "items": items,
        "excluded": excluded,
        "current_accuracy": hits_current / items if items else None,
        "candidate_accuracy": hits_candidate / items if items else None,
    }


def trained_ids(split: data_stage.Split) -> set[str]:
    """The local ids (record ids, for exports) of every added source's training images."""
    return {src.local_id(i) for i, _ in split.items["train"] if src.source_of(i) != src.BASE}


def compare(
    store: Store,
    gate: GateConfig,
    *,
    records: list[rec.Classification],
    fetch: Callable[[rec.Classification], bytes | None] | None,
    overrides: dict[str, str] | None = None,
) -> Comparison:
    """The candidate against the current model: shadow agreement and
    would-be changes from ``records``, accuracy on reviewed items for both
    (files read with ``fetch``; None: skipped), and the gate's verdict on the
    candidate's fixed test sets per source, plus the reviewed items: the
    candidate may not be more than ``max_regression`` below the current model
    there either. Raises LoopError when there is no candidate."""
    candidate_version = pointed(store, CANDIDATE_POINTER)
    if candidate_version is None:
        raise LoopError(
            f"no candidate model in {store.uri} ({CANDIDATE_POINTER} is absent): publish one with --publish-as candidate"
        )
    current_version = pointed(store, POINTER)
    candidate = load_classifier(store, candidate_version)
    current = load_classifier(store, current_version) if current_version else None
    result = Comparison(current_version, candidate_version)
    result.shadowed, result.agreement, result.would_change = shadow_agreement(records, candidate_version)
    dataset = candidate_test_set(store, candidate_version, candidate.size, overrides)
    decision = gate_on_split(candidate, current, dataset, gate)
    if current is not None and fetch is not None:
        result.reviewed = reviewed_accuracy(records, fetch, current, candidate, trained_ids(dataset.split))
        mine, theirs = result.reviewed["candidate_accuracy"], result.reviewed["current_accuracy"]
        if mine is not None and theirs is not None and mine < theirs - gate.max_regression:
            decision = GateDecision(
                False,
                f"on {result.reviewed['items']} reviewed items {mine:.2%} is more than {gate.max_regression:.2%} below "
                f"the current model ({theirs:.2%}); " + decision.reason,
                decision.candidate_accuracy,
                decision.current_version,
                decision.current_accuracy,
                decision.per_source,
            )
    result.gate = decision
    return result


def promote(store: Store, comparison: Comparison, *, force: bool = False) -> str:
    """Make the compared candidate the current model when the gate passed
    (or ``force``): the current pointer names it (``previous``: the old
    current), the candidate pointer is removed. Returns the message to show.
    Raises LoopError when the gate refuses (nothing moves) or the candidate
    changed since the comparison."""
    assert comparison.gate is not None
    if pointed(store, CANDIDATE_POINTER) != comparison.candidate:
        raise LoopError("the candidate changed while it was being compared; run the command again")
    if not comparison.gate.passed and not force:
        raise LoopError(
            f"REFUSED to promote {comparison.candidate}: {comparison.gate.reason}. "
            f"The current model stays {comparison.current}; --force promotes anyway"
        )
    store.write_bytes(POINTER, pointer_payload(comparison.candidate, previous=comparison.current).encode(), "application/json")
    store.delete(CANDIDATE_POINTER)
    log.info(
        "promoted %s (was %s)",
        comparison.candidate,
        comparison.current,
        extra={"version": comparison.candidate, "previous": comparison.current, "forced": not comparison.gate.passed},
    )
    return f"promoted {comparison.candidate} to current (previous: {comparison.current}): {comparison.gate.reason}"


def rollback(store: Store) -> str:
    """Point ``current`` back at the version it replaced (recorded in the
    pointer's ``previous``); the rolled-back version becomes its
    ``previous``. Raises LoopError when no previous version is recorded or it is gone."""
    if not store.exists(POINTER):
        raise LoopError(f"no current model in {store.uri}: nothing to roll back")
    payload = store.read_bytes(POINTER)
    now, previous = parse_pointer(payload), pointer_previous(payload)
    if previous is None:
        raise LoopError(f"the current model {now} records no previous version: nothing to roll back to")
    if not store.exists(version_prefix(previous) + MANIFEST_FILE):
        raise LoopError(f"the previous version {previous} is no longer in {store.uri}")
    store.write_bytes(POINTER, pointer_payload(previous, previous=now).encode(), "application/json")
    log.info("rolled back from %s to %s", now, previous, extra={"version": previous, "previous": now})
    return f"rolled back: current is {previous} again (was {now})"
