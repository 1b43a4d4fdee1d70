"""The one rule for "decided on a day" (shared/review_backlog.py,
docs/review.md "Decisions per day"): each decision event counts once on the
day of its ``reviewed_at``, replaced ones (``review.previous``) included;
accuracy judges each item once, by its current decision. Pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import records as rec
from shared.review_backlog import backlog_of, decided_on, decision_events

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
YESTERDAY = NOW - timedelta(days=1)


def entry(decision: str, at: datetime, label: str | None = "Shirts") -> dict:
    return {rec.REVIEW_DECISION: decision, rec.REVIEW_FINAL_LABEL: label, rec.REVIEW_AT: at, rec.REVIEW_BY: "a"}


def reviewed(review: dict) -> rec.Classification:
    return rec.Classification(status=rec.REVIEWED, label="Shirts", review=review)


def test_a_replaced_decision_counts_once_on_its_own_day():
    changed_today = entry(rec.RELABELED, NOW, "Tops") | {rec.REVIEW_PREVIOUS: [entry(rec.APPROVED, NOW - timedelta(hours=1))]}
    changed_later = entry(rec.APPROVED, NOW) | {rec.REVIEW_PREVIOUS: [entry(rec.REVIEW_REJECTED, YESTERDAY, None)]}
    assert decision_events(changed_today) == [("2026-11-29", rec.APPROVED), ("2026-11-29", rec.RELABELED)]
    records = [reviewed(changed_today), reviewed(changed_later), reviewed(entry(rec.APPROVED, NOW))]
    backlog = backlog_of(records, NOW).to_dict()
    assert backlog["reviewed_per_day"] == {
        "2026-11-28": {rec.REVIEW_REJECTED: 1},
        "2026-11-29": {rec.APPROVED: 3, rec.RELABELED: 1},
    }
    assert decided_on(backlog, "2026-11-29") == 4 and decided_on(backlog, "2026-11-28") == 1
    assert decided_on(backlog, "2026-11-27") == 0
    # accuracy: three items, judged by their current decisions (approved, approved; relabeled = wrong)
    assert backlog["reviewed"] == 3 and backlog["model_right"] == 2


def test_a_decision_without_a_time_counts_on_day_unknown():
    assert decision_events(entry(rec.APPROVED, None)) == [("unknown", rec.APPROVED)]  # type: ignore[arg-type]
