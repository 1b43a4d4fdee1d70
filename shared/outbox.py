"""The record's outbox: which of its events are waiting to be published.

A record's ``outbox`` field (:attr:`shared.records.Field.OUTBOX`) is written
in the same write that finishes a record version (the classify path's final
transaction, a review decision), so that no result exists without its
event; the writer publishes after the commit and marks the event sent. What a
crash left pending, the sweep publishes. The map::

    {"state": "pending" | "sent",           # "pending" while any event waits
     "pending_since": <timestamp> | None,   # when the oldest waiting event was staged
     "events": {<event id>: {"type", "version", "state", "staged_at", "sent_at",
                             "event": <the CloudEvent while pending; None once sent>}}}

The whole map is written at once (computed from what was read), never with
dotted-path updates. Pure: no client, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.records import Field

PENDING, SENT = "pending", "sent"
_STATE, _SINCE, _EVENTS = "state", "pending_since", "events"
_TYPE, _VERSION, _STAGED, _SENT_AT, _EVENT = "type", "version", "staged_at", "sent_at", "event"
#: the field path a query filters on to find records with events waiting
STATE_PATH = f"{Field.OUTBOX}.{_STATE}"


def staged(outbox: Mapping[str, Any] | None, event: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``outbox`` with ``event`` (a CloudEvent dict from :mod:`shared.result_events`)
    waiting; an event id already there is kept as it is (staging again is a no-op)."""
    events = {key: dict(value) for key, value in _events(outbox).items()}
    if event["id"] not in events:
        events[event["id"]] = {
            _TYPE: event["type"],
            _VERSION: event.get("recordversion"),
            _STATE: PENDING,
            _STAGED: now,
            _SENT_AT: None,
            _EVENT: dict(event),
        }
    return _summarised(events)


def marked_sent(outbox: Mapping[str, Any] | None, ids: Iterable[str], now: datetime) -> dict[str, Any]:
    """``outbox`` with the events ``ids`` sent (their bodies dropped)."""
    events = {key: dict(value) for key, value in _events(outbox).items()}
    for key in ids:
        entry = events.get(key)
        if entry is not None and entry.get(_STATE) == PENDING:
            entry.update({_STATE: SENT, _SENT_AT: now, _EVENT: None})
    return _summarised(events)


def pending(outbox: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The waiting events (CloudEvent dicts), oldest record version first."""
    entries = [entry for entry in _events(outbox).values() if entry.get(_STATE) == PENDING and entry.get(_EVENT)]
    return [dict(entry[_EVENT]) for entry in sorted(entries, key=lambda entry: int(entry.get(_VERSION) or 0))]


def pending_since(outbox: Mapping[str, Any] | None) -> datetime | None:
    """When the oldest waiting event was staged; None when none waits."""
    since = (outbox or {}).get(_SINCE) if isinstance(outbox, Mapping) else None
    return since if isinstance(since, datetime) else None


def event_states(outbox: Mapping[str, Any] | None) -> dict[str, str]:
    """Event id -> ``pending`` or ``sent``."""
    return {key: str(entry.get(_STATE)) for key, entry in _events(outbox).items()}


def update(outbox: Mapping[str, Any]) -> dict[str, Any]:
    """The record update that writes ``outbox`` (merge by the top-level name)."""
    return {Field.OUTBOX: dict(outbox)}


def _events(outbox: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    events = outbox.get(_EVENTS) if isinstance(outbox, Mapping) else None
    return {str(k): v for k, v in events.items() if isinstance(v, Mapping)} if isinstance(events, Mapping) else {}


def _summarised(events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    waiting = [entry[_STAGED] for entry in events.values() if entry.get(_STATE) == PENDING]
    times = [moment for moment in waiting if isinstance(moment, datetime)]
    return {
        _STATE: PENDING if waiting else SENT,
        _SINCE: min(times) if times else None,
        _EVENTS: events,
    }
