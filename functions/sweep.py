"""The sweep: find uploads that no event finished and process them.

Lists the incoming bucket, takes object versions older than ``min_age`` (and,
when given, younger than ``max_age``) that have no finished record, and runs
each through the same idempotent core as the event function
(:meth:`functions.processing.Processor.process` with ``trigger="sweep"``)
within a time budget; then does the same for records left unfinished whose
source is already gone (a delivery stopped between the delete and the final
record, and its event was dead-lettered); then publishes the completion
events left pending in records' outboxes (functions/event_outbox.py). The core's Firestore lease keeps two overlapping sweeps
(or a sweep and an event) from working on one object at once: a busy object is
counted as skipped, not failed. Each run is recorded in ``sweep_runs/<run_id>``:
``running`` while it works, then ``finished``, or ``failed`` with the reason
when a dependency error stopped it (:class:`SweepFailed`); the next run reports
a previous run that failed or never finished (``previous_run``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from functions.dependencies import CALL_TIMEOUT, DEPENDENCY_ERRORS, bounded_retry, storage_retry
from functions.processing import Busy, Processor, TransientError
from shared import records as rec
from shared.settings import Settings

log = logging.getLogger(__name__)

RUNS = rec.RUNS
RUNNING, FINISHED, FAILED = "running", "finished", "failed"  #: a run document's statuses
#: a run still ``running`` this long (seconds) after its budget ran out never finished
UNFINISHED_AFTER = 300.0
MAX_LISTED = 500  #: names a dry run lists (a Firestore document holds at most 1 MiB)


@dataclass(frozen=True)
class SweepOptions:
    dry_run: bool = False
    min_age: float = 300.0  # seconds: younger objects are left to their events
    max_age: float | None = None  # seconds: older objects are left alone (None: no limit)
    budget: float = 240.0  # seconds: after the first object, none is taken once the next may not fit
    limit: int | None = None  # at most this many objects processed (None: no limit)
    report_days: int | None = None  # also publish the operations report of this many days to reports/

    @classmethod
    def from_request(cls, body: Mapping[str, Any], settings: Settings) -> SweepOptions:
        """Options from a JSON request body, defaults from the settings. Raises ValueError."""
        if not isinstance(body, Mapping):
            raise ValueError("the request body must be a JSON object")
        unknown = set(body) - {"dry_run", "min_age", "max_age", "budget", "limit", "report_days"}
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        limit = body.get("limit", settings.sweep_max_objects or None)
        options = cls(
            dry_run=_boolean(body.get("dry_run", False)),
            min_age=float(body.get("min_age", settings.sweep_min_age_seconds)),
            max_age=None if body.get("max_age") is None else float(body["max_age"]),
            budget=float(body.get("budget", settings.sweep_budget_seconds)),
            limit=None if limit is None else int(limit),
            report_days=None if body.get("report_days") is None else int(body["report_days"]),
        )
        if options.report_days is not None and not 1 <= options.report_days <= 90:
            raise ValueError("report_days must be between 1 and 90")
        if options.min_age < 0 or options.budget <= 0 or (options.limit is not None and options.limit < 1):
            raise ValueError("min_age must be >= 0, budget > 0 and limit >= 1")
        if options.max_age is not None and options.max_age < options.min_age:
            raise ValueError("max_age must be >= min_age")
        return options


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"dry_run must be true or false, not {value!r}")


@dataclass
class SweepReport:
    run_id: str
    started_at: datetime
    options: SweepOptions
    counts: Counter
    categories: Counter
    would_process: list[str]
    finished_at: datetime | None = None
    duration_s: float = 0.0
    cut_off_by_budget: bool = False
    status: str = RUNNING
    error: dict[str, str] | None = None  # rec.error_info(): why a failed run stopped
    previous_run: dict[str, Any] | None = None  # the previous run, when it failed or never finished

    def to_dict(self) -> dict[str, Any]:
        """The ``sweep_runs/<run_id>`` document (and the HTTP response)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "previous_run": self.previous_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "dry_run": self.options.dry_run,
            "options": asdict(self.options),
            "cut_off_by_budget": self.cut_off_by_budget,
            "counts": {key: int(self.counts.get(key, 0)) for key in COUNT_KEYS},
            "per_category": dict(self.categories),
            "would_process": self.would_process[:MAX_LISTED],
        }


