"""Process one uploaded object version: classify, record, copy, delete.

Knows nothing of HTTP or CloudEvents. Every step can be repeated after a
crash at any point: the Firestore document records how far an object got,
a lease stops concurrent deliveries from working on it at once, the copy only
creates (``if_generation_match=0``) and the delete is pinned to the
generation, so a newer upload under the same name is never deleted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_transient_error
from google.cloud import firestore
from google.cloud.storage.retry import DEFAULT_RETRY as STORAGE_RETRY

from functions import records as rec
from functions.failpoints import FailPoints
from functions.model_cache import ModelCache, ModelUnavailable
from shared.errors import ImageError
from shared.labels import slugify
from shared.settings import Settings

log = logging.getLogger(__name__)

_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    gexc.RetryError,
    gexc.GatewayTimeout,
    ConnectionError,
    TimeoutError,
)
#: Timeout of one Firestore or Storage call, seconds (retries: bounded_retry)
CALL_TIMEOUT = 20.0


def bounded_retry(deadline: float, base: Retry | None = None) -> Retry:
    """Bounded retries for Firestore calls, or (``base``: the Storage client's
    retry, with its own idea of what is retryable) for Storage calls, lasting
    the settings' ``dependency_deadline_seconds``: a dependency that is down
    answers 5xx within seconds (and the platform retries), rather than hanging
    the request (the Storage client's default retries for 120 s)."""
    if base is None:
        return Retry(initial=0.2, maximum=2.0, multiplier=2.0, predicate=if_transient_error, timeout=deadline)
    return base.with_delay(initial=0.2, maximum=2.0, multiplier=2.0).with_timeout(deadline)


def storage_retry(deadline: float) -> Retry:
    """The Storage client's retry, bounded to ``deadline`` seconds."""
    return bounded_retry(deadline, STORAGE_RETRY)


class TransientError(RuntimeError):
    """Retry later: a dependency is unavailable or another delivery holds the object."""


class Busy(TransientError):
    """Another delivery is working on this object version right now."""


class LeaseLost(Busy):
    """This delivery outlived its lease and another one took the object over:
    it must stop writing (its decision could differ, e.g. under a newer model)."""


#: where _claim hands process() the update time of its claim (the fence)
_FENCE = "__fence__"


@dataclass(frozen=True)
class Outcome:
    doc_id: str
    status: str
    label: str | None = None
    confidence: float | None = None
    destination: str | None = None
    duplicate: bool = False
    reason: str | None = None


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
    ) -> None:
        self.settings = settings
        self.storage = storage_client
        self.db = db
        self.models = models
        self.lease = timedelta(seconds=settings.lease_seconds if lease_seconds is None else lease_seconds)
        self.now = now
        self._retry = bounded_retry(settings.dependency_deadline_seconds)
        self._storage_retry = storage_retry(settings.dependency_deadline_seconds)
        self.failpoints = FailPoints.parse(settings.failpoints)  # test-only; empty: off

    # -- public ----------------------------------------------------------------

    def process(self, ref: rec.ObjectRef, *, trigger: str, event_id: str | None = None) -> Outcome:
        """Bring one object version to a finished state. Raises TransientError
        when the caller should retry; permanent problems end as records."""
        started = time.perf_counter()
        doc = self.db.collection(rec.COLLECTION).document(ref.doc_id)
        owner = uuid.uuid4().hex
        claimed = False  # only the delivery holding the lease may record a failure
        fence = None
        try:
            state = self._claim(doc, ref, owner, trigger, event_id)
            if state.get("status") in rec.FINISHED:
                return self._outcome(ref, state, duplicate=True)
            claimed = True
            # Every later write is fenced: it applies only while the document
            # is as this delivery last wrote it, i.e. while it holds the lease.
            fence = state.pop(_FENCE, None)
            timings: dict[str, float] = dict(state.get("timings_ms") or {})
            data: bytes | None = None
            decision = state.get("decision")
            if decision is None:
                data = self._download(ref, timings)
                if data is None:
                    return self._finish(doc, ref, {"status": rec.SKIPPED, "error": _gone(ref)}, timings, started, owner)
                self.failpoints.hit("after_download")
                decision = self._decide(data, timings)
                decision["target"] = _target(decision, ref.name)
                fence = self._update(doc, {"decision": decision, "step": "decided", "updated_at": self.now()}, fence, ref)
                self.failpoints.hit("after_decision")
            destination = state.get("destination")
            if destination is None:
                data = data if data is not None else self._download(ref, timings)
                if data is None:
                    return self._finish(doc, ref, {"status": rec.SKIPPED, "error": _gone(ref)}, timings, started, owner)
                destination = self._store(ref, decision["target"], data, timings)
                self.failpoints.hit("after_copy")
                fence = self._update(doc, {"destination": destination, "step": "copied", "updated_at": self.now()}, fence, ref)
            self.failpoints.hit("before_delete")
            self._delete_source(ref, timings)
            self.failpoints.hit("after_delete")
            return self._finish(doc, ref, {**decision, "destination": destination}, timings, started, owner)
        except _TRANSIENT as exc:
            self._record_failure(doc, exc, claimed, fence)
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except ModelUnavailable as exc:
            self._record_failure(doc, exc, claimed, fence)
            raise TransientError(str(exc)) from exc
        except ValueError as exc:
            # firestore.transactional hides a failed call behind a ValueError (its
            # rollback of a transaction that never began, or "failed after N
            # attempts" on contention): that is still a transient failure.
            cause = _transient_cause(exc)
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
        if seen.get("status") in rec.FINISHED:
            return seen
        now = self.now()
        if rec.leased(seen, now):
            raise Busy(f"object {ref.name}#{ref.generation} is being processed by another delivery")

        def claimed(data: dict) -> dict:
            update = {
                "source": ref.to_dict(),
                "status": rec.PROCESSING,
                "lease_owner": owner,
                "lease_until": now + self.lease,
                # Computed from what was read, not with field transforms
                # (Increment, ArrayUnion): the npm emulator fails on those.
                "attempts": int(data.get("attempts") or 0) + 1,
                "trigger": data.get("trigger", trigger),
                "updated_at": now,
            }
            if event_id:
                update["event_ids"] = _appended(data.get("event_ids"), event_id)
            if not data:  # the document's first write
                update.update(created_at=now, step="claimed", error=None)
            return update

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
            if data.get("status") in rec.FINISHED:
                return data
            if rec.leased(data, now):
                raise Busy(f"object {ref.name}#{ref.generation} is being processed by another delivery")
            update = claimed(data)
            transaction.set(doc, update, merge=list(update))
            return data

        data = claim(self.db.transaction())
        if data.get("status") in rec.FINISHED:
            return data
        # The transaction's write time is not exposed: read it back (only when
        # taking over an existing document, after a crash or a failure).
        mine = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
        if (mine.to_dict() or {}).get("lease_owner") != owner:
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

    def _download(self, ref: rec.ObjectRef, timings: dict[str, float]) -> bytes | None:
        """This exact generation's bytes, or None when it is gone."""
        start = time.perf_counter()
        blob = self.storage.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
        try:
            data = blob.download_as_bytes(timeout=CALL_TIMEOUT, retry=self._storage_retry)
        except gexc.NotFound:
            return None
        timings["download"] = _ms(start)
        return data

    def _decide(self, data: bytes, timings: dict[str, float]) -> dict:
        """Classify the bytes: a confident label, a label for review, or a rejection."""
        classifier = self.models.get()
        start = time.perf_counter()
        try:
            prediction = classifier.classify(data, top_k=self.settings.top_k, limits=self.settings.decode_limits)
        except ImageError as exc:
            timings["classify"] = _ms(start)
            return {
                "status": rec.REJECTED,
                "label": None,
                "confidence": None,
                "top_k": [],
                "model_version": classifier.version,
                "error": exc.to_dict(),
            }
        timings["classify"] = _ms(start)
        confident = prediction.confidence >= self.settings.confidence_threshold
        return {
            "status": rec.CLASSIFIED if confident else rec.NEEDS_REVIEW,
            "label": prediction.label,
            "confidence": prediction.confidence,
            "top_k": prediction.to_dict()["top_k"],
            "model_version": classifier.version,
            "error": None,
        }

    def _store(self, ref: rec.ObjectRef, target: str, data: bytes, timings: dict[str, float]) -> dict:
        """Write the bytes to the processed bucket, only ever creating: an
        identical file already there counts as done (an earlier attempt); a
        different one is never overwritten, and the copy goes to a name
        carrying the generation instead."""
        bucket = self.storage.bucket(self.settings.processed_bucket)
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        start = time.perf_counter()
        for name in (target, _with_generation(target, ref.generation)):
            blob = bucket.blob(name)
            blob.metadata = {
                "source-bucket": ref.bucket,
                "source-name": ref.name,
                "source-generation": str(ref.generation),
                "classification-id": ref.doc_id,
            }
            try:
                blob.upload_from_string(
                    data,
                    content_type=ref.content_type or "application/octet-stream",
                    if_generation_match=0,
                    timeout=CALL_TIMEOUT,
                    retry=self._storage_retry,  # create-only, so repeating it is safe
                )
            except gexc.PreconditionFailed:
                existing = bucket.get_blob(name, timeout=CALL_TIMEOUT, retry=self._storage_retry)
                if existing is None or existing.md5_hash != digest:
                    continue  # a different file: never overwrite it
            timings["copy"] = _ms(start)
            return {"bucket": bucket.name, "name": name}
        raise TransientError(f"both destinations for {ref.name}#{ref.generation} hold other files")

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
        self, doc: Any, ref: rec.ObjectRef, result: dict, timings: dict[str, float], started: float, owner: str | None = None
    ) -> Outcome:
        """Write the final state and bump the counters, once."""
        now = self.now()
        timings["total"] = _ms(started)
        final = {
            "status": result["status"],
            "label": result.get("label"),
            "confidence": result.get("confidence"),
            "top_k": result.get("top_k", []),
            "model_version": result.get("model_version"),
            "destination": result.get("destination"),
            "error": result.get("error"),
            "timings_ms": timings,
            "step": "done",
            "finished_at": now,
            "updated_at": now,
            "lease_until": None,
            "lease_owner": None,
        }
        reason = (result.get("error") or {}).get("reason")
        # A plain, bounded read first (as in _claim): an unavailable Firestore
        # fails here within the retry deadline rather than in the
        # transaction's begin call, which retries for 60 s.
        current = doc.get(retry=self._retry, timeout=CALL_TIMEOUT)
        if current.exists and (current.to_dict() or {}).get("status") in rec.FINISHED:
            return self._outcome(ref, current.to_dict() or {})

        @firestore.transactional
        def finish(transaction: firestore.Transaction) -> dict:
            snapshot = doc.get(transaction=transaction, retry=self._retry, timeout=CALL_TIMEOUT)
            data = snapshot.to_dict() or {}
            if data.get("status") in rec.FINISHED:
                return data
            if owner is not None and data.get("lease_owner") not in (None, owner):
                raise LeaseLost(f"object {ref.name}#{ref.generation} was taken over by another delivery")
            shard = self.db.document(*rec.shard_path(now))
            counts = shard.get(transaction=transaction, retry=self._retry, timeout=CALL_TIMEOUT).to_dict() or {}
            # merge=<top-level names>: each field is replaced whole (merge=True
            # merges maps key by key, which the npm emulator gets wrong when the
            # stored value is null, e.g. error: None -> {reason, message}).
            transaction.set(doc, final, merge=list(final))
            increments = rec.counter_fields(final["status"], final["label"], reason)
            transaction.set(shard, _counted(counts, increments, rec.day_of(now)))
            return {**data, **final}

        data = finish(self.db.transaction())
        outcome = self._outcome(ref, data)
        log.info(
            "%s %s -> %s",
            ref.name,
            outcome.status,
            outcome.destination or "-",
            extra={
                "object": ref.name,
                "generation": str(ref.generation),
                "classification_id": ref.doc_id,
                "status": outcome.status,
                "label": outcome.label,
                "confidence": outcome.confidence,
                "timings_ms": timings,
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
        failure = {
            "status": rec.FAILED,
            "error": {"reason": "transient", "message": f"{type(exc).__name__}: {exc}"[:500]},
            "lease_until": None,
            "updated_at": self.now(),
        }
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

    def _outcome(self, ref: rec.ObjectRef, data: dict, duplicate: bool = False) -> Outcome:
        destination = data.get("destination") or {}
        return Outcome(
            doc_id=ref.doc_id,
            status=data.get("status", rec.PROCESSING),
            label=data.get("label"),
            confidence=data.get("confidence"),
            destination=f"gs://{destination['bucket']}/{destination['name']}" if destination else None,
            duplicate=duplicate,
            reason=(data.get("error") or {}).get("reason"),
        )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _appended(items: list | None, item: str) -> list:
    """``items`` with ``item`` at the end, once."""
    items = list(items or [])
    return items if item in items else [*items, item]


def _counted(counts: dict, increments: dict[str, int], day: str) -> dict:
    """A counter shard's whole new content: ``counts`` plus ``increments``.
    Written whole inside the transaction that read it, rather than with
    Increment transforms, which the npm Firestore emulator rejects (or
    misnames) on field names holding dots or spaces ("category.Casual Shoes")."""
    return {**counts, **{key: int(counts.get(key) or 0) + n for key, n in increments.items()}, "day": day}


def _transient_cause(exc: BaseException) -> BaseException | None:
    """The transient error in ``exc``'s chain of causes and contexts, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _TRANSIENT):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _gone(ref: rec.ObjectRef) -> dict:
    return {
        "reason": "source_gone",
        "message": f"gs://{ref.bucket}/{ref.name} generation {ref.generation} no longer exists (deleted or overwritten)",
    }


def _split_extension(base: str) -> tuple[str, str]:
    """``"x.jpg"`` -> ``("x", ".jpg")``; no extension (or a dotfile, or a
    "suffix" too long to be one) -> ``(base, "")``."""
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem or len(extension) > 8:
        return base, ""
    return stem, "." + extension


def _fit(name: str) -> str:
    """``name``, or when it is longer than Cloud Storage allows, its start cut
    to fit (never inside a character) and a hash of the whole name plus the
    extension appended, so that different long names stay different. The
    original name stays in the record and in the copy's metadata."""
    encoded = name.encode()
    if len(encoded) <= rec.GCS_NAME_LIMIT:
        return name
    extension = _split_extension(name.rpartition("/")[2])[1]
    tag = f"~{hashlib.sha256(encoded).hexdigest()[:16]}{extension}"
    keep = rec.GCS_NAME_LIMIT - len(tag.encode())
    return encoded[:keep].decode("utf-8", errors="ignore") + tag


def _with_generation(name: str, generation: int) -> str:
    """The fallback destination: the generation before the extension. Built
    on the string (a path library would collapse ``//`` and drop a trailing
    ``/``, which are legal in object names)."""
    head, slash, base = name.rpartition("/")
    stem, extension = _split_extension(base)
    return _fit(f"{head}{slash}{stem}.{generation}{extension}")


def _target(decision: dict, name: str) -> str:
    """Where a decision files the object in the processed bucket."""
    if decision["status"] == rec.REJECTED:
        return _fit(f"rejected/{name}")
    slug = slugify(decision["label"])
    return _fit(f"{slug}/{name}" if decision["status"] == rec.CLASSIFIED else f"review/{slug}/{name}")
