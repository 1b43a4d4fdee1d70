"""The classification record and the other Firestore documents: one definition.

``classifications/<id>``: one document per uploaded object version; ``<id>``
is derived from bucket, object name and generation, so a redelivered event
finds its own document. ``stats/<day>/shards/<n>``: sharded per-day counters
that do not contend. ``sweep_runs/<run_id>``: one document per sweep run
(written by ``functions/sweep.py``).

This module is the only non-test place that spells a field name of a
classification record as a string: writers build their (partial) updates with
the helpers of :mod:`shared.record_updates` (which use :class:`Field`) and
readers go through :class:`Classification`. Every
field, its meaning, type, unit and writer: ``docs/records.md``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.attributes import in_order

# -- collections ----------------------------------------------------------------

COLLECTION = "classifications"
STATS = "stats"
SHARDS = "shards"  #: the sub-collection of ``stats/<day>`` holding the counter shards
RUNS = "sweep_runs"
BACKFILL_RUNS = "backfill_runs"  #: one document per backfill or reclassify run (``backfill/runs.py``)
#: Counter shards per day. Each finished object bumps one shard, chosen at
#: random, inside its final transaction. With 10 shards, 4 concurrent
#: deliveries collided often enough on the Firestore emulator's document locks
#: to put 2-second waits in the 95th percentile (13 events/s); with 50 they
#: rarely do (32 events/s, bench/pipeline.py). Cloud Firestore sustains about
#: one write per second per document, so 50 shards also carry about 50
#: finishes per second there.
#: This is the default of the ``STATS_SHARDS`` setting (shared/settings.py),
#: which the processing core passes to :func:`shard_path`.
SHARD_COUNT = 50
#: Cloud Storage's limit on an object name, in bytes of UTF-8
GCS_NAME_LIMIT = 1024

# -- statuses and steps ---------------------------------------------------------

PROCESSING = "processing"
CLASSIFIED = "classified"
NEEDS_REVIEW = "needs_review"
REJECTED = "rejected"
FAILED = "failed"  # a transient failure; the platform retries
SKIPPED = "skipped"  # the object version was gone (deleted or overwritten) before we got to it
#: a zero-byte object version that is still the live one: not an upload's
#: content yet (tools write an empty object first and the content as a newer
#: version); no copy, the object stays where it is, not a rejection
EMPTY = "empty"
#: a needs_review record a person decided (its ``review`` map; functions/review_desk.py)
REVIEWED = "reviewed"
FINISHED = frozenset({CLASSIFIED, NEEDS_REVIEW, REJECTED, SKIPPED, EMPTY, REVIEWED})
STATUSES = (PROCESSING, CLASSIFIED, NEEDS_REVIEW, REJECTED, FAILED, SKIPPED, EMPTY, REVIEWED)

CLAIMED = "claimed"  #: step: the first delivery created the document
DECIDED = "decided"  #: step: the decision (label or rejection) is recorded
COPIED = "copied"  #: step: the copy in the processed bucket is recorded
DONE = "done"  #: step: finished
STEPS = (CLAIMED, DECIDED, COPIED, DONE)

#: bands of a classified or needs_review result (``band``; shared/thresholds.py
#: decides them from the model's per-class thresholds): ``auto`` is filed under
#: ``<category>/`` (status classified); ``check`` (a quick check) and ``review``
#: go to ``review/<category>/`` (status needs_review)
BAND_AUTO = "auto"
BAND_CHECK = "check"
BAND_REVIEW = "review"
BANDS = (BAND_AUTO, BAND_CHECK, BAND_REVIEW)

#: error reasons the core itself records (image problems: shared.errors.ImageError.REASONS)
TRANSIENT = "transient"
SOURCE_GONE = "source_gone"
SUPERSEDED = "superseded"  #: skipped: a zero-byte version a newer version of the name replaced
ZERO_BYTES = "zero_bytes"  #: empty: the object version holds no bytes

#: a person's decisions on a needs_review record (``review.decision``)
APPROVED, RELABELED, REVIEW_REJECTED = "approved", "relabeled", "rejected"
REVIEW_DECISIONS = (APPROVED, RELABELED, REVIEW_REJECTED)


class Field:
    """Top-level field names of a ``classifications`` document."""

    SOURCE = "source"
    STATUS = "status"
    STEP = "step"
    LABEL = "label"
    CONFIDENCE = "confidence"
    TOP_K = "top_k"
    MODEL_VERSION = "model_version"
    DESTINATION = "destination"
    ERROR = "error"
    TIMINGS_MS = "timings_ms"
    DECISION = "decision"
    TRIGGER = "trigger"
    ATTEMPTS = "attempts"
    EVENT_IDS = "event_ids"
    LEASE_OWNER = "lease_owner"
    LEASE_UNTIL = "lease_until"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    FINISHED_AT = "finished_at"
    SKU = "sku"
    #: the record's events and whether each went out (shared/outbox.py)
    OUTBOX = "outbox"
    BAND = "band"
    REVIEW = "review"
    REVIEW_PENDING = "review_pending"
    #: earlier model decisions replaced by ``fashionctl reclassify --apply``, oldest first:
    #: [{status, label, confidence, top_k, model_version, destination, replaced_at, run_id}]
    PREVIOUS = "previous"
    CANDIDATE = "candidate"  #: the shadow model's answer (owner: the model loop); see CANDIDATE_KEYS
    #: the model's attributes beside the category (issue 19): {name: ATTRIBUTE_KEYS map};
    #: absent for a category-only model; see attribute_entries() and effective_attributes()
    ATTRIBUTES = "attributes"

    ALL: tuple[str, ...] = ()  # filled below


Field.ALL = tuple(value for key, value in vars(Field).items() if key.isupper() and key != "ALL")
#: the key readers add for the document id (not a stored field)
DOC_ID = "id"
#: the processing core's bookkeeping, left out of exports
INTERNAL_FIELDS = frozenset({Field.LEASE_OWNER, Field.LEASE_UNTIL, Field.DECISION, Field.REVIEW_PENDING})
#: what a finished record always holds (the contract's fields)
CONTRACT_FIELDS = frozenset(
    {
        Field.SOURCE,
        Field.STATUS,
        Field.LABEL,
        Field.CONFIDENCE,
        Field.TOP_K,
        Field.MODEL_VERSION,
        Field.DESTINATION,
        Field.ERROR,
        Field.TIMINGS_MS,
        Field.CREATED_AT,
        Field.UPDATED_AT,
        Field.FINISHED_AT,
        Field.TRIGGER,
        Field.SKU,
    }
)
#: keys of ``timings_ms``, milliseconds
TIMING_STEPS = ("download", "classify", "copy", "delete", "total")
TOTAL_MS = "total"
_REASON, _MESSAGE, _TARGET, _BUCKET, _NAME, _GENERATION = "reason", "message", "target", "bucket", "name", "generation"
#: keys of the ``review`` map (docs/records.md)
REVIEW_DECISION, REVIEW_FINAL_LABEL, REVIEW_REASON = "decision", "final_label", "reason"
REVIEW_BY, REVIEW_AT, REVIEW_PREVIOUS = "reviewed_by", "reviewed_at", "previous"
#: ``review.attributes``: the reviewer's attribute corrections, {name: value or None}
#: (None: the reviewer left it empty); attributes not named keep the model's value
REVIEW_ATTRIBUTES = "attributes"


# -- attributes beside the category (issue 19) -------------------------------------

#: keys of one attribute in a record's ``attributes`` map: ``value`` (the class, or
#: None when ``confidence`` is below ``threshold``: left empty, flagged for review,
#: never guessed), ``confidence`` (the top class's probability, 0..1), ``threshold``
#: (the attribute's threshold from the model's manifest, 0..1), ``best`` (the top class anyway)
ATTRIBUTE_KEYS = ("value", "confidence", "threshold", "best")
#: where an attribute's effective value came from (:func:`attribute_sources`)
FROM_MODEL, FROM_REVIEWER = "model", "reviewer"


def attribute_entries(predicted: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A classifier's ``Prediction.attributes`` ({name: AttributePrediction}) ->
    the record's ``attributes`` map ({name: {value, confidence, threshold, best}});
    empty for a category-only model."""
    return {
        str(name): {
            "value": a.value,
            "confidence": float(a.confidence),
            "threshold": float(a.threshold),
            "best": a.best,
        }
        for name, a in predicted.items()
    }


