"""The writers' partial updates of a classification record, each merged by
top-level field names (``merge=list(update)``): the lease taken, the
decision, the copy, the finished state, a transient failure. Field names come
from :class:`shared.records.Field`; the record itself: :mod:`shared.records`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.records import (
    CLAIMED,
    COPIED,
    DECIDED,
    DONE,
    FAILED,
    PROCESSING,
    TRANSIENT,
    Decision,
    Destination,
    Field,
    ObjectRef,
    error_info,
)


def claim_update(
    data: Mapping[str, Any], ref: ObjectRef, owner: str, lease_until: datetime, trigger: str, event_id: str | None, now: datetime
) -> dict[str, Any]:
    """The fields a delivery sets when it takes the lease, from what it read
    (``data``: the stored document, empty for the first claim). Computed from
    what was read, not with field transforms (Increment, ArrayUnion): the npm
    emulator fails on those."""
    update = {
        Field.SOURCE: ref.to_dict(),
        Field.STATUS: PROCESSING,
        Field.LEASE_OWNER: owner,
        Field.LEASE_UNTIL: lease_until,
        Field.ATTEMPTS: int(data.get(Field.ATTEMPTS) or 0) + 1,
        Field.TRIGGER: data.get(Field.TRIGGER, trigger),
        Field.UPDATED_AT: now,
    }
    if event_id:
        update[Field.EVENT_IDS] = _appended(data.get(Field.EVENT_IDS), event_id)
    if not data:  # the document's first write
        update.update({Field.CREATED_AT: now, Field.STEP: CLAIMED, Field.ERROR: None})
    return update


def decided_update(decision: Decision, now: datetime) -> dict[str, Any]:
    """The decision recorded (step ``decided``)."""
    return {Field.DECISION: decision.to_dict(), Field.STEP: DECIDED, Field.UPDATED_AT: now}


def copied_update(destination: Destination, now: datetime) -> dict[str, Any]:
    """The copy in the processed bucket recorded (step ``copied``)."""
    return {Field.DESTINATION: destination.to_dict(), Field.STEP: COPIED, Field.UPDATED_AT: now}


def final_update(decision: Decision, destination: Destination | None, timings_ms: Mapping[str, float], now: datetime) -> dict:
    """The finished state; the lease released."""
    return {
        Field.STATUS: decision.status,
        Field.LABEL: decision.label,
        Field.CONFIDENCE: decision.confidence,
        Field.TOP_K: list(decision.top_k),
        Field.MODEL_VERSION: decision.model_version,
        Field.DESTINATION: destination.to_dict() if destination else None,
        Field.ERROR: decision.error,
        Field.SKU: decision.sku,
        Field.BAND: decision.band,
        **({Field.CANDIDATE: dict(decision.candidate)} if decision.candidate is not None else {}),
        **({Field.ATTRIBUTES: {k: dict(v) for k, v in decision.attributes.items()}} if decision.attributes else {}),
        Field.TIMINGS_MS: dict(timings_ms),
        Field.STEP: DONE,
        Field.FINISHED_AT: now,
        Field.UPDATED_AT: now,
        Field.LEASE_UNTIL: None,
        Field.LEASE_OWNER: None,
    }


def failure_update(message: str, now: datetime) -> dict[str, Any]:
    """A transient failure recorded; the lease released (``message`` cut to 500 characters)."""
    return {
        Field.STATUS: FAILED,
        Field.ERROR: error_info(TRANSIENT, message[:500]),
        Field.LEASE_UNTIL: None,
        Field.UPDATED_AT: now,
    }


def log_fields(status: str | None, label: str | None, confidence: float | None, timings_ms: Mapping[str, float]) -> dict:
    """What a log line of a finished object carries (``bench/pipeline.py`` reads ``timings_ms``)."""
    return {Field.STATUS: status, Field.LABEL: label, Field.CONFIDENCE: confidence, Field.TIMINGS_MS: dict(timings_ms)}


def _appended(items: list | None, item: str) -> list:
    """``items`` with ``item`` at the end, once."""
    items = list(items or [])
    return items if item in items else [*items, item]
