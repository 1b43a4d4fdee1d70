"""The review desk's core: the queue of ``needs_review`` records, one item,
and people's decisions on them (approve, relabel, reject). Knows nothing of
HTTP (``functions/review_api.py`` adapts it).

A decision is applied in steps, each repeatable after a crash at any point:

1. a Firestore transaction checks the record and writes ``review_pending``
   (the decision, where the file is, where it goes): of concurrent
   different decisions exactly one wins, the others are told ``conflict``;
   an identical concurrent decision joins the one in progress;
2. the file is copied in the processed bucket, create-only
   (``if_generation_match=0``) from the review copy's generation, to
   ``<final-category>/<name>`` (or ``rejected/<name>``); when a different
   file already sits there, to the generation-suffixed name
   (:func:`functions.destinations.with_generation`), never overwriting;
3. the new name and the review copy's generation are recorded in ``review_pending``;
4. the review copy is deleted, pinned to that generation;
5. an atomic batch sets ``status`` ``reviewed``, the ``review`` map and the new
   ``destination``, clears ``review_pending``, stages the decision's
   ``fashion.review.v1.decided`` event in the record's outbox
   (:meth:`functions.event_outbox.EventOutbox.stage_decided`; one stable id
   per decision, its record version) and counts the decision in the day's
   stats shard (group ``review``);
6. the event is published and marked sent
   (:meth:`functions.event_outbox.EventOutbox.deliver`). A crash before that
   leaves it pending in the outbox: a retry of the same decision, or the
   sweep, publishes it with the same id.

A retry of the same decision picks up wherever the last attempt stopped. The
classify function and the sweep never touch the record (it is finished:
``needs_review`` and ``reviewed`` are both in :data:`shared.records.FINISHED`)
and never write these names, so they cannot undo a decision.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from functions import destinations
from functions.dependencies import CALL_TIMEOUT, bounded_retry, storage_retry
from functions.event_outbox import EventOutbox
from functions.failpoints import FailPoints
from shared import copy_metadata
from shared import records as rec
from shared.review_backlog import Backlog, backlog_of, band_of, decided_on, margin_of
from shared.settings import Settings

log = logging.getLogger(__name__)

APPROVE, RELABEL, REJECT = "approve", "relabel", "reject"
ACTIONS = {APPROVE: rec.APPROVED, RELABEL: rec.RELABELED, REJECT: rec.REVIEW_REJECTED}
ORDER_OLDEST, ORDER_UNCERTAIN = "oldest", "uncertain"
ORDERS = (ORDER_OLDEST, ORDER_UNCERTAIN)
MAX_PAGE_SIZE = 200
MAX_REASON_CHARS = 500
#: at most this many attribute corrections in one decision, each value at most this long
MAX_ATTRIBUTES, MAX_ATTRIBUTE_CHARS = 20, 100
#: the queue's ``attributes`` filter: only items with at least one attribute left empty
ATTRIBUTES_EMPTY = "empty"
#: the reason recorded for a rejection sent without one
DEFAULT_REJECT_REASON = "unusable"
#: keys of the internal ``review_pending`` map
_TOKEN, _ENTRY, _FROM, _TARGET, _DEST, _FROM_GENERATION = "token", "entry", "from", "target", "destination", "from_generation"
_SOURCE_GENERATION = "source_generation"
#: the record's model ``attributes`` in ``review_pending``: the moved copy's attribute keys are rewritten from them
_MODEL_ATTRIBUTES = "model_attributes"
#: how many times a fenced write reads again after losing a race
_FENCE_ATTEMPTS = 20
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def valid_id(doc_id: str) -> bool:
    """A string that can be a record id (``classification_id()`` makes 40 hex
    digits); Firestore's reserved ``__...__`` ids are not."""
    return bool(_ID.match(doc_id)) and not (doc_id.startswith("__") and doc_id.endswith("__"))


class ReviewError(Exception):
    """A decision or a query that cannot be done. ``kind``: one of
    ``not_found`` (unknown id), ``invalid`` (malformed input, unknown label),
    ``conflict`` (decided differently, not in review, file gone) or
    ``unavailable`` (a dependency failed; retry); ``code``: a short word for
    machines; ``message``: for people."""

    NOT_FOUND, INVALID, CONFLICT, UNAVAILABLE = "not_found", "invalid", "conflict", "unavailable"

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message