#: every count a run document holds
COUNT_KEYS = (
    "scanned",
    "eligible",
    "processed",
    "skipped",
    "skipped_too_young",
    "skipped_too_old",
    "skipped_finished",
    "skipped_busy",
    "skipped_gone",
    "stranded",
    "classified",
    "needs_review",
    "rejected",
    "empty",
    "failed",
    "events_published",
    "events_failed",
)


class SweepFailed(RuntimeError):
    """A dependency error stopped the run; its document says ``failed`` with
    the reason (when Firestore let it be written). ``report``: the run so far."""

    def __init__(self, report: SweepReport, cause: BaseException) -> None:
        super().__init__(f"sweep run {report.run_id} failed: {type(cause).__name__}: {cause}")
        self.report = report


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        storage_client: Any,
        db: Any,
        processor: Processor,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = rec.utcnow,
    ) -> None:
        self.settings = settings
        self.storage = storage_client
        self.db = db
        self.processor = processor
        self.clock = clock
        self.now = now
        # every listing and read bounded like the core's (DEPENDENCY_DEADLINE_SECONDS)
        self._retry = bounded_retry(settings.dependency_deadline_seconds)
        self._storage_retry = storage_retry(settings.dependency_deadline_seconds)

    def run(self, options: SweepOptions, run_id: str | None = None, log_context: dict[str, Any] | None = None) -> SweepReport:
        """One run: recorded as ``running``, then ``finished``. Raises
        SweepFailed (the document then ``failed``, with the reason) when a
        dependency error stops it."""
        started = self.clock()
        report = SweepReport(
            run_id=run_id or new_run_id(self.now()),
            started_at=self.now(),
            options=options,
            counts=Counter(),
            categories=Counter(),
            would_process=[],
        )
        context = {**(log_context or {}), "sweep_run_id": report.run_id, "dry_run": options.dry_run}
        log.info("sweep started", extra=context | {"options": asdict(options)})
        try:
            report.previous_run = self._previous_problem()
            if report.previous_run:
                log.warning("the previous sweep run did not finish: %s", report.previous_run, extra=context)
            self._record(report)
            self._sweep(report, started, context)
            report.status = FINISHED
            self._close(report, started)
            self._record(report)
        except DEPENDENCY_ERRORS as exc:
            report.status = FAILED
            report.error = rec.error_info("dependency_unavailable", f"{type(exc).__name__}: {exc}"[:500])
            self._close(report, started)
            log.error("sweep failed: %s", exc, extra=context | {"counts": report.to_dict()["counts"]})
            try:
                self._record(report, retry=None, timeout=5)  # one attempt: Firestore may be what failed
            except DEPENDENCY_ERRORS as nested:
                log.warning("could not record the failed run: %s", nested, extra=context)
            raise SweepFailed(report, exc) from exc
        log.info("sweep finished", extra=context | {"counts": report.to_dict()["counts"], "cut_off": report.cut_off_by_budget})
        return report

    def _close(self, report: SweepReport, started: float) -> None:
        report.finished_at = self.now()
        report.duration_s = self.clock() - started
        report.counts["skipped"] = sum(report.counts[k] for k in COUNT_KEYS if k.startswith("skipped_"))

    def _sweep(self, report: SweepReport, started: float, context: dict[str, Any]) -> None:
        """Take the candidates in turn, within the options' limit and budget."""
        options = report.options
        slowest, attempted = 0.0, 0
        for ref in self._candidates(report):
            if options.limit is not None and attempted >= options.limit:
                break
            # The first object is always taken, so that every run makes progress.
            if attempted and self.clock() - started + slowest > options.budget:
                report.cut_off_by_budget = True
                break
            attempted += 1
            if options.dry_run:
                report.would_process.append(ref.name)
                continue
            taken = self.clock()
            self._process_one(ref, report, context)
            slowest = max(slowest, self.clock() - taken)
        if not options.dry_run:
            self._republish(report, context)

    def _republish(self, report: SweepReport, context: dict[str, Any]) -> None:
        """Publish the completion events a crash or an unavailable Pub/Sub left
        pending in records' outboxes for more than ``EVENTS_GRACE_SECONDS``.
        A failed query (Firestore down, or an emulator that cannot filter on
        a nested field) is logged and counted, never fails the run: the
        objects' work is done, and the next run tries again."""
        try:
            counts = self.processor.outbox.republish(self.settings.events_grace_seconds)
        except DEPENDENCY_ERRORS as exc:
            report.counts["events_failed"] += 1
            log.error("could not republish pending events: %s: %s", type(exc).__name__, exc, extra=context)
            return
        report.counts["events_published"] += counts["published"]
        if counts["records"]:
            log.info("published %d pending events of %d records", counts["published"], counts["records"], extra=context)

    def _previous_problem(self) -> dict[str, Any] | None:
        """The newest earlier run, when it failed or never finished (still
        ``running`` :data:`UNFINISHED_AFTER` seconds after its budget)."""
        previous = last_run(self.db, retry=self._retry)
        if previous is None:
            return None
        status, started_at = previous.get("status"), previous.get("started_at")
        budget = float((previous.get("options") or {}).get("budget") or 0.0)
        stale = isinstance(started_at, datetime) and (self.now() - started_at).total_seconds() > budget + UNFINISHED_AFTER
        if status == FAILED or (status == RUNNING and stale):
            return {
                "run_id": previous.get("id"),
                "status": status if status == FAILED else "unfinished",
                "error": previous.get("error"),
            }
        return None

    # -- steps -----------------------------------------------------------------

    def _candidates(self, report: SweepReport) -> Iterator[rec.ObjectRef]:
        """Object versions in incoming that are old enough and not finished,
        then stranded records (:meth:`_stranded`)."""
        listed: set[str] = set()
        for ref in self._incoming(report):
            listed.add(ref.doc_id)
            yield ref
        for ref in self._stranded(report):
            if ref.doc_id not in listed:
                report.counts["stranded"] += 1
                report.counts["eligible"] += 1
                yield ref

    def _stranded(self, report: SweepReport) -> Iterator[rec.ObjectRef]:
        """Object versions whose record was left unfinished (processing with
        an expired lease, or failed) after its copy was recorded (step
        ``copied``), not updated for ``min_age`` seconds.

        The incoming listing cannot find these when the source is already
        deleted: a delivery that stopped between the delete and the final
        record (a crash, Firestore down) leaves the file in the processed
        bucket and the record unfinished; when its event is dead-lettered,
        only this pass finishes the record (and counts it). Two equality
        queries, which every Firestore emulator serves."""
        from google.cloud.firestore import FieldFilter

        now = self.now()
        collection = self.db.collection(rec.COLLECTION)
        for status in (rec.PROCESSING, rec.FAILED):
            query = collection.where(filter=FieldFilter(rec.Field.STATUS, "==", status))
            for snapshot in query.stream(retry=self._retry, timeout=CALL_TIMEOUT):
                data = snapshot.to_dict() or {}
                record = rec.Classification.from_firestore(data)
                source = record.source
                if source is None or source.bucket != self.settings.incoming_bucket or not source.name:
                    continue
                if record.step != rec.COPIED or record.destination is None:
                    continue  # not past the copy: the source is still in incoming, or gone for other reasons
                if rec.leased(data, now):
                    continue  # a delivery holds it
                if record.updated_at and (now - record.updated_at).total_seconds() < report.options.min_age:
                    continue  # its event may still be retried
                created_at = record.created_at
                if (
                    report.options.max_age is not None
                    and created_at
                    and (now - created_at).total_seconds() > report.options.max_age
                ):
                    continue
                yield source

    def _incoming(self, report: SweepReport) -> Iterator[rec.ObjectRef]:
        """Object versions in incoming that are old enough and not finished."""
        now = self.now()
        options = report.options
        for blob in self.storage.list_blobs(self.settings.incoming_bucket, timeout=CALL_TIMEOUT, retry=self._storage_retry):
            if blob.name.endswith("/"):
                continue
            report.counts["scanned"] += 1
            age = (now - blob.time_created).total_seconds() if blob.time_created else float("inf")
            if age < options.min_age:
                report.counts["skipped_too_young"] += 1
                continue
            if options.max_age is not None and age > options.max_age:
                report.counts["skipped_too_old"] += 1
                continue
            ref = rec.ObjectRef(self.settings.incoming_bucket, blob.name, int(blob.generation), blob.size, blob.content_type)
            if self._finished(ref):
                report.counts["skipped_finished"] += 1
                continue
            report.counts["eligible"] += 1
            yield ref

    def _finished(self, ref: rec.ObjectRef) -> bool:
        snapshot = self.db.collection(rec.COLLECTION).document(ref.doc_id).get(retry=self._retry, timeout=CALL_TIMEOUT)
        return snapshot.exists and rec.is_finished(snapshot.to_dict())

    def _process_one(self, ref: rec.ObjectRef, report: SweepReport, context: dict[str, Any]) -> None:
        extra = context | {"object": ref.name, "generation": str(ref.generation), "classification_id": ref.doc_id}
        try:
            outcome = self.processor.process(ref, trigger="sweep", event_id=f"sweep:{report.run_id}")
        except Busy:
            report.counts["skipped_busy"] += 1
            log.info("%s: busy (another delivery holds it)", ref.name, extra=extra)
            return
        except TransientError as exc:
            report.counts["failed"] += 1
            log.warning("%s: transient failure: %s", ref.name, exc, extra=extra)
            return
        if outcome.duplicate:
            report.counts["skipped_finished"] += 1
            return
        if outcome.status == rec.SKIPPED:
            report.counts["skipped_gone"] += 1
            return
        report.counts["processed"] += 1
        report.counts[outcome.status] += 1
        if outcome.label and outcome.status in (rec.CLASSIFIED, rec.NEEDS_REVIEW):
            report.categories[outcome.label] += 1
        log.info("%s: %s", ref.name, outcome.status, extra=extra | {"status": outcome.status, "label": outcome.label})

    def _record(self, report: SweepReport, **call: Any) -> None:
        """Write the run's document (``call``: retry and timeout of the write)."""
        call = {"retry": self._retry, "timeout": CALL_TIMEOUT} | call
        self.db.collection(RUNS).document(report.run_id).set(report.to_dict(), **call)


