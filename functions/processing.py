"""Process one uploaded object version: classify, record, copy, delete.

Knows nothing of HTTP or CloudEvents. Every step can be repeated after a
crash at any point: the Firestore document records how far an object got,
a lease stops concurrent deliveries from working on it at once, the copy only
creates or replaces an older version's copy of the same name (each write
pinned with ``if_generation_match``), and the delete is pinned to the
generation, so a newer upload under the same name is never deleted.

Objects that are not uploads' content: a folder placeholder (a zero-byte
object whose name ends in ``/``) is acknowledged with no record; a zero-byte
object version is never classified, copied or deleted (``empty``, or
``skipped``/``superseded`` when a newer version already replaced it), so a
tool that writes an empty object and then the content leaves one result.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from functions import destinations
from functions.dependencies import CALL_TIMEOUT, TRANSIENT_ERRORS, bounded_retry, storage_retry, transient_cause
from functions.event_outbox import EventOutbox
from functions.failpoints import FailPoints
from functions.model_cache import ModelCache, ModelUnavailable
from shared import record_updates as updates
from shared import records as rec
from shared import thresholds
from shared.copy_metadata import Attached, source_generation
from shared.errors import ImageError
from shared.settings import Settings

log = logging.getLogger(__name__)


class TransientError(RuntimeError):
    """Retry later: a dependency is unavailable or another delivery holds the object."""


class Busy(TransientError):
    """Another delivery is working on this object version right now."""


class LeaseLost(Busy):
    """This delivery outlived its lease and another one took the object over:
    it must stop writing (its decision could differ, e.g. under a newer model)."""


#: where _claim hands process() the update time of its claim (the fence)
_FENCE = "__fence__"
#: Outcome.status of a folder placeholder: acknowledged, no record (not a record status)
IGNORED = "ignored"
#: how many times _store re-reads the destination after losing a write race
_STORE_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    doc_id: str
    status: str
    label: str | None = None
    confidence: float | None = None
    destination: str | None = None
    duplicate: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class Precomputed:
    """What a batch caller (the backfill pipeline, ``backfill/``) already has
    for one object version, so that the core neither downloads nor classifies
    it again: the pinned generation's bytes, what the uploader attached to
    them, and the prediction of the model the caller pinned (a
    :class:`shared.classifier.Prediction`, or the :class:`ImageError` that
    preprocessing raised) with that model's manifest (its version and
    per-class thresholds decide the band, as for an upload). Everything else (the lease, the record, the
    create-only copy, the generation-pinned delete, the counters) is the
    event path's own code."""

    data: bytes
    attached: Attached
    prediction: Any  # shared.classifier.Prediction | ImageError
    manifest: Any  # shared.manifest.Manifest of the model that made the prediction

    def classifier(self) -> _Answered:
        """This answer in the shape of the classifier the core calls
        (``version``, ``manifest``, ``classify(data, ...)`` returning it or raising its ImageError)."""
        return _Answered(self.prediction, self.manifest)


@dataclass(frozen=True)
class _Answered:
    answer: Any
    manifest: Any

    @property
    def version(self) -> str:
        return self.manifest.version

    def classify(self, data: bytes, **_: Any) -> Any:
        if isinstance(self.answer, ImageError):
            raise self.answer
        return self.answer