def spelled(value: str, labels: list[str]) -> str:
    """``value`` in the spelling of ``labels`` when one matches it
    case-insensitively (and around spaces), else ``value`` unchanged."""
    wanted = value.strip().casefold()
    for label in labels:
        if label.casefold() == wanted:
            return label
    return value


@dataclass(frozen=True)
class DecisionRequest:
    """One decision as asked: ``action`` approve|relabel|reject, ``label`` (a
    category, for relabel), ``reason`` (for reject; a note otherwise),
    ``change``: replace an earlier, different decision; ``attributes``: the
    reviewer's attribute corrections, {name: value or None (left empty)},
    checked against the record's model's attribute labels when applied."""

    id: str
    action: str
    label: str | None = None
    reason: str | None = None
    change: bool = False
    attributes: dict[str, str | None] | None = None

    @classmethod
    def from_dict(cls, data: Any) -> DecisionRequest:
        """From a request body's item. Raises ReviewError ``invalid``."""
        if not isinstance(data, Mapping):
            raise ReviewError(ReviewError.INVALID, "bad_request", "each decision must be a JSON object")
        unknown = set(data) - {"id", "action", "label", "reason", "change", "attributes"}
        if unknown:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
        doc_id, action, label = data.get("id"), data.get("action"), data.get("label")
        reason, change = data.get("reason"), data.get("change", False)
        if not isinstance(doc_id, str) or not valid_id(doc_id):
            raise ReviewError(ReviewError.INVALID, "bad_request", "id must be a record id (letters, digits, - and _)")
        if action not in ACTIONS:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"action must be one of {', '.join(ACTIONS)}")
        if label is not None and not isinstance(label, str):
            raise ReviewError(ReviewError.INVALID, "bad_request", "label must be a string")
        if action == RELABEL and not label:
            raise ReviewError(ReviewError.INVALID, "bad_request", "relabel needs a label")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            raise ReviewError(
                ReviewError.INVALID, "bad_request", f"reason must be a string of at most {MAX_REASON_CHARS} characters"
            )
        if not isinstance(change, bool):
            raise ReviewError(ReviewError.INVALID, "bad_request", "change must be true or false")
        attributes = _attribute_corrections(data.get("attributes"))
        if attributes and action == REJECT:
            raise ReviewError(ReviewError.INVALID, "bad_request", "a rejection takes no attributes")
        return cls(doc_id, action, label, reason, change, attributes)


def _attribute_corrections(value: Any) -> dict[str, str | None] | None:
    """A request's ``attributes``: None when absent, else {name: value or None}.
    Raises ReviewError ``invalid`` on a malformed map (the values' labels are
    checked against the model when the decision is applied)."""
    if value is None:
        return None
    problem = "attributes must be an object {name: value or null}"
    if not isinstance(value, Mapping) or len(value) > MAX_ATTRIBUTES:
        raise ReviewError(ReviewError.INVALID, "bad_request", f"{problem} with at most {MAX_ATTRIBUTES} names")
    for name, item in value.items():
        if not isinstance(name, str) or not name or len(name) > MAX_ATTRIBUTE_CHARS:
            raise ReviewError(ReviewError.INVALID, "bad_request", problem)
        if item is not None and (not isinstance(item, str) or not item or len(item) > MAX_ATTRIBUTE_CHARS):
            raise ReviewError(
                ReviewError.INVALID, "bad_request", f"attribute {name!r}: a value must be a label (a string) or null"
            )
    return dict(value)


@dataclass(frozen=True)
class DecisionResult:
    """A decision applied (or found already applied: ``unchanged``)."""

    record: rec.Classification
    unchanged: bool = False


