"""The completion event: one CloudEvent per finished record version.

The one definition of what downstream systems hear (``docs/events.md``; its
JSON Schema: ``schemas/classification-event.v1.json``):

- a record's classify path finishing it as ``classified``, ``needs_review``
  or ``rejected`` -> type :data:`FINISHED_TYPE`, record version 1;
- each human decision on it (the review desk; status ``reviewed``) ->
  type :data:`DECIDED_TYPE`, record version 2, 3, ...

``skipped`` and ``empty`` records get no event: neither is a result (the
version was gone or superseded, or holds no bytes yet and stays in incoming;
its content, when it comes, is a new object version with its own record and
event).

The event is a CloudEvent 1.0 in structured JSON mode (the Pub/Sub message
body is the whole event); its ``id`` is derived from the record id, the type
and the record version (:func:`event_id`), so every retry and every
re-publication after a crash carries the same id and consumers de-duplicate
on it. ``data`` holds the record's contract fields (``Classification``:
:data:`shared.records.CONTRACT_FIELDS`, plus ``band``, ``review`` and
``attributes`` once the record defines them, and ``final_attributes``: the
attributes after the reviewer's corrections) as JSON: timestamps as RFC 3339 strings (UTC), the
source generation as a decimal string. Pub/Sub message attributes
(:func:`attributes`) let subscriptions filter without reading the body.

Pure: no client, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared import records as rec

SPECVERSION = "1.0"
#: a record finished by the classify path (classified, needs_review, rejected)
FINISHED_TYPE = "fashion.classification.v1.finished"
#: a human decision on a record (review desk)
DECIDED_TYPE = "fashion.review.v1.decided"
TYPES = (FINISHED_TYPE, DECIDED_TYPE)
#: record statuses whose finishing publishes a FINISHED_TYPE event
EVENT_STATUSES = frozenset({rec.CLASSIFIED, rec.NEEDS_REVIEW, rec.REJECTED})
#: the JSON Schema of the event, relative to the repository root
SCHEMA_FILE = "schemas/classification-event.v1.json"
CONTENT_TYPE = "application/json"
#: Pub/Sub's limit on an attribute value, in bytes of UTF-8
ATTRIBUTE_LIMIT = 1024
#: the Pub/Sub message attribute names (values: strings; an absent value: no attribute)
ATTR_TYPE, ATTR_STATUS, ATTR_BAND, ATTR_CATEGORY, ATTR_SKU = "type", "status", "band", "category", "sku"
#: ``Field`` attribute names of record fields an event carries besides the
#: contract fields once the record defines them: the confidence band
#: (thresholds work) and the human decision (review desk), shared/records.py
OPTIONAL_FIELD_NAMES = ("BAND", "REVIEW", "ATTRIBUTES")
#: the key of ``data`` holding the effective attributes (not a record field:
#: :func:`shared.records.effective_attributes` of the record's ``attributes``
#: and ``review``; ``{}`` for a model without attribute heads)
FINAL_ATTRIBUTES = "final_attributes"


def data_fields() -> frozenset[str]:
    """The record fields an event's ``data`` holds (besides ``id``)."""
    extra = {getattr(rec.Field, name) for name in OPTIONAL_FIELD_NAMES if hasattr(rec.Field, name)}
    return rec.CONTRACT_FIELDS | extra


def data_keys() -> frozenset[str]:
    """Every key of an event's ``data``: ``id``, :func:`data_fields` and :data:`FINAL_ATTRIBUTES`."""
    return frozenset({rec.DOC_ID, FINAL_ATTRIBUTES}) | data_fields()


def wants_event(status: str | None) -> bool:
    """Whether the classify path finishing a record with ``status`` publishes an event."""
    return status in EVENT_STATUSES


def event_id(record_id: str, event_type: str, version: int) -> str:
    """The event id: 32 hex digits of SHA-256 over record id, type and record
    version. Stable: the same finished version always gets the same id."""
    return hashlib.sha256(f"{record_id}/{event_type}/{version}".encode()).hexdigest()[:32]