class Processor:
    def __init__(
        self,
        settings: Settings,
        storage_client: Any,
        db: firestore.Client,
        models: ModelCache,
        *,
        lease_seconds: float | None = None,
        now: Callable[[], datetime] = rec.utcnow,
        outbox: EventOutbox | None = None,
        record_decision: bool = True,
        delete_source: bool = True,
        candidates: ModelCache | None = None,
    ) -> None:
        """``outbox``: publishes the completion events (default: the one
        ``settings`` describe, off when ``EVENTS_TOPIC`` is empty).
        ``record_decision``: write the decision in its own update before the
        copy (the event path). False (the backfill, whose model is pinned for
        the run, so a repeat decides the same): the decision is written with
        the destination after the copy, one document write less per object.
        ``delete_source``: False leaves the source object in place
        (``fashionctl backfill --keep-source``).
        ``candidates``: the candidate model's optional cache (shadow mode;
        None: off)."""
        self.settings = settings
        self.candidates = candidates
        self.record_decision = record_decision
        self.delete_source = delete_source
        self.storage = storage_client
        self.db = db
        self.models = models
        self.lease = timedelta(seconds=settings.lease_seconds if lease_seconds is None else lease_seconds)
        self.now = now
        self._retry = bounded_retry(settings.dependency_deadline_seconds)
        self._storage_retry = storage_retry(settings.dependency_deadline_seconds)
        self.failpoints = FailPoints.parse(settings.failpoints)  # test-only; empty: off
        self.outbox = outbox or EventOutbox.from_settings(settings, db, retry=self._retry, timeout=CALL_TIMEOUT)

    # -- public ----------------------------------------------------------------

    def process(
        self, ref: rec.ObjectRef, *, trigger: str, event_id: str | None = None, precomputed: Precomputed | None = None
    ) -> Outcome:
        """Bring one object version to a finished state. Raises TransientError
        when the caller should retry; permanent problems end as records.
        ``precomputed``: the bytes and prediction a batch caller already has
        (used only when no decision is recorded yet)."""
        started = time.perf_counter()
        if is_placeholder(ref):
            log.info(
                "%s: a folder placeholder, ignored",
                ref.name,
                extra={"object": ref.name, "generation": str(ref.generation), "status": IGNORED},
            )
            return Outcome(doc_id=ref.doc_id, status=IGNORED)
        doc = self.db.collection(rec.COLLECTION).document(ref.doc_id)
        owner = uuid.uuid4().hex
        claimed = False  # only the delivery holding the lease may record a failure
        fence = None
        try:
            raw = self._claim(doc, ref, owner, trigger, event_id)
            # Every later write is fenced: it applies only while the document
            # is as this delivery last wrote it, i.e. while it holds the lease.
            fence = raw.pop(_FENCE, None)
            state = rec.Classification.from_firestore(raw)
            if state.finished:
                self.outbox.deliver(ref.doc_id, raw)  # what a crash after the commit left unpublished
                return self._outcome(ref, state, duplicate=True)
            claimed = True
            timings: dict[str, float] = dict(state.timings_ms)
            fetched: tuple[bytes, Attached] | None = None
            decision = state.decision
            decided_now = False
            if decision is None:
                fetched = (precomputed.data, precomputed.attached) if precomputed else self._download(ref, timings)
                if fetched is None:
                    return self._finish(doc, ref, _gone(ref), None, timings, started, owner)
                if not fetched[0]:  # zero bytes: never classified, copied or deleted
                    return self._finish(doc, ref, self._zero_bytes(ref, fetched[1]), None, timings, started, owner)
                self.failpoints.hit("after_download")
                decision = self._decide(fetched[0], timings, precomputed)
                decision = replace(
                    decision,
                    target=destinations.target(decision.status, decision.label, ref.name),
                    sku=fetched[1].sku(self.settings.sku_metadata_key),
                )
                if self.record_decision:
                    fence = self._update(doc, updates.decided_update(decision, self.now()), fence, ref)
                else:
                    decided_now = True  # written with the destination below
                self.failpoints.hit("after_decision")
            destination = state.destination
            if destination is None:
                fetched = fetched if fetched is not None else self._download(ref, timings)
                if fetched is None:
                    return self._finish(doc, ref, _gone(ref), None, timings, started, owner)
                destination = self._store(ref, decision, *fetched, timings)
                self.failpoints.hit("after_copy")
                copied = updates.copied_update(destination, self.now())
                if decided_now:
                    copied.update(updates.decided_update(decision, self.now()))
                    copied[rec.Field.STEP] = rec.COPIED
                fence = self._update(doc, copied, fence, ref)
            self.failpoints.hit("before_delete")
            if self.delete_source:
                self._delete_source(ref, timings)
            self.failpoints.hit("after_delete")
            return self._finish(doc, ref, decision, destination, timings, started, owner)
        except TRANSIENT_ERRORS as exc:
            self._record_failure(doc, exc, claimed, fence)
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except ModelUnavailable as exc:
            self._record_failure(doc, exc, claimed, fence)
            raise TransientError(str(exc)) from exc
        except ValueError as exc:
            # firestore.transactional hides a failed call behind a ValueError (its
            # rollback of a transaction that never began, or "failed after N
            # attempts" on contention): that is still a transient failure.
            cause = transient_cause(exc)
            if cause is None:
                raise
            self._record_failure(doc, cause, claimed, fence)
            raise TransientError(f"{type(cause).__name__}: {cause}") from exc

    # -- steps -----------------------------------------------------------------

    def _claim(self, doc: Any, ref: rec.ObjectRef, owner: str, trigger: str, event_id: str | None) -> dict:
        """Take the lease on this object version, or say it is done or busy.

        A plain read comes first: a redelivered event for a finished object,
        or for one another delivery holds, costs no transaction, and an
        unavailable Firestore fails within the bounded retry (a
        transaction's begin call takes no retry settings: it retries for 60 s).

        The first claim of an object version is a create-only write: of
        several deliveries arriving at once (duplicated events), exactly one
        creates the document and the others are told it is busy. A
        read-then-write transaction there made them deadlock on the
        emulator's document locks ("409 Transaction lock timeout", about 10 s
        each round, measured with 5 simultaneous deliveries), and retried in
        step they deadlocked again. Taking over an existing, unfinished
        document (a lease that ran out, a recorded failure) stays a transaction.
        """
        current = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
        seen = (current.to_dict() or {}) if current.exists else {}
        if rec.is_finished(seen):
            return seen
        now = self.now()
        if rec.leased(seen, now):
            raise Busy(f"object {ref.name}#{ref.generation} is being processed by another delivery")

        def claimed(data: dict) -> dict:
            return updates.claim_update(data, ref, owner, now + self.lease, trigger, event_id, now)

        if not current.exists:
            try:
                written = doc.create(claimed({}), retry=self._retry, timeout=CALL_TIMEOUT)
            except gexc.Conflict as exc:  # AlreadyExists: another delivery created it a moment ago
                raise Busy(f"object {ref.name}#{ref.generation} was just claimed by another delivery") from exc
            return {_FENCE: written.update_time}

        @firestore.transactional
        def claim(transaction: firestore.Transaction) -> dict:
            snapshot = doc.get(transaction=transaction, retry=self._retry, timeout=CALL_TIMEOUT)
            data = snapshot.to_dict() if snapshot.exists else {}
            if rec.is_finished(data):
                return data
            if rec.leased(data, now):
                raise Busy(f"object {ref.name}#{ref.generation} is being processed by another delivery")
            update = claimed(data)
            transaction.set(doc, update, merge=list(update))
            return data

        data = claim(self.db.transaction())
        if rec.is_finished(data):
            return data
        # The transaction's write time is not exposed: read it back (only when
        # taking over an existing document, after a crash or a failure).
        mine = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
        if rec.Classification.from_firestore(mine.to_dict()).lease_owner != owner:
            raise LeaseLost(f"object {ref.name}#{ref.generation} was taken over by another delivery")
        return {**data, _FENCE: mine.update_time}

    def _update(self, doc: Any, fields: dict, fence: Any, ref: rec.ObjectRef) -> Any:
        """``doc.update(fields)`` only if nobody wrote the document since this
        delivery's last write (``fence``: its update time); the new fence."""
        option = self.db.write_option(last_update_time=fence) if fence is not None else None
        try:
            result = doc.update(fields, option=option, retry=self._retry, timeout=CALL_TIMEOUT)
        except gexc.FailedPrecondition as exc:
            raise LeaseLost(f"object {ref.name}#{ref.generation} was taken over by another delivery") from exc
        return getattr(result, "update_time", None)

    def _download(self, ref: rec.ObjectRef, timings: dict[str, float]) -> tuple[bytes, Attached] | None:
        """This exact generation's bytes and what the uploader attached to it
        (its metadata, read first), or None when it is gone."""
        start = time.perf_counter()
        calls = {"timeout": CALL_TIMEOUT, "retry": self._storage_retry}
        try:
            bucket = self.storage.bucket(ref.bucket)
            found = bucket.get_blob(ref.name, generation=ref.generation, **calls)
            if found is None:
                return None
            attached = Attached.from_blob(found)
            # A fresh blob pinned to the generation, not ``found``: fake-gcs-server's
            # mediaLink names no generation, so ``found`` would read the live version.
            data = bucket.blob(ref.name, generation=ref.generation).download_as_bytes(**calls)
        except gexc.NotFound:
            return None
        timings["download"] = _ms(start)
        return data, attached

    def _zero_bytes(self, ref: rec.ObjectRef, attached: Attached) -> rec.Decision:
        """The decision on a zero-byte object version: ``skipped`` (superseded)
        when a newer version of the name is already live, else ``empty``.
        Neither copies nor deletes anything: a tool that writes an empty
        object and then the content leaves one result, whatever the timing,
        and an empty upload stays where it was uploaded."""
        live = self.storage.bucket(ref.bucket).get_blob(ref.name, timeout=CALL_TIMEOUT, retry=self._storage_retry)
        sku = attached.sku(self.settings.sku_metadata_key)
        if live is None:
            return replace(_gone(ref), sku=sku)
        if live.generation != ref.generation:
            message = (
                f"zero-byte version {ref.generation} of gs://{ref.bucket}/{ref.name} was replaced by version {live.generation}"
            )
            return rec.Decision(status=rec.SKIPPED, error=rec.error_info(rec.SUPERSEDED, message), sku=sku)
        message = "the object holds no bytes (left in place: its content may follow as a newer version)"
        return rec.Decision(status=rec.EMPTY, error=rec.error_info(rec.ZERO_BYTES, message), sku=sku)

    def _decide(self, data: bytes, timings: dict[str, float], precomputed: Precomputed | None = None) -> rec.Decision:
        """Classify the bytes: a confident label, a label for review, or a rejection.
        ``precomputed``: the caller's prediction stands in for the classifier."""
        classifier = precomputed.classifier() if precomputed is not None else self.models.get()
        start = time.perf_counter()
        try:
            prediction = classifier.classify(data, top_k=self.settings.top_k, limits=self.settings.decode_limits)
        except ImageError as exc:
            timings["classify"] = _ms(start)
            return rec.Decision(status=rec.REJECTED, model_version=classifier.version, error=exc.to_dict())
        timings["classify"] = _ms(start)
        # the model's per-class thresholds (its manifest), CLASS_THRESHOLDS, else CONFIDENCE_THRESHOLD
        band, _ = thresholds.policy(classifier.manifest, self.settings).band(prediction.label, prediction.confidence)
        return rec.Decision(
            status=rec.CLASSIFIED if band == rec.BAND_AUTO else rec.NEEDS_REVIEW,
            label=prediction.label,
            confidence=prediction.confidence,
            top_k=rec.top_k_entries(prediction.top_k),
            model_version=classifier.version,
            band=band,
            candidate=self._shadow(data, classifier.version),
            # the model's attribute heads, each left empty (value None) below its threshold
            attributes=rec.attribute_entries(prediction.attributes),
        )

    def _shadow(self, data: bytes, current_version: str) -> dict[str, Any] | None:
        """Shadow mode: the candidate model's answer on the same bytes
        (``records.candidate_answer``; its latency includes decoding), or
        None (no candidate, the candidate is the current model, or it
        failed: logged, never the upload's problem). Never acted upon."""
        if self.candidates is None:
            return None
        candidate = self.candidates.get_optional()
        if candidate is None or candidate.version == current_version:
            return None
        start = time.perf_counter()
        try:
            prediction = candidate.classify(data, top_k=self.settings.top_k, limits=self.settings.decode_limits)
        except Exception as exc:  # noqa: BLE001 - the shadow model never fails the upload
            log.warning("candidate %s failed: %s", candidate.version, exc, extra={"candidate_version": candidate.version})
            return None
        return rec.candidate_answer(
            candidate.version, prediction.label, prediction.confidence, rec.top_k_entries(prediction.top_k), _ms(start)
        )

    def _store(
        self, ref: rec.ObjectRef, decision: rec.Decision, data: bytes, attached: Attached, timings: dict[str, float]
    ) -> rec.Destination:
        """Write the bytes, with what the uploader attached and the result
        (``shared/copy_metadata.py``), to the decision's target in the
        processed bucket. The newest upload of a name owns the target:

        - nothing there: create it (``if_generation_match=0``);
        - this version's own copy (an earlier attempt), or an identical file
          that is no copy of another version of this object: done;
        - a copy of an OLDER version of the same incoming object: replace it,
          pinned to that copy's generation (the versioned processed bucket
          keeps it as a noncurrent version);
        - anything else (a copy of a NEWER version: this is a late delivery;
          another upload's file; a file without our metadata): never
          overwritten; the copy goes to the name carrying the generation,
          create-only (an identical file there counts as done).

        A lost race (a precondition failure) re-reads the target and decides
        again. Raises TransientError when no name can be written."""
        bucket = self.storage.bucket(self.settings.processed_bucket)
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        target = decision.target or ""
        calls = {"timeout": CALL_TIMEOUT, "retry": self._storage_retry}
        start = time.perf_counter()

        def write(name: str, precondition: int) -> bool:
            blob = bucket.blob(name)
            attached.apply_to(blob, ref, decision)
            try:  # pinned to a generation, so repeating it is safe
                blob.upload_from_string(data, content_type=blob.content_type, if_generation_match=precondition, **calls)
            except gexc.PreconditionFailed:
                return False
            return True

        precondition = 0  # the common case first: nothing there yet
        for _ in range(_STORE_ATTEMPTS):
            if write(target, precondition):
                break
            existing = bucket.get_blob(target, **calls)  # the precondition failed: what is there?
            if existing is None:
                precondition = 0
                continue
            held = source_generation(existing, ref)
            if existing.md5_hash == digest and held in (ref.generation, None):
                break  # this version's copy from an earlier attempt, or an identical file
            if held is None or held >= ref.generation:
                target = destinations.with_generation(target, ref.generation)  # never replace it
                return self._store_create_only(bucket, target, write, digest, start, timings)
            precondition = int(existing.generation)  # an older version's copy: replace it
        else:
            raise TransientError(f"lost the race for {target} {_STORE_ATTEMPTS} times; retry later")
        timings["copy"] = _ms(start)
        return rec.Destination(bucket.name, target)

    def _store_create_only(
        self, bucket: Any, name: str, write: Callable[[str, int], bool], digest: str, start: float, timings: dict[str, float]
    ) -> rec.Destination:
        """The fallback: create ``name`` only; an identical file there counts
        as done, a different one is never overwritten (TransientError)."""
        if not write(name, 0):
            existing = bucket.get_blob(name, timeout=CALL_TIMEOUT, retry=self._storage_retry)
            if existing is None or existing.md5_hash != digest:
                raise TransientError(f"both destinations for {name} hold other files")
        timings["copy"] = _ms(start)
        return rec.Destination(bucket.name, name)

    def _delete_source(self, ref: rec.ObjectRef, timings: dict[str, float]) -> None:
        """Delete exactly this generation; a newer upload under the name stays."""
        bucket = self.storage.bucket(ref.bucket)
        start = time.perf_counter()
        live = bucket.get_blob(ref.name, timeout=CALL_TIMEOUT, retry=self._storage_retry)
        if live is not None and live.generation == ref.generation:
            with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
                bucket.blob(ref.name, generation=ref.generation).delete(
                    if_generation_match=ref.generation, timeout=CALL_TIMEOUT, retry=self._storage_retry
                )
        timings["delete"] = _ms(start)

    def _finish(
        self,
        doc: Any,
        ref: rec.ObjectRef,
        decision: rec.Decision,
        destination: rec.Destination | None,
        timings: dict[str, float],
        started: float,
        owner: str | None = None,
    ) -> Outcome:
        """Write the final state and bump the counters, once."""
        now = self.now()
        timings[rec.TOTAL_MS] = _ms(started)
        final = updates.final_update(decision, destination, timings, now)
        # A plain, bounded read first (as in _claim): an unavailable Firestore
        # fails here within the retry deadline rather than in the
        # transaction's begin call, which retries for 60 s.
        current = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
        if current.exists and rec.is_finished(current.to_dict()):
            self.outbox.deliver(ref.doc_id, current.to_dict())
            return self._outcome(ref, rec.Classification.from_firestore(current.to_dict()))

        @firestore.transactional
        def finish(transaction: firestore.Transaction) -> dict:
            snapshot = doc.get(transaction=transaction, retry=self._retry, timeout=CALL_TIMEOUT)
            data = snapshot.to_dict() or {}
            if rec.is_finished(data):
                return data
            if owner is not None and rec.Classification.from_firestore(data).lease_owner not in (None, owner):
                raise LeaseLost(f"object {ref.name}#{ref.generation} was taken over by another delivery")
            shard = self.db.document(*rec.shard_path(now, count=self.settings.stats_shards))
            counts = shard.get(transaction=transaction, retry=self._retry, timeout=CALL_TIMEOUT).to_dict() or {}
            # merge=<top-level names>: each field is replaced whole (merge=True
            # merges maps key by key, which the npm emulator gets wrong when the
            # stored value is null, e.g. error: None -> {reason, message}).
            # The completion event is staged in the same write (the outbox):
            # no finished record without its event.
            update = {**final, **self.outbox.stage_finished({**data, **final}, ref.doc_id, now)}
            transaction.set(doc, update, merge=list(update))
            increments = rec.counter_fields(decision.status, decision.label, rec.reason_of(decision.error))
            transaction.set(shard, rec.counted(counts, increments, rec.day_of(now)))
            return {**data, **update}

        data = finish(self.db.transaction())
        self.failpoints.hit("before_publish")
        self.outbox.deliver(ref.doc_id, data)
        outcome = self._outcome(ref, rec.Classification.from_firestore(data))
        log.info(
            "%s %s -> %s",
            ref.name,
            outcome.status,
            outcome.destination or "-",
            extra={
                "object": ref.name,
                "generation": str(ref.generation),
                "classification_id": ref.doc_id,
                **updates.log_fields(outcome.status, outcome.label, outcome.confidence, timings),
            },
        )
        return outcome

    def _record_failure(self, doc: Any, exc: BaseException, claimed: bool = True, fence: Any = None) -> None:
        """Mark the document failed and release the lease, only when this
        delivery holds the lease: one that failed before claiming, or that
        outlived its lease (``fence``: the update time of its last write),
        must not overwrite the state of another that is working on (or has
        finished) the object."""
        if isinstance(exc, Busy) or not claimed:
            return
        failure = updates.failure_update(f"{type(exc).__name__}: {exc}", self.now())
        try:
            if fence is None:
                doc.set(
                    failure,
                    merge=list(failure),
                    retry=None,  # one attempt: Firestore itself may be what failed
                    timeout=5,
                )
            else:  # each top-level field replaced whole, as with merge=list(failure)
                doc.update(failure, option=self.db.write_option(last_update_time=fence), retry=None, timeout=5)
        except Exception as nested:  # noqa: BLE001 - Firestore itself may be what failed
            log.warning("could not record the failure: %s", nested)

    def decide(self, precomputed: Precomputed) -> rec.Decision:
        """The decision the core would record for ``precomputed``'s
        prediction (no target, no SKU, nothing written): what ``fashionctl
        reclassify`` compares a record with."""
        return self._decide(precomputed.data, {}, precomputed)

    def _outcome(self, ref: rec.ObjectRef, record: rec.Classification, duplicate: bool = False) -> Outcome:
        return Outcome(
            doc_id=ref.doc_id,
            status=record.status or rec.PROCESSING,
            label=record.label,
            confidence=record.confidence,
            destination=record.destination.uri if record.destination else None,
            duplicate=duplicate,
            reason=record.reason,
        )


def is_placeholder(ref: rec.ObjectRef) -> bool:
    """A folder placeholder (the Cloud Console's "Create folder", gcsfuse
    directories): a zero-byte object whose name ends in ``/``."""
    return ref.name.endswith("/") and ref.size == 0


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _gone(ref: rec.ObjectRef) -> rec.Decision:
    message = f"gs://{ref.bucket}/{ref.name} generation {ref.generation} no longer exists (deleted or overwritten)"
    return rec.Decision(status=rec.SKIPPED, error=rec.error_info(rec.SOURCE_GONE, message))
