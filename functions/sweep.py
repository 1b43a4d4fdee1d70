"""The sweep: find uploads that no event finished and process them.

Lists the incoming bucket, takes object versions older than ``min_age`` (and,
when given, younger than ``max_age``) that have no finished record, and runs
each through the same idempotent core as the event function
(:meth:`functions.processing.Processor.process` with ``trigger="sweep"``)
within a time budget; then does the same for records left unfinished whose
source is already gone (a delivery stopped between the delete and the final
record, and its event was dead-lettered). The core's Firestore lease keeps two overlapping sweeps
(or a sweep and an event) from working on one object at once: a busy object is
counted as skipped, not failed. Each run is recorded in ``sweep_runs/<run_id>``.
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

from functions import records as rec
from functions.processing import CALL_TIMEOUT, Busy, Processor, TransientError
from shared.settings import Settings

log = logging.getLogger(__name__)

RUNS = "sweep_runs"
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

    def to_dict(self) -> dict[str, Any]:
        """The ``sweep_runs/<run_id>`` document (and the HTTP response)."""
        return {
            "run_id": self.run_id,
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
    "failed",
)


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

    def run(self, options: SweepOptions, run_id: str | None = None, log_context: dict[str, Any] | None = None) -> SweepReport:
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
        self._record(report, running=True)
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
        report.finished_at = self.now()
        report.duration_s = self.clock() - started
        report.counts["skipped"] = sum(report.counts[k] for k in COUNT_KEYS if k.startswith("skipped_"))
        self._record(report, running=False)
        log.info("sweep finished", extra=context | {"counts": report.to_dict()["counts"], "cut_off": report.cut_off_by_budget})
        return report

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
            query = collection.where(filter=FieldFilter("status", "==", status))
            for snapshot in query.stream(timeout=CALL_TIMEOUT):
                data = snapshot.to_dict() or {}
                source = data.get("source") or {}
                updated_at = data.get("updated_at")
                if source.get("bucket") != self.settings.incoming_bucket or not source.get("name"):
                    continue
                if data.get("step") != "copied" or not data.get("destination"):
                    continue  # not past the copy: the source is still in incoming, or gone for other reasons
                if rec.leased(data, now):
                    continue  # a delivery holds it
                if updated_at and (now - updated_at).total_seconds() < report.options.min_age:
                    continue  # its event may still be retried
                created_at = data.get("created_at")
                if (
                    report.options.max_age is not None
                    and created_at
                    and (now - created_at).total_seconds() > report.options.max_age
                ):
                    continue
                yield rec.ObjectRef.from_dict(source)

    def _incoming(self, report: SweepReport) -> Iterator[rec.ObjectRef]:
        """Object versions in incoming that are old enough and not finished."""
        now = self.now()
        options = report.options
        for blob in self.storage.list_blobs(self.settings.incoming_bucket, timeout=CALL_TIMEOUT):
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
        snapshot = self.db.collection(rec.COLLECTION).document(ref.doc_id).get(timeout=CALL_TIMEOUT)
        return snapshot.exists and (snapshot.to_dict() or {}).get("status") in rec.FINISHED

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

    def _record(self, report: SweepReport, *, running: bool) -> None:
        document = report.to_dict() | {"status": "running" if running else "finished"}
        self.db.collection(RUNS).document(report.run_id).set(document, timeout=CALL_TIMEOUT)


def new_run_id(moment: datetime) -> str:
    """Sortable by time, unique across overlapping runs."""
    return f"{moment:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


def last_run(db: Any) -> dict[str, Any] | None:
    """The newest ``sweep_runs`` document (ids sort by start time)."""
    from google.cloud import firestore

    query = db.collection(RUNS).order_by("started_at", direction=firestore.Query.DESCENDING).limit(1)
    for snapshot in query.stream(timeout=CALL_TIMEOUT):
        return {"id": snapshot.id, **(snapshot.to_dict() or {})}
    return None
