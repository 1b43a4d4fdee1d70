"""The emulated cloud's plumbing on real emulators through the real client
libraries: storage notifications, the bridge's delivery and retries, Firestore."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from localcloud.bridge import Bridge, BridgeConfig, RetryPolicy
from tests.localcloud.conftest import FunctionStub, wait_for


def _upload(cloud, bucket: str, name: str, data: bytes = b"\xff\xd8\xff fake jpeg", content_type: str = "image/jpeg"):
    blob = cloud.storage().bucket(bucket).blob(name)
    blob.upload_from_string(data, content_type=content_type)
    return blob


def test_an_upload_to_the_incoming_bucket_publishes_one_finalize_notification(cloud):
    subscription = cloud.new_subscription()
    _upload(cloud, cloud.other, "elsewhere.jpg")  # not the incoming bucket: no event
    blob = _upload(cloud, cloud.incoming, "shoes/a b.jpg")
    messages = cloud.pull(subscription, wait=10, expect=1)
    messages += cloud.pull(subscription, wait=1.5, expect=1)  # and nothing else comes
    assert len(messages) == 1, [m.message.attributes for m in messages]
    message = messages[0].message
    assert dict(message.attributes) == {
        "bucketId": cloud.incoming,
        "objectId": "shoes/a b.jpg",
        "objectGeneration": str(blob.generation),
        "eventType": "OBJECT_FINALIZE",
        "eventTime": message.attributes["eventTime"],
        "payloadFormat": "JSON_API_V1",
    }
    payload = json.loads(message.data)
    assert payload["bucket"] == cloud.incoming
    assert payload["name"] == "shoes/a b.jpg"
    assert payload["generation"] == str(blob.generation)
    assert payload["size"] == str(len(b"\xff\xd8\xff fake jpeg"))
    assert payload["contentType"] == "image/jpeg"
    assert payload["md5Hash"] == blob.md5_hash
    assert "metageneration" not in payload  # a fake-gcs-server gap the bridge fills in


def test_an_overwrite_publishes_the_new_generation_with_overwrote_generation(cloud):
    subscription = cloud.new_subscription()
    first = _upload(cloud, cloud.incoming, "over.jpg", b"one")
    second = _upload(cloud, cloud.incoming, "over.jpg", b"two!")
    messages = cloud.pull(subscription, wait=10, expect=2)
    attributes = sorted((dict(m.message.attributes) for m in messages), key=lambda a: int(a["objectGeneration"]))
    assert [a["objectGeneration"] for a in attributes] == [str(first.generation), str(second.generation)]
    assert attributes[1]["overwroteGeneration"] == str(first.generation)


def _bridge(cloud, subscription: str, target: str, tmp_path, **retry) -> Bridge:
    policy = RetryPolicy(**{"initial": 0.2, "maximum": 1.0, **retry})
    config = BridgeConfig(cloud.pubsub_host, cloud.project, subscription, target, tmp_path / "dead-letter.jsonl", policy)
    return Bridge(config)


def test_the_bridge_retries_a_failing_function_then_delivers_once_and_acks(cloud, tmp_path):
    subscription = cloud.new_subscription(ack_deadline=10)
    with FunctionStub([500, 500, 204]) as function:
        bridge = _bridge(cloud, subscription, function.url, tmp_path)
        bridge.start()
        try:
            blob = _upload(cloud, cloud.incoming, "retry/ü.jpg")
            wait_for(lambda: bridge.stats["acked"] == 1, 20, "the delivery after two failures")
            time.sleep(1.5)  # longer than the backoff: nothing more may come
            assert len(function.requests) == 3
            assert bridge.stats == {"retries": 2, "delivered": 1, "acked": 1}
        finally:
            bridge.stop()
    first, _, last = function.requests
    assert first.headers["ce-id"] == last.headers["ce-id"]
    headers = last.headers
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{cloud.incoming}"
    assert headers["ce-subject"] == "objects/retry/%C3%BC.jpg"
    assert headers["ce-time"].endswith("Z")
    assert headers["content-type"].startswith("application/json")
    body = last.json
    assert body["bucket"] == cloud.incoming
    assert body["name"] == "retry/ü.jpg"
    assert body["generation"] == str(blob.generation)
    assert body["metageneration"] == "1"
    assert body["size"] == str(blob.size)
    assert body["id"] == f"{cloud.incoming}/retry/ü.jpg/{blob.generation}"
    for key in ("contentType", "timeCreated", "updated", "md5Hash"):
        assert body[key]
    # acked for good: nothing is redelivered once the 10 s ack deadline has passed
    assert cloud.pull(subscription, wait=12, expect=1) == []


def test_the_bridge_dead_letters_after_max_attempts_and_acks(cloud, tmp_path):
    subscription = cloud.new_subscription()
    with FunctionStub([503]) as function:
        bridge = _bridge(cloud, subscription, function.url, tmp_path, initial=0.05, maximum=0.1, max_attempts=3)
        bridge.start()
        try:
            _upload(cloud, cloud.incoming, "doomed.jpg")
            wait_for(lambda: bridge.stats["dead_lettered"] == 1, 20, "the dead letter")
        finally:
            bridge.stop()
    assert len(function.requests) == 3
    [entry] = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert entry["attempts"] == 3
    assert entry["reason"].startswith("HTTP 503")
    assert entry["event"]["data"]["name"] == "doomed.jpg"


def test_the_bridge_retries_when_nothing_listens(cloud, tmp_path):
    from tests.emulators import free_port

    subscription = cloud.new_subscription()
    bridge = _bridge(cloud, subscription, f"http://127.0.0.1:{free_port()}/", tmp_path, initial=0.05, max_attempts=2)
    bridge.start()
    try:
        _upload(cloud, cloud.incoming, "nobody-home.jpg")
        wait_for(lambda: bridge.stats["dead_lettered"] == 1, 20, "the dead letter")
    finally:
        bridge.stop()
    entry = json.loads((tmp_path / "dead-letter.jsonl").read_text())
    assert "ConnectionError" in entry["reason"]


def test_the_bridge_delivers_several_events_concurrently(cloud, tmp_path):
    subscription = cloud.new_subscription()
    with FunctionStub([200], delay=1.0) as function:
        bridge = _bridge(cloud, subscription, function.url, tmp_path)
        bridge.start()
        try:
            for index in range(4):
                _upload(cloud, cloud.incoming, f"many/{index}.jpg")
            wait_for(lambda: bridge.stats["acked"] == 4, 20, "four deliveries")
        finally:
            bridge.stop()
    assert sorted(r.json["name"] for r in function.requests) == [f"many/{i}.jpg" for i in range(4)]
    assert function.max_in_flight >= 2


def test_the_firestore_emulator_accepts_writes_and_reads_with_anonymous_credentials(cloud, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", cloud.firestore_host)
    client = firestore.Client(project=cloud.project, credentials=AnonymousCredentials())
    doc_id = uuid.uuid4().hex
    ref = client.collection("classifications").document(doc_id)
    ref.set({"status": "classified", "label": "Heels", "confidence": 0.93, "created": firestore.SERVER_TIMESTAMP})
    snapshot = ref.get()
    assert snapshot.exists
    assert snapshot.to_dict()["label"] == "Heels"
    assert snapshot.to_dict()["created"] is not None

    @firestore.transactional
    def bump(transaction, counter):
        current = counter.get(transaction=transaction).to_dict() or {}
        transaction.set(counter, {"count": current.get("count", 0) + 1})

    counter = client.collection("stats").document(doc_id)
    for _ in range(3):
        bump(client.transaction(), counter)
    assert counter.get().to_dict() == {"count": 3}
    query = client.collection("classifications").where(filter=firestore.FieldFilter("label", "==", "Heels"))
    found = [d.id for d in query.stream()]
    assert doc_id in found


def test_a_notification_decodes_from_the_rest_pull_as_well(cloud):
    """The emulator's REST surface (what curl users see) carries the same notification."""
    import urllib.request

    subscription = cloud.new_subscription()
    _upload(cloud, cloud.incoming, "rest.jpg")
    url = f"http://{cloud.pubsub_host}/v1/projects/{cloud.project}/subscriptions/{subscription}:pull"
    deadline = time.monotonic() + 10
    received = []
    while not received and time.monotonic() < deadline:
        request = urllib.request.Request(url, data=b'{"maxMessages": 5}', headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            received = json.load(response).get("receivedMessages", [])
        time.sleep(0.1)
    assert received, "no notification pulled over REST"
    assert json.loads(base64.b64decode(received[0]["message"]["data"]))["name"] == "rest.jpg"


@pytest.mark.parametrize("component", ["pubsub", "firestore", "storage"])
def test_missing_emulators_are_reported_by_name(component, tmp_path):
    from localcloud import find_tools

    tools = find_tools(sdk_root=tmp_path)  # an SDK root without platform/
    reason = tools.missing(component)
    if component == "storage":
        assert reason is None
    else:
        assert reason is not None
        assert component in reason
        assert str(tmp_path) in reason