@dataclass(frozen=True)
class QueueQuery:
    """A page of the queue: filters ``band`` (BAND_CHECK or BAND_REVIEW),
    ``category`` (the predicted label), ``older_than`` (seconds since the
    record was created); ``order`` oldest|uncertain (smallest top1-top2
    margin first); ``page_token`` from the previous page."""

    band: str | None = None
    category: str | None = None
    older_than: float | None = None
    order: str = ORDER_OLDEST
    page_size: int = 50
    page_token: str | None = None
    attributes: str | None = None  # ATTRIBUTES_EMPTY: only items with an attribute left empty

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> QueueQuery:
        """From query-string arguments. Raises ReviewError ``invalid``."""
        unknown = set(args) - {"band", "category", "older_than", "order", "page_size", "page_token", "attributes"}
        if unknown:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"unknown parameters: {', '.join(sorted(unknown))}")
        band = args.get("band") or None
        if band is not None and band not in (rec.BAND_CHECK, rec.BAND_REVIEW):
            raise ReviewError(ReviewError.INVALID, "bad_request", f"band must be {rec.BAND_CHECK} or {rec.BAND_REVIEW}")
        order = args.get("order") or ORDER_OLDEST
        if order not in ORDERS:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"order must be one of {', '.join(ORDERS)}")
        try:
            older_than = float(args["older_than"]) if args.get("older_than") else None
            page_size = int(args.get("page_size") or 50)
        except ValueError:
            raise ReviewError(ReviewError.INVALID, "bad_request", "older_than and page_size must be numbers") from None
        if older_than is not None and not 0 <= older_than < 10**9:
            raise ReviewError(ReviewError.INVALID, "bad_request", "older_than must be seconds >= 0")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        attributes = args.get("attributes") or None
        if attributes is not None and attributes != ATTRIBUTES_EMPTY:
            raise ReviewError(ReviewError.INVALID, "bad_request", f"attributes must be {ATTRIBUTES_EMPTY}")
        return cls(band, args.get("category") or None, older_than, order, page_size, args.get("page_token") or None, attributes)


@dataclass(frozen=True)
class QueuePage:
    items: list[rec.Classification]
    next_page_token: str | None
    remaining: int  # records in the queue under the filters
    done_today: int  # decisions counted today (UTC), all reviewers


def read_backlog(db: Any, now: datetime | None = None, timeout: float = 30.0, days: int = 7) -> Backlog:
    """The backlog read from Firestore: every needs_review record (an
    equality query on ``status``) and the records decided in the last
    ``days`` days (a range query on ``review.reviewed_at``; single-field
    indexes only), so the cost does not grow with the history."""
    now = now or rec.utcnow()
    collection = db.collection(rec.COLLECTION)
    waiting = collection.where(filter=firestore.FieldFilter(rec.Field.STATUS, "==", rec.NEEDS_REVIEW))
    since = now - timedelta(days=days)
    decided = collection.where(filter=firestore.FieldFilter(f"{rec.Field.REVIEW}.{rec.REVIEW_AT}", ">=", since))
    found = [rec.Classification.from_firestore(s.to_dict(), s.id) for q in (waiting, decided) for s in q.stream(timeout=timeout)]
    return backlog_of(found, now)


def _entry(record: rec.Classification, request: DecisionRequest, reviewer: str, now: datetime) -> dict[str, Any]:
    """The ``review`` map (without ``previous``) a request asks for. A relabel
    to the model's own label is an approval."""
    decision = ACTIONS[request.action]
    final_label = record.label if request.action == APPROVE else request.label
    if decision == rec.RELABELED and final_label == record.label:
        decision = rec.APPROVED
    if decision == rec.REVIEW_REJECTED:
        final_label = None
    reason = (request.reason or "").strip() or (DEFAULT_REJECT_REASON if decision == rec.REVIEW_REJECTED else None)
    entry = {
        rec.REVIEW_DECISION: decision,
        rec.REVIEW_FINAL_LABEL: final_label,
        rec.REVIEW_REASON: reason,
        rec.REVIEW_BY: reviewer,
        rec.REVIEW_AT: now,
    }
    if request.attributes:
        entry[rec.REVIEW_ATTRIBUTES] = dict(request.attributes)
    return entry


