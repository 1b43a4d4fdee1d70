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
from pathlib import PurePosixPath
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore

from functions import records as rec
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
_CALL_TIMEOUT = 20.0
#: Bounded retries for Firestore calls: a dependency that is down answers 5xx
#: within seconds (and the platform retries), rather than hanging the request.
_RETRY = Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=15.0)


class TransientError(RuntimeError):
    """Retry later: a dependency is unavailable or another delivery holds the object."""


class Busy(TransientError):
    """Another delivery is working on this object version right now."""


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
        lease_seconds: float = 120.0,
        now: Callable[[], datetime] = rec.utcnow,
    ) -> None:
        self.settings = settings
        self.storage = storage_client
        self.db = db
        self.models = models
        self.lease = timedelta(seconds=lease_seconds)
        self.now = now

    # -- public ----------------------------------------------------------------

    def process(self, ref: rec.ObjectRef, *, trigger: str, event_id: str | None = None) -> Outcome:
        """Bring one object version to a finished state. Raises TransientError
        when the caller should retry; permanent problems end as records."""
        started = time.perf_counter()
        doc = self.db.collection(rec.COLLECTION).document(ref.doc_id)
        owner = uuid.uuid4().hex
        claimed = False  # only the delivery holding the lease may record a failure
        try:
            state = self._claim(doc, ref, owner, trigger, event_id)
            if state.get("status") in rec.FINISHED:
                return self._outcome(ref, state, duplicate=True)
            claimed = True
            timings: dict[str, float] = dict(state.get("timings_ms") or {})
            data: bytes | None = None
            decision = state.get("decision")
            if decision is None:
                data = self._download(ref, timings)
                if data is None:
                    return self._finish(doc, ref, {"status": rec.SKIPPED, "error": _gone(ref)}, timings, started)
                decision = self._decide(data, timings)
                decision["target"] = _target(decision, ref.name)
                doc.update(
                    {"decision": decision, "step": "decided", "updated_at": self.now()}, retry=_RETRY, timeout=_CALL_TIMEOUT
                )
            destination = state.get("destination")
            if destination is None:
                data = data if data is not None else self._download(ref, timings)
                if data is None:
                    return self._finish(doc, ref, {"status": rec.SKIPPED, "error": _gone(ref)}, timings, started)
                destination = self._store(ref, decision["target"], data, timings)
                doc.update(
                    {"destination": destination, "step": "copied", "updated_at": self.now()}, retry=_RETRY, timeout=_CALL_TIMEOUT
                )
            self._delete_source(ref, timings)
            return self._finish(doc, ref, {**decision, "destination": destination}, timings, started)
        except _TRANSIENT as exc:
            self._record_failure(doc, exc, claimed)
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except ModelUnavailable as exc:
            self._record_failure(doc, exc, claimed)
            raise TransientError(str(exc)) from exc
        except ValueError as exc:
            # firestore.transactional hides a failed call behind a ValueError (its
            # rollback of a transaction that never began, or "failed after N
            # attempts" on contention): that is still a transient failure.
            cause = _transient_cause(exc)
            if cause is None:
                raise
            self._record_failure(doc, cause, claimed)
            raise TransientError(f"{type(cause).__name__}: {cause}") from exc

    # -- steps -----------------------------------------------------------------

    def _claim(self, doc: Any, ref: rec.ObjectRef, owner: str, trigger: str, event_id: str | None) -> dict:
        """Take the lease on this object version, or say it is done or busy.

        A plain read comes first: a redelivered event for a finished object
        costs no transaction, and an unavailable Firestore fails within the
        bounded ``_RETRY`` (a transaction's begin call takes no retry
        settings: it retries for 60 s).
        """
        current = doc.get(retry=_RETRY, timeout=_CALL_TIMEOUT)
        if current.exists and (current.to_dict() or {}).get("status") in rec.FINISHED:
            return current.to_dict() or {}
        now = self.now()

        @firestore.transactional
        def claim(transaction: firestore.Transaction) -> dict:
            snapshot = doc.get(transaction=transaction, retry=_RETRY, timeout=_CALL_TIMEOUT)
            data = snapshot.to_dict() if snapshot.exists else {}
            if data.get("status") in rec.FINISHED:
                return data
            lease_until = data.get("lease_until")
            if data.get("status") == rec.PROCESSING and lease_until and lease_until > now:
                raise Busy(f"object {ref.name}#{ref.generation} is being processed by another delivery")
            update = {
                "source": ref.to_dict(),
                "status": rec.PROCESSING,
                "lease_owner": owner,
                "lease_until": now + self.lease,
                # Computed from what the transaction read, not with field
                # transforms (Increment, ArrayUnion): the npm emulator fails on those.
                "attempts": int(data.get("attempts") or 0) + 1,
                "trigger": data.get("trigger", trigger),
                "updated_at": now,
            }
            if event_id:
                update["event_ids"] = _appended(data.get("event_ids"), event_id)
            if not snapshot.exists:
                update.update(created_at=now, step="claimed", error=None)
            transaction.set(doc, update, merge=list(update))
            return data

        return claim(self.db.transaction())

    def _download(self, ref: rec.ObjectRef, timings: dict[str, float]) -> bytes | None:
        """This exact generation's bytes, or None when it is gone."""
        start = time.perf_counter()
        blob = self.storage.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
        try:
            data = blob.download_as_bytes(timeout=_CALL_TIMEOUT)
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
                    timeout=_CALL_TIMEOUT,
                )
            except gexc.PreconditionFailed:
                existing = bucket.get_blob(name, timeout=_CALL_TIMEOUT)
                if existing is None or existing.md5_hash != digest:
                    continue  # a different file: never overwrite it
            timings["copy"] = _ms(start)
            return {"bucket": bucket.name, "name": name}
        raise TransientError(f"both destinations for {ref.name}#{ref.generation} hold other files")

    def _delete_source(self, ref: rec.ObjectRef, timings: dict[str, float]) -> None:
        """Delete exactly this generation; a newer upload under the name stays."""
        bucket = self.storage.bucket(ref.bucket)
        start = time.perf_counter()
        live = bucket.get_blob(ref.name, timeout=_CALL_TIMEOUT)
        if live is not None and live.generation == ref.generation:
            with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
                bucket.blob(ref.name, generation=ref.generation).delete(if_generation_match=ref.generation, timeout=_CALL_TIMEOUT)
        timings["delete"] = _ms(start)

    def _finish(self, doc: Any, ref: rec.ObjectRef, result: dict, timings: dict[str, float], started: float) -> Outcome:
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

        @firestore.transactional
        def finish(transaction: firestore.Transaction) -> dict:
            snapshot = doc.get(transaction=transaction, retry=_RETRY, timeout=_CALL_TIMEOUT)
            data = snapshot.to_dict() or {}
            if data.get("status") in rec.FINISHED:
                return data
            shard = self.db.document(*rec.shard_path(now))
            counts = shard.get(transaction=transaction, retry=_RETRY, timeout=_CALL_TIMEOUT).to_dict() or {}
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

    def _record_failure(self, doc: Any, exc: BaseException, claimed: bool = True) -> None:
        """Mark the document failed and release the lease, only when this
        delivery holds the lease: one that failed before claiming must not
        overwrite the state of another that is working on (or has finished)
        the object."""
        if isinstance(exc, Busy) or not claimed:
            return
        failure = {
            "status": rec.FAILED,
            "error": {"reason": "transient", "message": f"{type(exc).__name__}: {exc}"[:500]},
            "lease_until": None,
            "updated_at": self.now(),
        }
        try:
            doc.set(
                failure,
                merge=list(failure),
                retry=None,  # one attempt: Firestore itself may be what failed
                timeout=5,
            )
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


def _with_generation(name: str, generation: int) -> str:
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.stem}.{generation}{path.suffix}"))


def _target(decision: dict, name: str) -> str:
    """Where a decision files the object in the processed bucket."""
    if decision["status"] == rec.REJECTED:
        return f"rejected/{name}"
    slug = slugify(decision["label"])
    return f"{slug}/{name}" if decision["status"] == rec.CLASSIFIED else f"review/{slug}/{name}"