def attribute_corrections(review: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``review.attributes`` (the reviewer's corrections), {} when none or malformed."""
    corrections = (review or {}).get(REVIEW_ATTRIBUTES)
    if not isinstance(corrections, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else None for k, v in corrections.items()}


def effective_attributes(attributes: Mapping[str, Any] | None, review: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The attributes a record settles on: the model's ``value`` (None when it
    was low-confidence) overridden by the reviewer's corrections
    (``review.attributes``; a correction to None leaves it empty). Names: the
    model's attributes plus any corrected one, in :data:`shared.attributes.ATTRIBUTES`
    order (a Firestore map comes back in no fixed order). Empty for a
    category-only model with no corrections."""
    values = {
        str(name): (entry.get("value") if isinstance(entry.get("value"), str) else None)
        for name, entry in (attributes or {}).items()
        if isinstance(entry, Mapping)
    }
    values |= attribute_corrections(review)
    return {name: values[name] for name in in_order(values)}


def attribute_sources(attributes: Mapping[str, Any] | None, review: Mapping[str, Any] | None) -> dict[str, str | None]:
    """For each name of :func:`effective_attributes`: :data:`FROM_REVIEWER`
    when a person set it (even to None), :data:`FROM_MODEL` when the model's
    confident value stands, None when it is empty and nobody set it."""
    corrected = attribute_corrections(review)
    sources: dict[str, str | None] = {}
    for name, value in effective_attributes(attributes, review).items():
        sources[name] = FROM_REVIEWER if name in corrected else (FROM_MODEL if value is not None else None)
    return sources


# -- the candidate map (the shadow model) ----------------------------------------

#: ``candidate`` keys: the shadow model's answer, never acted upon
CANDIDATE_KEYS = ("model_version", "label", "confidence", "top_k", "latency_ms")


def candidate_answer(
    model_version: str, label: str, confidence: float, top_k: list[dict[str, Any]], latency_ms: float
) -> dict[str, Any]:
    """A record's ``candidate`` map: the shadow model's top label, its
    probability (0..1), ``top_k`` (:func:`top_k_entries`) and the time it took
    (milliseconds, decoding included)."""
    return dict(zip(CANDIDATE_KEYS, (model_version, label, confidence, list(top_k), latency_ms), strict=True))


# -- parts of a record ----------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """One version of one uploaded object (a record's ``source``)."""

    bucket: str
    name: str
    generation: int
    size: int | None = None  # bytes
    content_type: str | None = None

    @property
    def doc_id(self) -> str:
        """Its ``classifications`` document id."""
        return classification_id(self.bucket, self.name, self.generation)

    def to_dict(self) -> dict[str, Any]:
        """The ``source`` map; ``generation`` as a decimal string (it exceeds 2**53)."""
        return {
            _BUCKET: self.bucket,
            _NAME: self.name,
            _GENERATION: str(self.generation),
            "size": self.size,
            "content_type": self.content_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectRef:
        """The inverse of :meth:`to_dict`. Raises KeyError or ValueError on a malformed map."""
        size = data.get("size")
        return cls(data[_BUCKET], data[_NAME], int(data[_GENERATION]), int(size) if size else None, data.get("content_type"))


@dataclass(frozen=True)
class Destination:
    """Where the copy went in the processed bucket (a record's ``destination``)."""

    bucket: str
    name: str

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {_BUCKET: self.bucket, _NAME: self.name}

    @classmethod
    def from_dict(cls, data: Any) -> Destination | None:
        """None for a missing or malformed map."""
        if not isinstance(data, Mapping) or data.get(_NAME) is None:
            return None
        return cls(str(data.get(_BUCKET) or ""), str(data[_NAME]))


def top_k_entries(pairs: Iterable[tuple[str, float]]) -> list[dict[str, Any]]:
    """``[(label, score), ...]`` -> the ``top_k`` list ``[{"label", "score"}, ...]`` (scores 0..1)."""
    return [{Field.LABEL: label, "score": score} for label, score in pairs]


def error_info(reason: str, message: str) -> dict[str, str]:
    """A record's ``error`` map (the same shape as ``ImageError.to_dict()``)."""
    return {_REASON: reason, _MESSAGE: message}


def reason_of(error: Any) -> str | None:
    """The ``reason`` of an ``error`` map, or None."""
    return error.get(_REASON) if isinstance(error, Mapping) else None


@dataclass(frozen=True)
class Decision:
    """What classifying the bytes decided (a record's ``decision``, kept until
    the record is finished so that a repeated delivery does not decide again)."""

    status: str  # CLASSIFIED, NEEDS_REVIEW, REJECTED (or SKIPPED, never stored as a decision)
    label: str | None = None
    confidence: float | None = None  # 0..1
    top_k: list[dict[str, Any]] = field(default_factory=list)  # [{label, score}], best first
    model_version: str | None = None
    error: dict[str, str] | None = None  # error_info(); set for REJECTED and SKIPPED
    target: str | None = None  # the object name in the processed bucket it files the object under
    sku: str | None = None  # the uploader's SKU (custom metadata ``SKU_METADATA_KEY``), read with the bytes
    band: str | None = None  # one of BANDS for CLASSIFIED and NEEDS_REVIEW; None otherwise
    candidate: dict[str, Any] | None = None  # candidate_answer() of the shadow model, when one ran
    #: attribute_entries() of the model's attribute heads; empty for a category-only model
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {
            Field.STATUS: self.status,
            Field.LABEL: self.label,
            Field.CONFIDENCE: self.confidence,
            Field.TOP_K: list(self.top_k),
            Field.MODEL_VERSION: self.model_version,
            Field.ERROR: self.error,
        }
        if self.target is not None:
            data[_TARGET] = self.target
        if self.sku is not None:
            data[Field.SKU] = self.sku
        if self.band is not None:
            data[Field.BAND] = self.band
        if self.candidate is not None:
            data[Field.CANDIDATE] = dict(self.candidate)
        if self.attributes:
            data[Field.ATTRIBUTES] = {name: dict(entry) for name, entry in self.attributes.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            status=data[Field.STATUS],
            label=data.get(Field.LABEL),
            confidence=data.get(Field.CONFIDENCE),
            top_k=list(data.get(Field.TOP_K) or []),
            model_version=data.get(Field.MODEL_VERSION),
            error=data.get(Field.ERROR),
            target=data.get(_TARGET),
            sku=data.get(Field.SKU),
            band=data.get(Field.BAND),
            candidate=data.get(Field.CANDIDATE) if isinstance(data.get(Field.CANDIDATE), Mapping) else None,
            attributes=_attribute_map(data.get(Field.ATTRIBUTES)),
        )


# -- the record -------------------------------------------------------------------


@dataclass
class Classification:
    """One ``classifications`` document, as readers see it. Every field is
    optional: a record is written in steps (``docs/records.md``)."""

    source: ObjectRef | None = None
    status: str | None = None
    step: str | None = None
    label: str | None = None
    confidence: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None
    destination: Destination | None = None
    error: dict[str, str] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    decision: Decision | None = None
    trigger: str | None = None
    attempts: int = 0
    event_ids: list[str] = field(default_factory=list)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    sku: str | None = None
    outbox: dict[str, Any] | None = None  # shared/outbox.py: the record's events, pending or sent
    band: str | None = None  # BANDS; classified and needs_review records only
    review: dict[str, Any] | None = None  # a person's decision (ReviewEntry.to_dict() + "previous")
    review_pending: dict[str, Any] | None = None  # internal: a decision being applied (functions/review_desk.py)
    previous: list[dict[str, Any]] = field(default_factory=list)  # decisions replaced by reclassify --apply
    candidate: dict[str, Any] | None = None  # the shadow model's answer (CANDIDATE_KEYS), or None
    #: the model's attributes ({name: {value, confidence, threshold, best}}); empty for a category-only model
    attributes: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # the document id (not stored as a field)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def final_label(self) -> str | None:
        """The category a person or the model settled on: ``review.final_label``
        when reviewed, ``label`` when classified, else None."""
        if self.status == REVIEWED:
            return (self.review or {}).get(REVIEW_FINAL_LABEL)
        return self.label if self.status == CLASSIFIED else None

    @property
    def final_attributes(self) -> dict[str, str | None]:
        """The effective attributes (:func:`effective_attributes`): the
        model's values overridden by the reviewer's corrections."""
        return effective_attributes(self.attributes, self.review)

    @property
    def empty_attributes(self) -> list[str]:
        """Names of the attributes left empty (low confidence, not set by a person)."""
        return [name for name, value in self.final_attributes.items() if value is None]

    @property
    def review_decision(self) -> str | None:
        """``review.decision`` (APPROVED, RELABELED or REVIEW_REJECTED), or None."""
        return self.review.get(REVIEW_DECISION) if self.review else None

    @property
    def reviewer(self) -> str | None:
        """``review.reviewed_by``, or None."""
        return self.review.get(REVIEW_BY) if self.review else None

    @property
    def reason(self) -> str | None:
        return reason_of(self.error)

    def to_firestore(self) -> dict[str, Any]:
        """Every stored field (the document id is not one)."""
        return {
            Field.SOURCE: self.source.to_dict() if self.source else None,
            Field.STATUS: self.status,
            Field.STEP: self.step,
            Field.LABEL: self.label,
            Field.CONFIDENCE: self.confidence,
            Field.TOP_K: list(self.top_k),
            Field.MODEL_VERSION: self.model_version,
            Field.DESTINATION: self.destination.to_dict() if self.destination else None,
            Field.ERROR: self.error,
            Field.TIMINGS_MS: dict(self.timings_ms),
            Field.DECISION: self.decision.to_dict() if self.decision else None,
            Field.TRIGGER: self.trigger,
            Field.ATTEMPTS: self.attempts,
            Field.EVENT_IDS: list(self.event_ids),
            Field.LEASE_OWNER: self.lease_owner,
            Field.LEASE_UNTIL: self.lease_until,
            Field.CREATED_AT: self.created_at,
            Field.UPDATED_AT: self.updated_at,
            Field.FINISHED_AT: self.finished_at,
            Field.SKU: self.sku,
            Field.OUTBOX: self.outbox,
            Field.BAND: self.band,
            Field.REVIEW: self.review,
            Field.REVIEW_PENDING: self.review_pending,
            Field.PREVIOUS: list(self.previous),
            Field.CANDIDATE: dict(self.candidate) if self.candidate is not None else None,
            Field.ATTRIBUTES: {name: dict(entry) for name, entry in self.attributes.items()},
        }

    @classmethod
    def from_firestore(cls, data: Mapping[str, Any] | None, doc_id: str | None = None) -> Classification:
        """A stored document (or a reader's dict with an ``id`` key); missing
        or malformed parts are None or empty, never an exception."""
        data = data or {}
        source = data.get(Field.SOURCE)
        try:
            ref = ObjectRef.from_dict(source) if isinstance(source, Mapping) else None
        except (KeyError, TypeError, ValueError):
            ref = None
        decision = data.get(Field.DECISION)
        error = data.get(Field.ERROR)
        return cls(
            source=ref,
            status=data.get(Field.STATUS),
            step=data.get(Field.STEP),
            label=data.get(Field.LABEL),
            confidence=data.get(Field.CONFIDENCE),
            top_k=list(data.get(Field.TOP_K) or []),
            model_version=data.get(Field.MODEL_VERSION),
            destination=Destination.from_dict(data.get(Field.DESTINATION)),
            error=error if isinstance(error, Mapping) else None,
            timings_ms=dict(data.get(Field.TIMINGS_MS) or {}),
            decision=Decision.from_dict(decision) if isinstance(decision, Mapping) and Field.STATUS in decision else None,
            trigger=data.get(Field.TRIGGER),
            attempts=int(data.get(Field.ATTEMPTS) or 0),
            event_ids=list(data.get(Field.EVENT_IDS) or []),
            lease_owner=data.get(Field.LEASE_OWNER),
            lease_until=data.get(Field.LEASE_UNTIL),
            created_at=data.get(Field.CREATED_AT),
            updated_at=data.get(Field.UPDATED_AT),
            finished_at=data.get(Field.FINISHED_AT),
            sku=data.get(Field.SKU) if isinstance(data.get(Field.SKU), str) else None,
            outbox=dict(data[Field.OUTBOX]) if isinstance(data.get(Field.OUTBOX), Mapping) else None,
            band=data.get(Field.BAND) if data.get(Field.BAND) in BANDS else None,
            review=dict(data[Field.REVIEW]) if isinstance(data.get(Field.REVIEW), Mapping) else None,
            review_pending=dict(data[Field.REVIEW_PENDING]) if isinstance(data.get(Field.REVIEW_PENDING), Mapping) else None,
            previous=[p for p in data.get(Field.PREVIOUS) or [] if isinstance(p, Mapping)],
            candidate=dict(data[Field.CANDIDATE]) if isinstance(data.get(Field.CANDIDATE), Mapping) else None,
            attributes=_attribute_map(data.get(Field.ATTRIBUTES)),
            id=doc_id if doc_id is not None else data.get(DOC_ID),
        )


def _attribute_map(data: Any) -> dict[str, dict[str, Any]]:
    """A stored ``attributes`` map, its malformed entries left out (never raises)."""
    if not isinstance(data, Mapping):
        return {}
    return {str(name): dict(entry) for name, entry in data.items() if isinstance(entry, Mapping)}


def with_id(snapshot: Any) -> dict[str, Any]:
    """A document snapshot as a dict with its id under ``id`` (what readers list)."""
    return {DOC_ID: snapshot.id, **(snapshot.to_dict() or {})}


def leased(data: Mapping[str, Any], now: datetime) -> bool:
    """A record another delivery holds an unexpired lease on."""
    lease_until = data.get(Field.LEASE_UNTIL)
    return data.get(Field.STATUS) == PROCESSING and bool(lease_until) and lease_until > now


def is_finished(data: Mapping[str, Any] | None) -> bool:
    """A stored document (or None) whose status is one of :data:`FINISHED`."""
    return (data or {}).get(Field.STATUS) in FINISHED


def classification_id(bucket: str, name: str, generation: int) -> str:
    """Stable document id for one object version (names may hold '/', which
    Firestore ids cannot)."""
    return hashlib.sha256(f"gs://{bucket}/{name}#{generation}".encode()).hexdigest()[:40]


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every timestamp field holds)."""
    return datetime.now(UTC)


def day_of(moment: datetime) -> str:
    """``YYYY-MM-DD`` of ``moment`` (the counters' day)."""
    return moment.strftime("%Y-%m-%d")


# -- counters: stats/<day>/shards/<n> ----------------------------------------------

TOTAL = "total"  #: shard field: finished objects
DAY = "day"  #: shard field: its day, YYYY-MM-DD
#: shard fields "<group>.<name>"; "review": people's decisions (approved, relabeled, rejected), not finishes
COUNTER_GROUPS = ("status", "category", "rejection", "review")
STATUS_GROUP, CATEGORY_GROUP, REJECTION_GROUP, REVIEW_GROUP = COUNTER_GROUPS


def shard_path(moment: datetime, shard: int | None = None, count: int = SHARD_COUNT) -> tuple[str, str, str, str]:
    """``("stats", day, "shards", n)``: the counter shard of ``moment``'s day,
    ``n`` at random in ``range(count)`` when not given."""
    shard = random.randrange(count) if shard is None else shard
    return (STATS, day_of(moment), SHARDS, str(shard))


def counter_fields(status: str, label: str | None, reason: str | None) -> dict[str, int]:
    """Which counters one finished object increments."""
    fields = {TOTAL: 1, f"{STATUS_GROUP}.{status}": 1}
    if label and status in (CLASSIFIED, NEEDS_REVIEW):
        fields[f"{CATEGORY_GROUP}.{label}"] = 1
    if reason and status == REJECTED:
        fields[f"{REJECTION_GROUP}.{reason}"] = 1
    return fields


def counted(counts: Mapping[str, Any], increments: Mapping[str, int], day: str) -> dict[str, Any]:
    """A counter shard's whole new content: ``counts`` plus ``increments``.
    Written whole inside the transaction that read it, rather than with
    Increment transforms, which the npm Firestore emulator rejects (or
    misnames) on field names holding dots or spaces ("category.Casual Shoes")."""
    return {**counts, **{key: int(counts.get(key) or 0) + n for key, n in increments.items()}, DAY: day}


def sum_shards(shards: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counter shard documents (``total``, ``status.<s>``, ``category.<label>``,
    ``rejection.<reason>``, as flat dotted names or nested maps) -> totals
    ``{"total": n, "status": {...}, "category": {...}, "rejection": {...}}``."""
    totals: dict[str, Any] = {TOTAL: 0} | {group: {} for group in COUNTER_GROUPS}
    for shard in shards:
        totals[TOTAL] += _count(shard.get(TOTAL))
        for key, value in shard.items():
            group, _, name = key.partition(".")
            if group not in COUNTER_GROUPS:
                continue
            items = value.items() if isinstance(value, Mapping) and not name else [(name, value)]
            for item, count in items:
                totals[group][item] = totals[group].get(item, 0) + _count(count)
    return totals


def merge_totals(into: dict[str, Any], day: Mapping[str, Any]) -> None:
    """Add one :func:`sum_shards` result to another, in place."""
    into[TOTAL] += day[TOTAL]
    for group in COUNTER_GROUPS:
        for name, count in day[group].items():
            into[group][name] = into[group].get(name, 0) + count


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
