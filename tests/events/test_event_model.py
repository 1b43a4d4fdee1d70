"""The completion event and the outbox as pure logic: what the event holds,
that its id is stable, that it validates against the published JSON Schema,
and that the BigQuery table's schema is the one derived from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from functions.event_outbox import EventOutbox
from scripts import bigquery_schema
from shared import outbox as box
from shared import records as rec
from shared import result_events as events
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / events.SCHEMA_FILE).read_text())
NOW = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
SETTINGS = Settings(project="demo-x", incoming_bucket="in", processed_bucket="out", models_bucket="m", events_topic="ev")


def validate(event: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(event)


def stored(status: str = rec.CLASSIFIED, **extra: object) -> dict:
    """A finished record as Firestore returns it (datetimes, maps, lists)."""
    ref = rec.ObjectRef("in", "shoes/a b.jpg", 1764400000123456, 5120, "image/jpeg")
    record = rec.Classification(
        source=ref,
        status=status,
        step=rec.DONE,
        label=None if status == rec.REJECTED else "Heels",
        confidence=None if status == rec.REJECTED else 0.93,
        top_k=[] if status == rec.REJECTED else rec.top_k_entries([("Heels", 0.93), ("Tops", 0.05)]),
        model_version="20261129-144125",
        destination=rec.Destination("out", "heels/a b.jpg"),
        error=rec.error_info("not_an_image", "no image") if status == rec.REJECTED else None,
        timings_ms={"download": 3.1, "classify": 2.0, "copy": 4.0, "delete": 1.0, "total": 12.5},
        trigger="event",
        attempts=2,
        event_ids=["e1"],
        created_at=NOW - timedelta(seconds=2),
        updated_at=NOW,
        finished_at=NOW,
        sku="SKU-1",
    )
    return record.to_firestore() | extra


@pytest.mark.parametrize("status", sorted(events.EVENT_STATUSES))
def test_a_finished_record_gives_a_schema_valid_event_with_its_contract_fields(status: str) -> None:
    record = stored(status)
    event = events.build(record, "rid1", project="demo-x")
    validate(event)
    assert event["type"] == events.FINISHED_TYPE and event["specversion"] == "1.0" and event["subject"] == "rid1"
    assert event["time"] == "2026-11-29T12:00:00.123456Z" and event["recordversion"] == 1
    data = event["data"]
    assert data["id"] == "rid1" and data["status"] == status
    assert set(data) == events.data_keys()  # the contract fields (and final_attributes), nothing internal
    assert not set(data) & rec.INTERNAL_FIELDS and rec.Field.OUTBOX not in data
    assert data["source"]["generation"] == "1764400000123456"  # a decimal string, as stored
    assert data["created_at"] == "2026-11-29T11:59:58.123456Z"


def test_the_id_is_stable_and_differs_per_record_type_and_version() -> None:
    first = events.build(stored(), "rid1", project="demo-x")
    again = events.build(stored(updated_at=NOW + timedelta(hours=1)), "rid1", project="other")
    assert first["id"] == again["id"] == events.event_id("rid1", events.FINISHED_TYPE, 1)
    ids = {
        events.event_id("rid1", events.FINISHED_TYPE, 1),
        events.event_id("rid2", events.FINISHED_TYPE, 1),
        events.event_id("rid1", events.DECIDED_TYPE, 2),
        events.event_id("rid1", events.DECIDED_TYPE, 3),
    }
    assert len(ids) == 4


def test_a_decision_event_has_its_own_type_and_version() -> None:
    record = stored(updated_at=NOW + timedelta(minutes=5))
    assert events.decision_version(record) == 2
    event = events.build(record, "rid1", project="demo-x", event_type=events.DECIDED_TYPE, version=2)
    validate(event)
    assert event["type"] == events.DECIDED_TYPE and event["recordversion"] == 2
    assert event["id"] == events.event_id("rid1", events.DECIDED_TYPE, 2)
    with pytest.raises(ValueError):
        events.build(record, "rid1", project="demo-x", event_type="fashion.other.v1", version=1)


def test_attributes_name_status_category_and_sku_for_filters() -> None:
    event = events.build(stored(), "rid1", project="demo-x")
    assert events.attributes(event) == {"type": events.FINISHED_TYPE, "status": "classified", "category": "Heels", "sku": "SKU-1"}
    rejected = events.build(stored(rec.REJECTED, sku=None), "rid2", project="demo-x")
    assert events.attributes(rejected) == {"type": events.FINISHED_TYPE, "status": "rejected"}  # no null attribute
    long_sku = events.build(stored(sku="é" * 2000), "rid3", project="demo-x")
    assert len(events.attributes(long_sku)["sku"].encode()) <= events.ATTRIBUTE_LIMIT


def test_skipped_and_empty_records_publish_nothing() -> None:
    outbox = EventOutbox(SETTINGS, db=None, publisher=object())  # type: ignore[arg-type]
    for status in (rec.SKIPPED, rec.EMPTY):
        assert not events.wants_event(status)
        assert outbox.stage_finished(stored(status), "rid", NOW) == {}
    assert outbox.stage_finished(stored(), "rid", NOW)[rec.Field.OUTBOX]["state"] == box.PENDING


def test_events_off_stage_nothing_and_say_so_once(caplog: pytest.LogCaptureFixture) -> None:
    off = EventOutbox.from_settings(Settings(project="p", incoming_bucket="i", processed_bucket="o", models_bucket="m"), None)
    with caplog.at_level("INFO"):
        assert off.stage_finished(stored(), "rid", NOW) == {}
        assert off.stage_decided(stored(), "rid", NOW) == {}
        assert off.deliver("rid") == 0
    assert [r.message for r in caplog.records].count("completion events are off: no EVENTS_TOPIC configured") == 1


def test_the_outbox_stages_once_and_marks_sent() -> None:
    first = events.build(stored(), "rid1", project="demo-x")
    second = events.build(stored(), "rid1", project="demo-x", event_type=events.DECIDED_TYPE, version=2)
    outbox = box.staged(None, first, NOW)
    assert box.staged(outbox, first, NOW + timedelta(seconds=9)) == outbox  # staging again: no change
    outbox = box.staged(outbox, second, NOW + timedelta(seconds=1))
    assert [e["id"] for e in box.pending(outbox)] == [first["id"], second["id"]]
    assert box.pending_since(outbox) == NOW and outbox["state"] == box.PENDING
    outbox = box.marked_sent(outbox, [first["id"]], NOW)
    assert [e["id"] for e in box.pending(outbox)] == [second["id"]] and box.pending_since(outbox) == NOW + timedelta(seconds=1)
    outbox = box.marked_sent(outbox, [second["id"]], NOW)
    assert box.pending(outbox) == [] and outbox["state"] == box.SENT and box.pending_since(outbox) is None
    assert box.event_states(outbox) == {first["id"]: box.SENT, second["id"]: box.SENT}
    assert all(entry["event"] is None for entry in outbox["events"].values())  # the bodies are dropped once sent


def test_the_schema_describes_exactly_what_an_event_carries() -> None:
    data = SCHEMA["properties"]["data"]["properties"]
    # band and review: the contract's fields of this round, added to the record by the thresholds and review-desk work
    assert set(data) == events.data_keys() | {"band", "review"}
    assert SCHEMA["properties"]["type"]["enum"] == list(events.TYPES)
    assert set(SCHEMA["properties"]["data"]["properties"]["status"]["enum"]) >= events.EVENT_STATUSES
    with pytest.raises(jsonschema.ValidationError):
        validate(events.build(stored(), "rid1", project="demo-x") | {"id": "not-hex"})


def test_the_bigquery_table_schema_is_derived_from_the_event_schema() -> None:
    derived = bigquery_schema.table_schema(SCHEMA)
    committed = json.loads(bigquery_schema.TABLE_SCHEMA.read_text())
    assert committed == derived, "run python -m scripts.bigquery_schema"
    assert bigquery_schema.main(["--check"]) == 0
    columns = {c["name"]: c for c in derived}
    assert list(columns)[: len(SCHEMA["properties"])] == list(SCHEMA["properties"])
    assert {"subscription_name", "message_id", "publish_time", "attributes"} <= set(columns)  # write_metadata
    top_k = next(f for f in columns["data"]["fields"] if f["name"] == "top_k")
    assert top_k["mode"] == "REPEATED" and [f["name"] for f in top_k["fields"]] == ["label", "score"]
    with pytest.raises(bigquery_schema.SchemaError):
        bigquery_schema.column("free", {"type": "object"})


ATTRS = {
    "gender": {"value": "Women", "confidence": 0.91, "threshold": 0.6, "best": "Women"},
    "colour": {"value": None, "confidence": 0.41, "threshold": 0.55, "best": "black"},
}


def test_attributes_and_their_corrections_travel_in_the_events_and_validate() -> None:
    finished = events.build(stored(attributes=ATTRS), "rid1", project="demo-x")
    validate(finished)
    assert finished["data"]["attributes"] == ATTRS
    assert finished["data"]["final_attributes"] == {"gender": "Women", "colour": None}
    review = {
        "decision": "approved",
        "final_label": "Heels",
        "reason": None,
        "reviewed_by": "ann",
        "reviewed_at": NOW,
        "attributes": {"colour": "blue", "gender": None},
        "previous": [],
    }
    decided = events.build(
        stored(rec.REVIEWED, attributes=ATTRS, review=review), "rid1", project="demo-x", event_type=events.DECIDED_TYPE, version=2
    )
    validate(decided)
    assert decided["data"]["review"]["attributes"] == {"colour": "blue", "gender": None}
    assert decided["data"]["final_attributes"] == {"gender": None, "colour": "blue"}
    assert decided["data"]["attributes"] == ATTRS  # the model's answer is kept
    # a category-only record: attributes null (v1 consumers see only an extra optional key)
    plain = events.build({k: v for k, v in stored().items() if k != rec.Field.ATTRIBUTES}, "rid2", project="demo-x")
    validate(plain)
    assert plain["data"]["attributes"] is None and plain["data"]["final_attributes"] == {}
    with pytest.raises(jsonschema.ValidationError):  # an attribute's value is a string or null
        validate(finished | {"data": finished["data"] | {"final_attributes": {"colour": 3}}})


def test_the_schema_names_every_attribute_of_shared_attributes() -> None:
    from shared.attributes import ATTRIBUTES

    data = SCHEMA["properties"]["data"]["properties"]
    review = data["review"]["properties"]
    for node in (
        data["attributes"],
        data["final_attributes"],
        review["attributes"],
        review["previous"]["items"]["properties"]["attributes"],
    ):
        assert list(node["properties"]) == list(ATTRIBUTES)
    columns = {c["name"]: c for c in bigquery_schema.table_schema(SCHEMA)}
    attrs = next(f for f in columns["data"]["fields"] if f["name"] == "attributes")
    colour = next(f for f in attrs["fields"] if f["name"] == "colour")
    assert [f["name"] for f in colour["fields"]] == ["value", "confidence", "threshold", "best"]
