"""The review backlog's figures, pure logic over records (no clients): a
needs_review record's band and margin, and :func:`backlog_of` (count per
band, age of the oldest item, decisions per day, the model's accuracy on
reviewed items). Read by the review desk (functions/review_desk.py),
``predict``'s ``/stats``, ``fashionctl health`` and the operations report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import records as rec


@dataclass
class Backlog:
    """The review backlog: count per band, age of the oldest item (seconds),
    decisions per day (``{day: {decision: n}}``, every decision event by
    :func:`decision_events`, replaced ones included) and the model's accuracy on
    reviewed items (approved = right; relabeled and rejected = wrong)."""

    per_band: dict[str, int] = field(default_factory=dict)
    oldest_age_s: float | None = None
    reviewed_per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    reviewed: int = 0
    model_right: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.model_right / self.reviewed if self.reviewed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_band": dict(self.per_band),
            "total": sum(self.per_band.values()),
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "reviewed_per_day": {day: dict(c) for day, c in sorted(self.reviewed_per_day.items())},
            "reviewed": self.reviewed,
            "model_right": self.model_right,
            "accuracy_on_reviewed": None if self.accuracy is None else round(self.accuracy, 4),
            "accuracy_rule": "approved = the model was right; relabeled and rejected = wrong",
        }


def band_of(record: rec.Classification) -> str:
    """A needs_review record's band; records from before bands were recorded count as ``review``."""
    return record.band if record.band in (rec.BAND_CHECK, rec.BAND_REVIEW) else rec.BAND_REVIEW


def margin_of(record: rec.Classification) -> float:
    """top1 - top2 score (0..1) of the model's answer; the top-1 score when
    only one is recorded, 0 when none."""
    scores = [float(e.get("score") or 0.0) for e in record.top_k if isinstance(e, Mapping)]
    if not scores:
        return float(record.confidence or 0.0)
    return round(scores[0] - (scores[1] if len(scores) > 1 else 0.0), 6)


def decision_events(review: Mapping[str, Any]) -> list[tuple[str, str]]:
    """THE rule for "decided on a day" (docs/review.md, "Decisions per day"):
    every decision a person made counts once, on the UTC day (``YYYY-MM-DD``)
    of its ``reviewed_at``: the record's current decision and each one it
    replaced (``review.previous``). So an item approved and later relabeled
    the same day counts 2 that day (1 approved, 1 relabeled), as the
    decision counters of ``/stats`` count them. A decision without a time
    counts on day ``unknown``. Returns ``[(day, decision), ...]``."""
    entries = [*(e for e in review.get(rec.REVIEW_PREVIOUS) or () if isinstance(e, Mapping)), review]
    events = []
    for entry in entries:
        at = entry.get(rec.REVIEW_AT)
        events.append((rec.day_of(at) if isinstance(at, datetime) else "unknown", str(entry.get(rec.REVIEW_DECISION))))
    return events


def decided_on(backlog: Mapping[str, Any], day: str) -> int:
    """Decisions made on ``day`` (``YYYY-MM-DD``, UTC) by the rule of
    :func:`decision_events`, from a :meth:`Backlog.to_dict` (its
    ``reviewed_per_day``). Used by ``fashionctl health`` and the review
    queue's ``progress.done_today``."""
    return sum((backlog.get("reviewed_per_day") or {}).get(day, {}).values())


def backlog_of(records: Iterable[rec.Classification], now: datetime) -> Backlog:
    """The :class:`Backlog` of ``records`` (any statuses; only needs_review
    and reviewed ones count)."""
    result = Backlog()
    oldest: datetime | None = None
    for record in records:
        if record.status == rec.NEEDS_REVIEW:
            band = band_of(record)
            result.per_band[band] = result.per_band.get(band, 0) + 1
            if record.created_at and (oldest is None or record.created_at < oldest):
                oldest = record.created_at
        elif record.status == rec.REVIEWED and record.review:
            for day, decision in decision_events(record.review):
                counts = result.reviewed_per_day.setdefault(day, {})
                counts[decision] = counts.get(decision, 0) + 1
            result.reviewed += 1
            result.model_right += record.review.get(rec.REVIEW_DECISION) == rec.APPROVED
    for band in (rec.BAND_CHECK, rec.BAND_REVIEW):
        result.per_band.setdefault(band, 0)
    result.oldest_age_s = (now - oldest).total_seconds() if oldest else None
    return result
