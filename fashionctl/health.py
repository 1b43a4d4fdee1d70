"""``fashionctl health``: is the pipeline keeping up?

Reports the current model version, the backlog in the incoming bucket and the
age of its oldest object, the review backlog (items per band, the oldest
one's age, decisions per day, the model's accuracy on reviewed items), the
last sweep run, the error rate of the last hour (failed records / all records updated in the hour) and
the attribute coverage of those records (given vs left empty per attribute). Exits 1 when
unhealthy: no model, a backlog older than ``max_backlog_age``, or an error
rate above ``max_error_rate``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from shared import records as rec
from shared.attribute_coverage import coverage, coverage_text
from shared.model_layout import current_version
from shared.review_backlog import decided_on

QUERY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Thresholds:
    max_backlog_age: float = 900.0  # seconds
    max_error_rate: float = 0.1  # failed / updated in the last hour
    min_records_for_rate: int = 1  # below this many records in the hour, the rate is not judged


@dataclass
class Health:
    model_version: str | None
    backlog: int
    oldest_backlog_age_s: float | None
    last_sweep: dict[str, Any] | None
    records_last_hour: int
    failed_last_hour: int
    problems: list[str] = field(default_factory=list)
    review: dict[str, Any] | None = None  # shared.review_backlog.Backlog.to_dict(); not judged
    #: attribute coverage of the records updated in the last hour (shared.attribute_coverage); not judged
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.failed_last_hour / self.records_last_hour if self.records_last_hour else 0.0

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"error_rate": round(self.error_rate, 4), "healthy": self.healthy}


def assess(health: Health, thresholds: Thresholds) -> list[str]:
    """What is wrong, in words (empty when healthy)."""
    problems = []
    if not health.model_version:
        problems.append("no current model")
    age = health.oldest_backlog_age_s
    if age is not None and age > thresholds.max_backlog_age:
        problems.append(
            f"backlog of {health.backlog} objects, the oldest {age:.0f} s old (limit {thresholds.max_backlog_age:.0f} s)"
        )
    sweep = health.last_sweep or {}
    if sweep.get("status") == "failed":
        reason = (sweep.get("error") or {}).get("message") or "no reason recorded"
        problems.append(f"the last sweep run {sweep.get('id')} failed: {reason}")
    judged = health.records_last_hour >= thresholds.min_records_for_rate
    if judged and health.error_rate > thresholds.max_error_rate:
        problems.append(f"error rate {health.error_rate:.1%} in the last hour (limit {thresholds.max_error_rate:.1%})")
    return problems


def backlog(storage: Any, bucket: str, now: datetime) -> tuple[int, float | None]:
    """How many objects wait in ``bucket`` and the age in seconds of the oldest.
    Zero-byte objects do not wait: folder placeholders and ``empty`` records
    stay in place (docs/records.md)."""
    created = [b.time_created for b in storage.list_blobs(bucket, timeout=QUERY_TIMEOUT) if b.size]
    oldest = min((t for t in created if t is not None), default=None)
    return len(created), (now - oldest).total_seconds() if oldest else None


def last_hour(db: Any, now: datetime) -> tuple[int, int]:
    """(records updated in the last hour, of which failed)."""
    records = last_hour_records(db, now)
    return len(records), sum(1 for record in records if record.status == rec.FAILED)


def last_hour_records(db: Any, now: datetime) -> list[rec.Classification]:
    """The records updated in the last hour."""
    from google.cloud import firestore

    since = now - timedelta(hours=1)
    query = db.collection(rec.COLLECTION).where(filter=firestore.FieldFilter(rec.Field.UPDATED_AT, ">=", since))
    return [rec.Classification.from_firestore(s.to_dict()) for s in query.stream(timeout=QUERY_TIMEOUT)]


def check(env: Mapping[str, str], db: Any, storage: Any, thresholds: Thresholds, now: datetime | None = None) -> Health:
    from functions.review_desk import read_backlog
    from functions.sweep import last_run

    now = now or datetime.now(UTC)
    count, oldest = backlog(storage, env["INCOMING_BUCKET"], now)
    hour = last_hour_records(db, now)
    failed = sum(1 for record in hour if record.status == rec.FAILED)
    health = Health(current_version(storage, env["MODELS_BUCKET"]), count, oldest, last_run(db), len(hour), failed)
    health.attributes = coverage(hour)
    health.review = read_backlog(db, now, timeout=QUERY_TIMEOUT, days=7).to_dict()  # decisions of the last 7 days
    health.problems = assess(health, thresholds)
    return health


def render(health: Health) -> str:
    sweep = health.last_sweep
    sweep_text = "none"
    if sweep:
        counts = sweep.get("counts") or {}
        if sweep.get("dry_run"):  # nothing was moved: say so, and what it would have done
            status, done = (
                f"{sweep.get('status')}, dry run",
                f"would process {len(sweep.get('would_process') or [])}, moved nothing",
            )
        else:
            status, done = sweep.get("status"), f"processed {counts.get('processed', 0)}, failed {counts.get('failed', 0)}"
        sweep_text = f"{sweep.get('id')} ({status}, started {sweep.get('started_at')}, {done})"
        if previous := sweep.get("previous_run"):
            sweep_text += f"; the run before it, {previous.get('run_id')}, {previous.get('status')}"
    age = "-" if health.oldest_backlog_age_s is None else f"{health.oldest_backlog_age_s:.0f} s"
    lines = [
        f"status:        {'healthy' if health.healthy else 'UNHEALTHY'}",
        f"model:         {health.model_version or 'none'}",
        f"backlog:       {health.backlog} objects, oldest {age}",
        f"review:        {review_text(health.review)}",
        f"last sweep:    {sweep_text}",
        f"last hour:     {health.records_last_hour} records, {health.failed_last_hour} failed ({health.error_rate:.1%})",
        f"attributes:    {coverage_text(health.attributes)} (last hour)",
        *(f"problem:       {problem}" for problem in health.problems),
    ]
    return "\n".join(lines)


def review_text(review: Mapping[str, Any] | None) -> str:
    """One line: the review backlog and the model's accuracy on reviewed items."""
    if not review:
        return "-"
    bands = ", ".join(f"{band} {n}" for band, n in sorted(review["per_band"].items()))
    age = "-" if review["oldest_age_s"] is None else f"{review['oldest_age_s']:.0f} s"
    today = decided_on(review, rec.day_of(datetime.now(UTC)))
    accuracy = review["accuracy_on_reviewed"]
    right = "-" if accuracy is None else f"{accuracy:.1%} ({review['model_right']}/{review['reviewed']}; approved = right)"
    return f"{review['total']} waiting ({bands}), oldest {age}; {today} decided today; model right on reviewed: {right}"


def run(env: Mapping[str, str], thresholds: Thresholds, as_json: bool = False, out: TextIO | None = None) -> int:
    from fashionctl.results import firestore_client
    from fashionctl.sweep import storage_client

    health = check(env, firestore_client(env), storage_client(env), thresholds)
    text = json.dumps(health.to_dict(), default=str, sort_keys=True) if as_json else render(health)
    print(text, file=out or sys.stdout)
    return 0 if health.healthy else 1