def new_run_id(moment: datetime) -> str:
    """Sortable by time, unique across overlapping runs."""
    return f"{moment:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


def last_run(db: Any, retry: Any = None) -> dict[str, Any] | None:
    """The newest ``sweep_runs`` document, with its ``id`` (``retry``: of the
    query; None: the client's default)."""
    from google.cloud import firestore

    query = db.collection(RUNS).order_by("started_at", direction=firestore.Query.DESCENDING).limit(1)
    call = {"timeout": CALL_TIMEOUT} | ({"retry": retry} if retry is not None else {})
    for snapshot in query.stream(**call):
        return {"id": snapshot.id, **(snapshot.to_dict() or {})}
    return None


def publish_report(
    settings: Settings, storage: Any, db: Any, days: int, run_id: str, context: dict[str, Any]
) -> list[str] | dict[str, Any]:
    """The operations report of the last ``days`` days into
    ``reports/<run_id>/`` of the processed bucket: the gs:// URIs written, or
    ``{"error": {"code", "message"}}`` when a dependency failed (the run
    itself succeeded). matplotlib is imported here only, never on the event path."""
    from functions.predict_api import ApiError
    from reporting import collect

    try:
        built = collect.make_report(db, storage, models_bucket=settings.models_bucket, days=days, project=settings.project)
        uris = collect.upload(built, storage, settings.processed_bucket, run_id)
    except DEPENDENCY_ERRORS as exc:
        log.warning("the sweep's report failed: %s", exc, extra=context)
        return ApiError(503, "report_failed", f"report not written: {type(exc).__name__}").body()
    log.info("report written to %s", uris[0] if uris else "-", extra=context | {"report": uris})
    return uris