def decision_version(record: Mapping[str, Any]) -> int:
    """The record version a human decision makes: 2 for the first decision,
    one more for each earlier one (``review.previous``)."""
    review = _optional(record, "REVIEW") or {}
    previous = review.get("previous") if isinstance(review, Mapping) else None
    return 2 + (len(previous) if isinstance(previous, list) else 0)


def build(
    record: Mapping[str, Any],
    record_id: str,
    *,
    project: str,
    database: str = "(default)",
    event_type: str = FINISHED_TYPE,
    version: int = 1,
) -> dict[str, Any]:
    """The CloudEvent (a JSON-ready dict) for one version of a stored record.

    ``record``: the document's fields as stored (Firestore values: datetimes,
    maps, lists); ``record_id``: its ``classifications`` document id;
    ``project`` and ``database``: where the record lives (in ``source``). ``time`` is the
    record's ``finished_at`` for a finished event, the decision's time for a
    decision (else ``updated_at``). Raises ValueError for an unknown type or
    a version below 1."""
    if event_type not in TYPES or version < 1:
        raise ValueError(f"event type {event_type!r} / version {version}: expected one of {TYPES} and version >= 1")
    data = {rec.DOC_ID: record_id} | {name: _json(record.get(name)) for name in sorted(data_fields())}
    if not isinstance(data.get(rec.Field.TOP_K), list):
        data[rec.Field.TOP_K] = []
    stored = rec.Classification.from_firestore(record)
    data[FINAL_ATTRIBUTES] = rec.effective_attributes(stored.attributes, stored.review)
    moment = record.get(rec.Field.FINISHED_AT) if event_type == FINISHED_TYPE else _decided_at(record)
    return {
        "specversion": SPECVERSION,
        "type": event_type,
        "source": f"//firestore.googleapis.com/projects/{project}/databases/{database}/documents/{rec.COLLECTION}",
        "subject": record_id,
        "id": event_id(record_id, event_type, version),
        "time": _timestamp(moment or record.get(rec.Field.UPDATED_AT)) or _timestamp(rec.utcnow()),
        "datacontenttype": CONTENT_TYPE,
        "recordversion": version,
        "data": data,
    }


def attributes(event: Mapping[str, Any]) -> dict[str, str]:
    """The Pub/Sub message attributes of an event: ``type``, ``status``,
    ``band``, ``category`` (the final label when decided, else the model's
    label) and ``sku``; an absent value is no attribute (Pub/Sub attribute
    values are strings), a long one is cut to :data:`ATTRIBUTE_LIMIT` bytes."""
    data = event.get("data") or {}
    review = _optional(data, "REVIEW")
    category = data.get(rec.Field.LABEL)
    if isinstance(review, Mapping) and "final_label" in review:
        category = review.get("final_label")
    values = {
        ATTR_TYPE: event.get("type"),
        ATTR_STATUS: data.get(rec.Field.STATUS),
        ATTR_BAND: _optional(data, "BAND"),
        ATTR_CATEGORY: category,
        ATTR_SKU: data.get(rec.Field.SKU),
    }
    return {key: _cut(str(value)) for key, value in values.items() if value not in (None, "")}


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as the Pub/Sub message body (compact UTF-8 JSON)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def decode(body: bytes | str) -> dict[str, Any]:
    """A message body back to the event. Raises ValueError when it is not a JSON object."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    return event


def _optional(record: Mapping[str, Any], name: str) -> Any:
    """``record``'s value of the field ``Field.<name>``; None while the record does not define that field."""
    field = getattr(rec.Field, name, None)
    return record.get(field) if field else None


def _decided_at(record: Mapping[str, Any]) -> Any:
    review = _optional(record, "REVIEW")
    return review.get("reviewed_at") if isinstance(review, Mapping) else None


def _timestamp(value: Any) -> str | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value if isinstance(value, str) else None


def _json(value: Any) -> Any:
    """A stored Firestore value as JSON: datetimes as RFC 3339 UTC strings, maps and lists recursively."""
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def _cut(text: str) -> str:
    encoded = text.encode()
    return text if len(encoded) <= ATTRIBUTE_LIMIT else encoded[:ATTRIBUTE_LIMIT].decode(errors="ignore")
