"""Completion events on the real emulators (fake-gcs-server, Firestore,
Pub/Sub; the classify function over HTTP): duplicated deliveries and a crash
after each step still give, per finished record, events whose ids are exactly
the finished records' (each at least once, one stable id), every event valid
against the published schema; a crash between the commit and the publish is
repaired by the sweep."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from functions.event_outbox import EventOutbox
from shared import outbox as box
from shared import records as rec
from shared import result_events as events
from shared.settings import Settings
from tests.events.conftest import EventsLab
from tests.images import make_photo_like
from tests.reliability.faults import check_invariants, new_event_id, post_event
from tests.reliability.test_faults import crash_delivery

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / events.SCHEMA_FILE).read_text())
#: every step a delivery can die after (functions/failpoints.py)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CRASH_STEPS = ("after_download", "after_decision", "after_copy", "before_delete", "after_delete", "before_publish")


def validate(event: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(event)


def records(lab: EventsLab) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in lab.lab.firestore().collection(rec.COLLECTION).stream()}


def test_crashes_and_duplicates_give_exactly_one_event_id_per_finished_record(events_lab: EventsLab) -> None:
    lab = events_lab.lab
    assert lab.healthy is not None and lab.healthy.url
    events_lab.drain(quiet=1.0)
    uploads = []
    for i, step in enumerate(CRASH_STEPS):  # a crash after each step, then the redelivered event, twice
        upload = lab.upload(f"events/crash-{step}.jpg", make_photo_like((48, 40), seed=500 + i))
        event_id = new_event_id()
        crash_delivery(lab, step, upload, event_id)
        lab.redeliver(upload, event_id)
        lab.redeliver(upload, event_id)
        uploads.append(upload)
    # simultaneous duplicated deliveries of one event
    duplicated = lab.upload("events/duplicated.jpg", make_photo_like((48, 40), seed=600))
    event_id = new_event_id()
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(post_event(lab.healthy.url, duplicated, event_id).status_code))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    lab.redeliver(duplicated, event_id)  # whichever were told "busy" are retried, as Eventarc does
    uploads.append(duplicated)
    # a file that is not an image: rejected, with its event
    rejected = lab.upload("events/not-an-image.jpg", b"plain text, not a photo" * 20)
    lab.redeliver(rejected, new_event_id())
    uploads.append(rejected)

    finished = check_invariants(lab, uploads)  # the pipeline's own guarantees still hold
    got = events_lab.drain()
    stored = records(events_lab)
    expected = {
        events.event_id(upload.doc_id, events.FINISHED_TYPE, 1): upload.doc_id
        for upload in uploads
        if events.wants_event(stored[upload.doc_id]["status"])
    }
    assert len(expected) == len(uploads) == len(finished)
    received_ids = [event["id"] for event, _ in got]
    assert set(received_ids) == set(expected), "the event ids are exactly the finished records"
    for event, attributes in got:
        validate(event)
        record_id = expected[event["id"]]
        record = stored[record_id]
        assert event["subject"] == event["data"]["id"] == record_id
        assert event["data"]["status"] == record["status"] and event["data"]["label"] == record["label"]
        assert attributes["status"] == record["status"] and attributes["type"] == events.FINISHED_TYPE
        assert attributes.get("category") == record["label"]
        assert box.event_states(record[rec.Field.OUTBOX]) == {event["id"]: box.SENT}
    statuses = {stored[u.doc_id]["status"] for u in uploads}
    assert rec.REJECTED in statuses and statuses & {rec.CLASSIFIED, rec.NEEDS_REVIEW}
    # at least once, with one id: a duplicate may only repeat an id already seen
    assert len(received_ids) >= len(expected)


def test_the_sweep_publishes_what_a_crash_between_commit_and_publish_left(events_lab: EventsLab) -> None:
    lab = events_lab.lab
    events_lab.drain(quiet=1.0)
    upload = lab.upload("events/crash-before-publish.jpg", make_photo_like((48, 40), seed=700))
    crash_delivery(lab, "before_publish", upload, new_event_id())  # never redelivered: the event was lost
    record = records(events_lab)[upload.doc_id]
    assert record["status"] in events.EVENT_STATUSES, "the record was committed before the crash"
    expected = events.event_id(upload.doc_id, events.FINISHED_TYPE, 1)
    assert box.event_states(record[rec.Field.OUTBOX]) == {expected: box.PENDING}
    assert events_lab.drain(quiet=2.0) == [], "nothing was published before the sweep"

    counts = lab.sweep(min_age=0.0)
    assert counts["events_published"] == 1
    got = events_lab.drain()
    assert [event["id"] for event, _ in got] == [expected]
    validate(got[0][0])
    assert box.event_states(records(events_lab)[upload.doc_id][rec.Field.OUTBOX]) == {expected: box.SENT}
    assert lab.sweep(min_age=0.0)["events_published"] == 0  # nothing left pending
    assert events_lab.drain(quiet=1.0) == []


def test_the_sweep_leaves_events_younger_than_the_grace_period(events_lab: EventsLab) -> None:
    lab = events_lab.lab
    events_lab.drain(quiet=1.0)
    upload = lab.upload("events/young.jpg", make_photo_like((48, 40), seed=800))
    crash_delivery(lab, "before_publish", upload, new_event_id())
    outbox = EventOutbox.from_settings(Settings.from_env(lab.env), lab.firestore())
    assert outbox.republish(older_than=3600.0) == {"records": 0, "published": 0}
    assert outbox.republish(older_than=0.0) == {"records": 1, "published": 1}
    assert [event["id"] for event, _ in events_lab.drain()] == [events.event_id(upload.doc_id, events.FINISHED_TYPE, 1)]


def test_a_review_decision_publishes_its_own_event_with_one_call(events_lab: EventsLab, monkeypatch: Any) -> None:
    """The review desk's hook (``EventOutbox.on_decided``), on a record the
    classify function finished: each decision gets its own event (type
    ``fashion.review.v1.decided``, record version 2, 3, ...), calling the
    hook again publishes nothing new. ``Field.REVIEW`` is the review desk's
    field of this round's contract, defined here as the merged record will."""
    monkeypatch.setattr(rec.Field, "REVIEW", "review", raising=False)
    lab = events_lab.lab
    upload = lab.upload("events/to-review.jpg", make_photo_like((48, 40), seed=900))
    lab.redeliver(upload, new_event_id())
    events_lab.drain(quiet=1.0)
    outbox = EventOutbox.from_settings(Settings.from_env(lab.env), lab.firestore())
    doc = lab.firestore().collection(rec.COLLECTION).document(upload.doc_id)
    first = {"decision": "relabeled", "final_label": "Tops", "reason": None, "reviewed_by": "ana", "reviewed_at": NOW}
    doc.update({rec.Field.STATUS: "reviewed", "review": first | {"previous": []}})

    assert outbox.on_decided(upload.doc_id) == 1
    assert outbox.on_decided(upload.doc_id) == 0  # the same decision: nothing new
    second = first | {"decision": "approved", "final_label": "Heels", "reviewed_at": NOW + timedelta(minutes=1)}
    doc.update({"review": second | {"previous": [first]}})
    assert outbox.on_decided(upload.doc_id) == 1

    got = events_lab.drain()
    ids = [events.event_id(upload.doc_id, events.DECIDED_TYPE, version) for version in (2, 3)]
    assert [event["id"] for event, _ in got] == ids
    for (event, attributes), wanted in zip(got, (first, second), strict=True):
        validate(event)
        assert event["type"] == events.DECIDED_TYPE and event["data"]["status"] == "reviewed"
        assert event["data"]["review"]["final_label"] == wanted["final_label"] == attributes["category"]
        assert event["time"] == wanted["reviewed_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    states = box.event_states(doc.get().to_dict()[rec.Field.OUTBOX])
    assert states == {events.event_id(upload.doc_id, events.FINISHED_TYPE, 1): box.SENT} | dict.fromkeys(ids, box.SENT)