def _same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two decisions alike: the same decision, final label and attribute
    corrections (reason, reviewer and time aside)."""
    keys = (rec.REVIEW_DECISION, rec.REVIEW_FINAL_LABEL)
    if not a or not b:
        return False
    return all(a.get(k) == b.get(k) for k in keys) and rec.attribute_corrections(a) == rec.attribute_corrections(b)


class ReviewDesk:
    """The queue and the decisions over a google-cloud-storage client
    ``storage`` and a google-cloud-firestore client ``db``. ``labels()``
    returns the categories a relabel may name (the current model's);
    ``attribute_labels(model_version)`` the attribute labels of that model's
    manifest, {name: [labels]} ({} for a category-only model; default: no
    model has attributes), against which attribute corrections are checked.
    ``outbox``: stages and publishes the decisions' completion events
    (default: the settings' ``EVENTS_TOPIC``; off when it is empty)."""

    def __init__(
        self,
        settings: Settings,
        storage: Any,
        db: Any,
        labels: Callable[[], list[str]],
        *,
        now: Callable[[], datetime] = rec.utcnow,
        failpoints: FailPoints | None = None,
        outbox: EventOutbox | None = None,
        attribute_labels: Callable[[str | None], dict[str, list[str]]] | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.db = db
        self.labels = labels
        self.attribute_labels = attribute_labels or (lambda _version: {})
        self.now = now
        self.failpoints = failpoints if failpoints is not None else FailPoints.parse(settings.failpoints)
        self._retry = bounded_retry(settings.dependency_deadline_seconds)
        self._storage_retry = storage_retry(settings.dependency_deadline_seconds)
        self.outbox = outbox or EventOutbox.from_settings(settings, db, retry=self._retry, timeout=CALL_TIMEOUT)

    # -- reading -----------------------------------------------------------------

    def get(self, doc_id: str) -> rec.Classification:
        """One record. Raises ReviewError ``not_found``."""
        if not valid_id(doc_id):
            raise ReviewError(ReviewError.NOT_FOUND, "not_found", "no such item")
        snapshot = self._doc(doc_id).get(retry=self._retry, timeout=CALL_TIMEOUT)
        if not snapshot.exists:
            raise ReviewError(ReviewError.NOT_FOUND, "not_found", f"no item {doc_id}")
        return rec.Classification.from_firestore(snapshot.to_dict(), snapshot.id)

    def queue(self, query: QueueQuery) -> QueuePage:
        """A page of the needs_review records under ``query``'s filters and
        order. The queue is read whole and sorted here (a review queue holds
        hundreds or thousands of records, not millions), so no composite
        index is needed; the page token is the last item's sort key, so a
        page is stable while items are decided. Raises ReviewError ``invalid``
        on a malformed token, ``unknown_label`` on a category that is not
        one of the current model's labels."""
        if query.category and query.category not in self.labels():
            raise ReviewError(
                ReviewError.INVALID, "unknown_label", f"unknown category {query.category!r}: not one of the model's labels"
            )
        collection = self.db.collection(rec.COLLECTION)
        q = collection.where(filter=firestore.FieldFilter(rec.Field.STATUS, "==", rec.NEEDS_REVIEW))
        if query.category:
            q = q.where(filter=firestore.FieldFilter(rec.Field.LABEL, "==", query.category))
        records = [rec.Classification.from_firestore(s.to_dict(), s.id) for s in q.stream(timeout=CALL_TIMEOUT)]
        now = self.now()
        if query.band:
            records = [r for r in records if band_of(r) == query.band]
        if query.attributes == ATTRIBUTES_EMPTY:
            records = [r for r in records if r.empty_attributes]
        if query.older_than is not None:
            cutoff = now - timedelta(seconds=query.older_than)
            records = [r for r in records if r.created_at is not None and r.created_at <= cutoff]
        records.sort(key=lambda r: _sort_key(r, query.order))
        remaining = len(records)
        if query.page_token:
            after = _parse_token(query.page_token, query.order)
            records = [r for r in records if _sort_key(r, query.order) > after]
        page = records[: query.page_size]
        token = _make_token(_sort_key(page[-1], query.order), query.order) if len(records) > query.page_size else None
        return QueuePage(page, token, remaining, self.done_today())

    def done_today(self) -> int:
        """Decisions made today (UTC), all reviewers, by the one rule of
        shared.review_backlog.decision_events (each replaced decision counted
        once), read from the records decided since midnight."""
        now = self.now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        collection = self.db.collection(rec.COLLECTION)
        decided = collection.where(filter=firestore.FieldFilter(f"{rec.Field.REVIEW}.{rec.REVIEW_AT}", ">=", midnight))
        found = [rec.Classification.from_firestore(s.to_dict(), s.id) for s in decided.stream(timeout=CALL_TIMEOUT)]
        return decided_on(backlog_of(found, now).to_dict(), rec.day_of(now))

    def image(self, record: rec.Classification) -> tuple[bytes, str | None]:
        """The bytes and Content-Type of the record's file where it now is.
        Raises ReviewError ``not_found`` when there is none."""
        destination = record.destination
        if destination is None:
            raise ReviewError(ReviewError.NOT_FOUND, "no_file", "the item has no file in the processed bucket")
        blob = self.storage.bucket(destination.bucket or self.settings.processed_bucket).get_blob(
            destination.name, timeout=CALL_TIMEOUT, retry=self._storage_retry
        )
        if blob is None:
            raise ReviewError(ReviewError.NOT_FOUND, "no_file", "the item's file is gone")
        return blob.download_as_bytes(timeout=CALL_TIMEOUT, retry=self._storage_retry), blob.content_type

    def metadata(self, record: rec.Classification) -> dict[str, str]:
        """The custom metadata of the record's file (untrusted strings), {} when none."""
        destination = record.destination
        if destination is None:
            return {}
        blob = self.storage.bucket(destination.bucket or self.settings.processed_bucket).get_blob(
            destination.name, timeout=CALL_TIMEOUT, retry=self._storage_retry
        )
        return {str(k): str(v) for k, v in ((blob.metadata if blob is not None else None) or {}).items()}

    # -- deciding ----------------------------------------------------------------

    def decide(
        self,
        request: DecisionRequest,
        reviewer: str,
        on_decided: Callable[[rec.Classification], None] | None = None,
    ) -> DecisionResult:
        """Apply one decision (the module's steps). ``on_decided(record)`` is
        called once, after the decision commits and its event is published,
        by the call that committed it.
        A different decision with ``change`` on an item whose decision was
        interrupted more than ``LEASE_SECONDS`` ago first finishes that one,
        then replaces it (kept in ``review.previous``).
        Raises ReviewError: ``not_found``, ``invalid`` (unknown label),
        ``conflict`` (decided differently without ``change``, a different
        decision in progress, not in review, the file gone)."""
        if request.action == RELABEL and request.label not in self.labels():
            raise ReviewError(ReviewError.INVALID, "unknown_label", f"unknown label {request.label!r}")
        doc = self._doc(request.id)
        try:
            outcome = self._begin(doc, request, reviewer)
        except ReviewError as exc:
            interrupted = self._stale_pending(doc) if exc.code == "decision_in_progress" and request.change else None
            if interrupted is None:
                raise
            self._apply(doc, interrupted)  # finish the interrupted decision, then change it
            outcome = self._begin(doc, request, reviewer)
        if isinstance(outcome, rec.Classification):
            # what a crash between an earlier call's commit and its publish left unpublished
            self.outbox.deliver(request.id, outcome.to_firestore())
            return DecisionResult(outcome, unchanged=True)
        record = self._apply(doc, outcome)
        if record is None:  # another call of the same decision committed it (and publishes its event)
            return DecisionResult(self.get(request.id), unchanged=True)
        log.info(
            "review %s: %s -> %s",
            request.id,
            record.review and record.review.get(rec.REVIEW_DECISION),
            record.destination.name if record.destination else "-",
            extra={
                "classification_id": request.id,
                "reviewed_by": reviewer,
                "review_decision": (record.review or {}).get(rec.REVIEW_DECISION),
            },
        )
        if on_decided is not None:
            on_decided(record)
        return DecisionResult(record)

    def _stale_pending(self, doc: Any) -> dict[str, Any] | None:
        """The record's pending decision when it began more than
        ``LEASE_SECONDS`` ago (its caller crashed or gave up), else None."""
        pending = rec.Classification.from_firestore(doc.get(retry=self._retry, timeout=CALL_TIMEOUT).to_dict()).review_pending
        began = (pending or {}).get(_ENTRY, {}).get(rec.REVIEW_AT)
        if not isinstance(began, datetime) or self.now() - began < timedelta(seconds=self.settings.lease_seconds):
            return None
        return pending

    def _begin(self, doc: Any, request: DecisionRequest, reviewer: str) -> dict[str, Any] | rec.Classification:
        """Step 1: the pending decision to apply (new, or an identical one in
        progress), or the record when it already holds this decision. Written
        with a precondition on the record's update time (optimistic
        concurrency, like the processing core's fence): of concurrent writers
        exactly one succeeds, the others read again and join or conflict. (A
        read-write transaction here had 8 concurrent requests time out on the
        Firestore emulator's document locks.)"""
        now = self.now()

        def begin(snapshot: Any) -> tuple[dict[str, Any] | rec.Classification, dict[str, Any] | None]:
            if not snapshot.exists:
                raise ReviewError(ReviewError.NOT_FOUND, "not_found", f"no item {request.id}")
            record = rec.Classification.from_firestore(snapshot.to_dict(), snapshot.id)
            decided = request
            if request.attributes:
                decided = replace(request, attributes=self._check_attributes(record, request.attributes))
            entry = _entry(record, decided, reviewer, now)
            pending = record.review_pending
            if pending:
                if _same(pending.get(_ENTRY), entry):
                    return pending, None  # join the identical decision in progress
                raise ReviewError(
                    ReviewError.CONFLICT, "decision_in_progress", "a different decision on this item is being applied"
                )
            if record.status == rec.REVIEWED:
                if _same(record.review, entry):
                    return record, None
                if not request.change:
                    earlier = (record.review or {}).get(rec.REVIEW_DECISION)
                    raise ReviewError(
                        ReviewError.CONFLICT,
                        "already_decided",
                        f"the item was already {earlier}; send change: true to replace that decision",
                    )
                review = dict(record.review or {})
                previous = list(review.pop(rec.REVIEW_PREVIOUS, None) or [])
                entry[rec.REVIEW_PREVIOUS] = [*previous, review]
            elif record.status == rec.NEEDS_REVIEW:
                entry[rec.REVIEW_PREVIOUS] = []
            else:
                raise ReviewError(ReviewError.CONFLICT, "not_in_review", f"the item is {record.status}, not waiting for review")
            if record.destination is None or record.source is None:
                raise ReviewError(ReviewError.CONFLICT, "no_file", "the item has no file in the processed bucket")
            if entry[rec.REVIEW_DECISION] == rec.REVIEW_REJECTED:
                target = destinations.target(rec.REJECTED, None, record.source.name)
            else:
                target = destinations.target(rec.CLASSIFIED, entry[rec.REVIEW_FINAL_LABEL], record.source.name)
            pending = {
                _TOKEN: uuid.uuid4().hex,
                _ENTRY: entry,
                _FROM: record.destination.name,
                _TARGET: target,
                _DEST: None,
                _FROM_GENERATION: None,
                _SOURCE_GENERATION: str(record.source.generation),
                _MODEL_ATTRIBUTES: dict(record.attributes),
            }
            return pending, {rec.Field.REVIEW_PENDING: pending, rec.Field.UPDATED_AT: now}

        return self._fenced(doc, begin)

    def _check_attributes(self, record: rec.Classification, corrections: Mapping[str, str | None]) -> dict[str, str | None]:
        """Each corrected attribute must be one of the record's model's
        attributes and each value one of its labels (or None), matched
        case-insensitively; returns the corrections in the manifest's
        spelling (``colour=Blue`` -> ``blue``, ``gender=women`` -> ``Women``).
        Raises ReviewError ``invalid`` (``unknown_attribute``, ``unknown_attribute_value``)."""
        vocabulary = self.attribute_labels(record.model_version)
        normalised: dict[str, str | None] = {}
        for name, value in corrections.items():
            if name not in vocabulary:
                known = ", ".join(vocabulary) or "none: it predicts the category only"
                raise ReviewError(
                    ReviewError.INVALID,
                    "unknown_attribute",
                    f"attribute {name!r} is not one of model {record.model_version}'s attributes ({known})",
                )
            if value is not None and value not in vocabulary[name]:
                value = spelled(value, vocabulary[name])
            if value is not None and value not in vocabulary[name]:
                raise ReviewError(
                    ReviewError.INVALID,
                    "unknown_attribute_value",
                    f"{value!r} is not a {name} of model {record.model_version} (one of {', '.join(vocabulary[name])}, or null)",
                )
            normalised[name] = value
        return normalised

    def _fenced(self, doc: Any, step: Callable[[Any], tuple[Any, dict[str, Any] | None]]) -> Any:
        """Read the record, let ``step(snapshot)`` say what to return and what
        to write (None: nothing), and write it only if nobody wrote the record
        since the read; on a lost race, read and decide again."""
        for attempt in range(_FENCE_ATTEMPTS):
            snapshot = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
            result, update = step(snapshot)
            if update is None:
                return result
            try:
                doc.update(
                    update,
                    option=self.db.write_option(last_update_time=snapshot.update_time),
                    retry=self._retry,
                    timeout=CALL_TIMEOUT,
                )
                return result
            except gexc.FailedPrecondition:
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise ReviewError(ReviewError.UNAVAILABLE, "busy", "the item changed on every attempt; retry")

    def _apply(self, doc: Any, pending: dict[str, Any]) -> rec.Classification | None:
        """Steps 2-5 for ``pending``; the committed record, or None when
        another call committed this decision first."""
        bucket = self.storage.bucket(self.settings.processed_bucket)
        if pending.get(_DEST) is None:
            moved = self._copy(bucket, doc, pending)
            if moved is None:  # the review copy is gone: someone else got further, or it was removed
                current = rec.Classification.from_firestore(doc.get(retry=self._retry, timeout=CALL_TIMEOUT).to_dict())
                mine = current.review_pending
                if mine is None or mine.get(_TOKEN) != pending[_TOKEN]:
                    return None if _same(current.review, pending[_ENTRY]) else self._gone(doc, pending)
                if mine.get(_DEST) is None:
                    return self._gone(doc, pending)
                pending = mine
            else:
                self.failpoints.hit("review_after_copy")
                pending = {**pending, _DEST: moved[0], _FROM_GENERATION: str(moved[1])}
                recorded = {rec.Field.REVIEW_PENDING: pending, rec.Field.UPDATED_AT: self.now()}
                if not self._fenced(doc, lambda snap: self._if_mine(snap, pending, recorded)):
                    return None  # another call of this decision got further
        self.failpoints.hit("review_before_delete")
        if pending[_FROM] != pending[_DEST]:
            self._delete(bucket, pending[_FROM], int(pending[_FROM_GENERATION]))
        self.failpoints.hit("review_after_delete")
        committed = self._commit(doc, pending)
        if committed is not None:
            self.failpoints.hit("review_before_publish")
            self.outbox.deliver(doc.id, committed.to_firestore())  # never raises; what fails waits for the sweep
        return committed

    def _copy(self, bucket: Any, doc: Any, pending: dict[str, Any]) -> tuple[str, int] | None:
        """Step 2: (the name written, the review copy's generation), or None
        when the review copy is no longer this record's."""
        calls = {"timeout": CALL_TIMEOUT, "retry": self._storage_retry}
        source = bucket.get_blob(pending[_FROM], **calls)
        if source is None or (source.metadata or {}).get(copy_metadata.RECORD_ID) != doc.id:
            return None
        data = bucket.blob(pending[_FROM], generation=source.generation).download_as_bytes(**calls)
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        entry = pending[_ENTRY]
        metadata = copy_metadata.reviewed_metadata(
            source.metadata,
            entry[rec.REVIEW_DECISION],
            entry[rec.REVIEW_FINAL_LABEL],
            entry[rec.REVIEW_BY],
            rec.attribute_corrections(entry),
            pending.get(_MODEL_ATTRIBUTES),
        )

        def write(name: str) -> bool:
            """Create ``name`` (or find this record's identical copy there from an earlier attempt)."""
            blob = bucket.blob(name)
            blob.content_type = source.content_type or "application/octet-stream"
            blob.cache_control = source.cache_control
            blob.content_disposition = source.content_disposition
            blob.content_language = source.content_language
            blob.metadata = metadata
            try:
                blob.upload_from_string(data, content_type=blob.content_type, if_generation_match=0, **calls)
                return True
            except gexc.PreconditionFailed:
                existing = bucket.get_blob(name, **calls)
                return (
                    existing is not None
                    and existing.md5_hash == digest
                    and (existing.metadata or {}).get(copy_metadata.RECORD_ID) == doc.id
                )

        name = pending[_TARGET]
        if not write(name):
            name = destinations.with_generation(name, int(pending[_SOURCE_GENERATION]))
            if not write(name):
                raise ReviewError(
                    ReviewError.CONFLICT, "destination_taken", f"both {pending[_TARGET]} and {name} hold other files"
                )
        return name, int(source.generation)

    def _delete(self, bucket: Any, name: str, generation: int) -> None:
        """Step 4: delete the review copy, only the generation that was copied."""
        live = bucket.get_blob(name, timeout=CALL_TIMEOUT, retry=self._storage_retry)
        if live is not None and int(live.generation) == generation:
            with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
                bucket.blob(name, generation=generation).delete(
                    if_generation_match=generation, timeout=CALL_TIMEOUT, retry=self._storage_retry
                )

    def _if_mine(self, snapshot: Any, pending: dict[str, Any], update: dict[str, Any]) -> tuple[bool, dict | None]:
        """For :meth:`_fenced`: write ``update`` only while ``pending`` is the record's pending decision."""
        mine = ((snapshot.to_dict() or {}).get(rec.Field.REVIEW_PENDING) or {}).get(_TOKEN) == pending[_TOKEN]
        return mine, update if mine else None

    def _commit(self, doc: Any, pending: dict[str, Any]) -> rec.Classification | None:
        """Step 5: the record, its decision's event (staged in its outbox)
        and the day's counter in one atomic batch, the record's write fenced
        on its update time; None when another call of this decision
        committed it first."""
        for attempt in range(_FENCE_ATTEMPTS):
            snapshot = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
            if ((snapshot.to_dict() or {}).get(rec.Field.REVIEW_PENDING) or {}).get(_TOKEN) != pending[_TOKEN]:
                return None
            now = self.now()
            entry = pending[_ENTRY]
            update = {
                rec.Field.STATUS: rec.REVIEWED,
                rec.Field.REVIEW: entry,
                rec.Field.DESTINATION: rec.Destination(self.settings.processed_bucket, pending[_DEST]).to_dict(),
                rec.Field.REVIEW_PENDING: None,
                rec.Field.UPDATED_AT: now,
            }
            stored = snapshot.to_dict() or {}
            # the decision's event, pending in the same write: no decision without its event
            update |= self.outbox.stage_decided({**stored, **update}, doc.id, now)
            batch = self.db.batch()
            batch.update(doc, update, option=self.db.write_option(last_update_time=snapshot.update_time))
            # a nested map (stats shard "review": {decision: n}), which sum_shards reads like "review.<decision>"
            counter = {rec.REVIEW_GROUP: {entry[rec.REVIEW_DECISION]: firestore.Increment(1)}, rec.DAY: rec.day_of(now)}
            batch.set(self.db.document(*rec.shard_path(now)), counter, merge=True)
            try:
                batch.commit(retry=self._retry, timeout=CALL_TIMEOUT)
            except gexc.FailedPrecondition:
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
                continue
            return rec.Classification.from_firestore({**stored, **update}, snapshot.id)
        raise ReviewError(ReviewError.UNAVAILABLE, "busy", "the item changed on every attempt; retry")

    def _gone(self, doc: Any, pending: dict[str, Any]) -> rec.Classification:
        """The review copy is no longer this record's (deleted, or replaced by
        a newer upload's copy): drop the pending decision (nothing was
        moved) and raise ReviewError ``conflict``."""
        self._fenced(doc, lambda snap: self._if_mine(snap, pending, {rec.Field.REVIEW_PENDING: None}))
        raise ReviewError(ReviewError.CONFLICT, "file_gone", f"{pending[_FROM]} is gone or holds another upload's file")

    def _doc(self, doc_id: str) -> Any:
        return self.db.collection(rec.COLLECTION).document(doc_id)


def _sort_key(record: rec.Classification, order: str) -> tuple:
    created = (record.created_at or datetime.min.replace(tzinfo=UTC)).astimezone(UTC).strftime(_TIME_FORMAT)
    if order == ORDER_UNCERTAIN:
        return (margin_of(record), created, record.id or "")
    return (created, record.id or "")


def _make_token(key: tuple, order: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": order, "k": list(key)}).encode()).decode().rstrip("=")


def _parse_token(token: str, order: str) -> tuple:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key = tuple(data["k"])
        valid = data["o"] == order and len(key) == (3 if order == ORDER_UNCERTAIN else 2)
    except (ValueError, TypeError, KeyError, binascii.Error):
        valid = False
    if not valid:
        raise ReviewError(ReviewError.INVALID, "bad_request", "page_token is not a token of this query's order")
    return key
