"""The bridge's pure parts: notification -> CloudEvent mapping, the retry
policy, and the deliver/ack/dead-letter logic with a fake message and sender."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from localcloud.bridge import (
    Bridge,
    BridgeConfig,
    CloudEventRequest,
    NotificationError,
    Outcome,
    RetryPolicy,
    header_safe,
    rfc3339,
    to_cloudevent,
)

# What fake-gcs-server 1.x publishes for an upload (captured from the binary).
FAKE_GCS_PAYLOAD = {
    "kind": "storage#object",
    "id": "demo-fashion-incoming/dir/a b.jpg#1795618724715950",
    "name": "dir/a b.jpg",
    "bucket": "demo-fashion-incoming",
    "generation": "1795618724715950",
    "contentType": "image/jpeg",
    "timeCreated": "2026-11-25T14:58:44.71588Z",
    "updated": "2026-11-25T14:58:44.715888Z",
    "storageClass": "STANDARD",
    "size": "5",
    "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==",
    "crc32c": "mnG7TA==",
}
FAKE_GCS_ATTRIBUTES = {
    "bucketId": "demo-fashion-incoming",
    "eventTime": "2026-11-25T14:58:44Z",
    "eventType": "OBJECT_FINALIZE",
    "objectGeneration": "1795618724715950",
    "objectId": "dir/a b.jpg",
    "payloadFormat": "JSON_API_V1",
}


def test_a_finalize_notification_becomes_a_binary_mode_cloudevent():
    event = to_cloudevent(json.dumps(FAKE_GCS_PAYLOAD).encode(), FAKE_GCS_ATTRIBUTES, "17", "2026-11-25T14:58:45Z")
    assert event.headers == {
        "ce-id": "17",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/demo-fashion-incoming",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-subject": "objects/dir/a b.jpg",
        "ce-time": "2026-11-25T14:58:44.715888Z",
        "content-type": "application/json; charset=utf-8",
    }
    assert event.data == {
        **FAKE_GCS_PAYLOAD,
        "id": "demo-fashion-incoming/dir/a b.jpg/1795618724715950",
        "metageneration": "1",
    }
    assert json.loads(event.body) == event.data


def test_numbers_become_strings_as_in_the_json_api():
    payload = {**FAKE_GCS_PAYLOAD, "generation": 12, "size": 5, "metageneration": 3}
    data = to_cloudevent(json.dumps(payload).encode(), FAKE_GCS_ATTRIBUTES, "1").data
    assert (data["generation"], data["size"], data["metageneration"], data["id"]) == (
        "12",
        "5",
        "3",
        "demo-fashion-incoming/dir/a b.jpg/12",
    )


def test_payload_format_none_is_built_from_the_attributes():
    event = to_cloudevent(b"", {**FAKE_GCS_ATTRIBUTES, "payloadFormat": "NONE"}, "2", None)
    assert event.data["bucket"] == "demo-fashion-incoming"
    assert event.data["name"] == "dir/a b.jpg"
    assert event.data["generation"] == "1795618724715950"
    assert event.headers["ce-time"] == "2026-11-25T14:58:44.000000Z"  # eventTime: no `updated` in the body


@pytest.mark.parametrize(
    ("kind", "ce_type"),
    [
        ("OBJECT_DELETE", "google.cloud.storage.object.v1.deleted"),
        ("OBJECT_ARCHIVE", "google.cloud.storage.object.v1.archived"),
        ("OBJECT_METADATA_UPDATE", "google.cloud.storage.object.v1.metadataUpdated"),
    ],
)
def test_other_storage_events_map_to_their_types(kind, ce_type):
    event = to_cloudevent(json.dumps(FAKE_GCS_PAYLOAD).encode(), {**FAKE_GCS_ATTRIBUTES, "eventType": kind}, "3")
    assert event.headers["ce-type"] == ce_type
    if kind == "OBJECT_DELETE":
        assert event.headers["ce-time"] == "2026-11-25T14:58:44.000000Z"


def test_time_falls_back_to_the_publish_time():
    attributes = {k: v for k, v in FAKE_GCS_ATTRIBUTES.items() if k != "eventTime"}
    published = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    event = to_cloudevent(b"", attributes, "4", published)
    assert event.headers["ce-time"] == "2026-01-02T03:04:05.600000Z"


@pytest.mark.parametrize(
    ("data", "attributes", "message"),
    [
        (b"not json", FAKE_GCS_ATTRIBUTES, "not JSON"),
        (b"[1, 2]", FAKE_GCS_ATTRIBUTES, "not a JSON object"),
        (b"{}", {"eventType": "OBJECT_FINALIZE"}, "no bucket"),
        (b"{}", {**FAKE_GCS_ATTRIBUTES, "eventType": "SOMETHING"}, "unsupported"),
        (b"{}", {}, "unsupported"),
    ],
)
def test_unusable_notifications_are_rejected(data, attributes, message):
    with pytest.raises(NotificationError, match=message):
        to_cloudevent(data, attributes, "5")


def test_subject_is_sent_raw_when_printable_ascii_else_percent_encoded():
    assert header_safe("a b/c%d.jpg") == "a b/c%d.jpg"
    assert header_safe("Küche 100%.jpg") == "K%C3%BCche 100%25.jpg"
    assert header_safe("tab\there") == "tab%09here"
    event = to_cloudevent(json.dumps({**FAKE_GCS_PAYLOAD, "name": "Küche.jpg"}).encode(), FAKE_GCS_ATTRIBUTES, "6")
    assert event.headers["ce-subject"] == "objects/K%C3%BCche.jpg"
    assert event.data["name"] == "Küche.jpg"
    event.headers["ce-subject"].encode("latin-1")  # every header value is sendable


def test_rfc3339_normalises_to_utc_microseconds():
    assert rfc3339("2026-11-25T14:58:44.71588Z") == "2026-11-25T14:58:44.715880Z"
    assert rfc3339("2026-11-25T15:58:44+01:00") == "2026-11-25T14:58:44.000000Z"
    assert rfc3339(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000Z"
    assert rfc3339("garbage") == "garbage"


def test_backoff_doubles_from_the_initial_delay_up_to_the_maximum():
    policy = RetryPolicy(initial=1, maximum=60)
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_the_policy_gives_up_by_attempts_or_by_age_and_zero_means_no_limit():
    policy = RetryPolicy(max_attempts=3, max_age=100)
    assert not policy.gives_up(2, 99)
    assert policy.gives_up(3, 0)
    assert policy.gives_up(1, 100)
    unlimited = RetryPolicy(max_attempts=0, max_age=0)
    assert not unlimited.gives_up(10_000, 10**9)


class FakeMessage:
    def __init__(self, data: bytes = b"", attributes: dict | None = None, published: datetime | None = None) -> None:
        self.data = data or json.dumps(FAKE_GCS_PAYLOAD).encode()
        self.attributes = attributes or FAKE_GCS_ATTRIBUTES
        self.message_id = "42"
        self.publish_time = published or datetime.now(UTC)
        self.acks = 0
        self.nacks = 0

    def ack(self) -> None:
        self.acks += 1

    def nack(self) -> None:
        self.nacks += 1


class ScriptedSender:
    def __init__(self, results: list[bool]) -> None:
        self.results = results
        self.calls: list[CloudEventRequest] = []

    def __call__(self, request: CloudEventRequest, url: str, timeout: float) -> Outcome:
        self.calls.append(request)
        ok = self.results[min(len(self.calls), len(self.results)) - 1]
        return Outcome(ok, "HTTP 200" if ok else "HTTP 500: boom")


def _bridge(sender: ScriptedSender, tmp_path, **retry) -> Bridge:
    policy = RetryPolicy(initial=0.001, maximum=0.004, **retry)
    config = BridgeConfig("127.0.0.1:1", "demo-fashion", "sub", "http://127.0.0.1:1/", tmp_path / "dead.jsonl", policy)
    return Bridge(config, send=sender)


def test_failures_are_retried_and_the_message_acked_once_after_success(tmp_path):
    sender = ScriptedSender([False, False, True])
    bridge = _bridge(sender, tmp_path)
    message = FakeMessage()
    bridge.handle(message)
    assert len(sender.calls) == 3
    assert (message.acks, message.nacks) == (1, 0)
    assert bridge.stats == {"retries": 2, "delivered": 1, "acked": 1}
    assert {c.headers["ce-id"] for c in sender.calls} == {"42"}  # same event id on every attempt
    assert not (tmp_path / "dead.jsonl").exists()


def test_after_max_attempts_the_event_is_dead_lettered_and_acked(tmp_path):
    sender = ScriptedSender([False])
    bridge = _bridge(sender, tmp_path, max_attempts=4)
    message = FakeMessage()
    bridge.handle(message)
    assert len(sender.calls) == 4
    assert message.acks == 1
    [entry] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert entry["attempts"] == 4
    assert entry["reason"] == "HTTP 500: boom"
    assert entry["message_id"] == "42"
    assert entry["event"]["headers"]["ce-type"] == "google.cloud.storage.object.v1.finalized"


def test_an_old_notification_gets_one_attempt_then_is_dead_lettered(tmp_path):
    sender = ScriptedSender([False])
    bridge = _bridge(sender, tmp_path, max_age=60)
    message = FakeMessage(published=datetime.now(UTC) - timedelta(minutes=5))
    bridge.handle(message)
    assert len(sender.calls) == 1
    assert message.acks == 1
    assert bridge.stats["dead_lettered"] == 1


def test_an_unusable_notification_is_dead_lettered_without_delivery(tmp_path):
    sender = ScriptedSender([True])
    bridge = _bridge(sender, tmp_path)
    message = FakeMessage(data=b"not json")
    bridge.handle(message)
    assert sender.calls == []
    assert message.acks == 1
    assert "not JSON" in (tmp_path / "dead.jsonl").read_text()


def test_stopping_during_a_backoff_leaves_the_message_for_redelivery(tmp_path):
    sender = ScriptedSender([False])
    bridge = _bridge(sender, tmp_path)
    bridge.config = replace(bridge.config, retry=RetryPolicy(initial=30, maximum=30))
    message = FakeMessage()
    worker = threading.Thread(target=bridge.handle, args=(message,))
    worker.start()
    while not sender.calls:
        time.sleep(0.01)
    bridge.request_stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert (message.acks, message.nacks) == (0, 1)


def test_an_unexpected_error_nacks_instead_of_holding_the_lease(tmp_path):
    def explode(request, url, timeout):
        raise RuntimeError("bug")

    bridge = Bridge(BridgeConfig("h:1", "p", "s", "http://127.0.0.1:1/"), send=explode)
    message = FakeMessage()
    bridge.handle(message)
    assert (message.acks, message.nacks) == (0, 1)


# --------------------------------------------------------------------------
# The events push shares the streaming-pull worker (localcloud/pull_worker.py)


def test_the_events_push_retries_counts_and_nacks_an_unexpected_error():
    from localcloud.event_push import Answer, EventPusher, PushConfig

    answers = iter([Answer(False, "HTTP 503"), Answer(True, "HTTP 204")])
    policy = RetryPolicy(initial=0.001, maximum=0.002, max_attempts=5, max_age=0.0)
    config = PushConfig("127.0.0.1:1", "demo-fashion", "sub", "http://127.0.0.1:1/hook", retry=policy)
    pusher = EventPusher(config, send=lambda target, body, timeout: next(answers))
    message = FakeMessage(data=b'{"id": "e1"}', attributes={"type": "com.example.test"})
    pusher.handle(message)
    assert (message.acks, message.nacks) == (1, 0)
    assert pusher.stats == {"retries": 1, "delivered": 1}

    def explode(target, body, timeout):
        raise RuntimeError("bug")

    broken = EventPusher(config, send=explode)
    message = FakeMessage(data=b"{}")
    broken.handle(message)
    assert (message.acks, message.nacks) == (0, 1)
    assert broken.stats == {}
