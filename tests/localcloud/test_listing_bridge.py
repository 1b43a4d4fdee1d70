"""The bridge's listing source (localcloud/listing.py): where no Pub/Sub
emulator exists, new object generations are found by listing the incoming
bucket on fake-gcs-server (started here without any notification flags).

On the real storage emulator: each new object version is delivered once as
the same CloudEvent a notification would give, a failing function is retried
and then left alone, an overwrite is a new version, a restarted bridge does
not deliver again what it delivered (its memory is a file in the state
folder), versions that left the bucket are forgotten, and ``localcloud.up``
runs the stack with a listing bridge, by choice or when the Pub/Sub emulator
is absent. The pure parts (the memory file, the notification's shape, the
command line) are unit-tested at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localcloud
from localcloud.bridge import Bridge, BridgeConfig, ListingConfig, RetryPolicy, config_from_args, parser, to_cloudevent
from localcloud.listing import DeliveredLog, ListedNotification, ListedObject, ListingSource
from tests.emulators import PROJECT, fake_gcs_server, require
from tests.localcloud.conftest import FunctionStub, wait_for

POLL = 0.2  # s between listings in these tests
_buckets = itertools.count()


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server with no Pub/Sub: nothing publishes notifications."""
    require("storage")
    with fake_gcs_server(tmp_path_factory.mktemp("storage")) as url:
        yield url


@pytest.fixture
def bucket(storage_url: str) -> Any:
    name = f"listing-{next(_buckets)}"
    localcloud.create_buckets(storage_url, PROJECT, [name])
    return localcloud.storage_client(storage_url, PROJECT).bucket(name)


def listing_bridge(storage_url: str, bucket: Any, target: str, memory: Path | None, **retry: Any) -> Bridge:
    policy = RetryPolicy(**{"initial": 0.2, "maximum": 1.0, **retry})
    listing = ListingConfig(storage_url, bucket.name, POLL, memory)
    return Bridge(
        BridgeConfig(None, PROJECT, None, target, memory.with_name("dead.jsonl") if memory else None, policy, listing=listing)
    )


def upload(bucket: Any, name: str, data: bytes = b"\xff\xd8\xff photo") -> Any:
    blob = bucket.blob(name)
    blob.upload_from_string(data, content_type="image/jpeg")
    return blob


def delivered(function: FunctionStub) -> list[tuple[str, str]]:
    """(name, generation) of each request the function got, in order."""
    return [(r.json["name"], r.json["generation"]) for r in function.requests]


def test_each_new_object_version_is_delivered_once_as_a_finalized_cloudevent(storage_url, bucket, tmp_path):
    with FunctionStub([204]) as function:
        bridge = listing_bridge(storage_url, bucket, function.url, tmp_path / "delivered.jsonl")
        bridge.start()
        try:
            first = upload(bucket, "shoot/ü 1.jpg")
            second = upload(bucket, "shoot/2.jpg")
            wait_for(lambda: len(function.requests) >= 2, 20, "two deliveries")
            time.sleep(10 * POLL)  # ten more listings still see both objects (the stub deletes nothing)
            assert sorted(delivered(function)) == sorted(
                [("shoot/ü 1.jpg", str(first.generation)), ("shoot/2.jpg", str(second.generation))]
            )
            newer = upload(bucket, "shoot/2.jpg", b"\xff\xd8\xff retouched")  # an overwrite: a new version
            wait_for(lambda: len(function.requests) >= 3, 20, "the new version")
            time.sleep(5 * POLL)
            assert delivered(function)[2:] == [("shoot/2.jpg", str(newer.generation))]
            assert bridge.stats == {"delivered": 3, "acked": 3}
        finally:
            bridge.stop()
    request = next(r for r in function.requests if r.json["name"] == "shoot/ü 1.jpg")
    headers, body = request.headers, request.json
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
    assert headers["ce-subject"] == "objects/shoot/%C3%BC 1.jpg"
    assert headers["ce-id"].startswith("listing-")
    assert headers["ce-time"].endswith("Z")
    assert body["bucket"] == bucket.name and body["generation"] == str(first.generation)
    assert body["size"] == str(first.size) and body["md5Hash"] == first.md5_hash
    assert body["contentType"] == "image/jpeg" and body["metageneration"] == "1"
    assert body["id"] == f"{bucket.name}/shoot/ü 1.jpg/{first.generation}"


def test_a_failing_function_is_retried_with_one_event_id_then_left_alone(storage_url, bucket, tmp_path):
    memory = tmp_path / "delivered.jsonl"
    with FunctionStub([500, 503, 204]) as function:
        bridge = listing_bridge(storage_url, bucket, function.url, memory)
        bridge.start()
        try:
            blob = upload(bucket, "retry.jpg")
            wait_for(lambda: bridge.stats["acked"] == 1, 20, "the delivery after two failures")
            time.sleep(10 * POLL)
        finally:
            bridge.stop()
    assert len(function.requests) == 3, "retried while failing, and only then"
    assert len({r.headers["ce-id"] for r in function.requests}) == 1
    assert bridge.stats == {"retries": 2, "delivered": 1, "acked": 1}
    assert [json.loads(line) for line in memory.read_text().splitlines()] == [
        {"bucket": bucket.name, "name": "retry.jpg", "generation": str(blob.generation)}
    ]


def test_a_restarted_bridge_does_not_deliver_again_what_it_delivered(storage_url, bucket, tmp_path):
    memory = tmp_path / "state" / "bridge-delivered.jsonl"
    with FunctionStub([204]) as function:
        bridge = listing_bridge(storage_url, bucket, function.url, memory)
        bridge.start()
        try:
            old = [upload(bucket, f"batch/{i}.jpg") for i in range(3)]
            wait_for(lambda: bridge.stats["acked"] == 3, 20, "three deliveries")
        finally:
            bridge.stop()
        assert len(memory.read_text().splitlines()) == 3

        restarted = listing_bridge(storage_url, bucket, function.url, memory)
        restarted.start()
        try:
            new = upload(bucket, "batch/3.jpg")
            wait_for(lambda: restarted.stats["acked"] == 1, 20, "the new upload")
            time.sleep(10 * POLL)
        finally:
            restarted.stop()
        assert delivered(function)[3:] == [("batch/3.jpg", str(new.generation))]

        forgetful = listing_bridge(storage_url, bucket, function.url, tmp_path / "other-memory.jsonl")
        forgetful.start()  # the control: without the memory file, all four come again
        try:
            wait_for(lambda: forgetful.stats["acked"] == 4, 20, "a re-flood by a bridge with no memory")
        finally:
            forgetful.stop()
    assert sorted(delivered(function)[4:]) == sorted((b.name, str(b.generation)) for b in [*old, new])


def test_versions_that_left_the_bucket_are_forgotten(storage_url, bucket, tmp_path):
    memory = tmp_path / "delivered.jsonl"
    with FunctionStub([204]) as function:
        bridge = listing_bridge(storage_url, bucket, function.url, memory)
        bridge.start()
        try:
            kept, moved = upload(bucket, "kept.jpg"), upload(bucket, "moved.jpg")
            wait_for(lambda: bridge.stats["acked"] == 2, 20, "two deliveries")
            moved.delete()  # what the classify function does once the file is filed

            def remembered() -> list[str]:
                return [json.loads(line)["name"] for line in memory.read_text().splitlines()]

            wait_for(lambda: remembered() == ["kept.jpg"], 10, "the moved object to be forgotten")
        finally:
            bridge.stop()
    assert len(function.requests) == 2
    assert DeliveredLog(memory, bucket.name).__contains__(("kept.jpg", int(kept.generation)))


def test_the_listing_bridge_keeps_going_while_storage_is_unreachable(bucket, tmp_path):
    """A listing that fails (nothing listens) is logged and tried again; the bridge does not die."""
    closed = f"http://{localcloud.HOST}:{localcloud.free_port()}"
    bridge = listing_bridge(closed, bucket, "http://127.0.0.1:9/", tmp_path / "delivered.jsonl")
    bridge.start()
    try:
        wait_for(lambda: bridge._listing.failed_polls >= 2, 20, "two failed listings")
        assert bridge._listing._thread.is_alive()
    finally:
        bridge.stop()


# -- the stack -----------------------------------------------------------------


def _stack_config(tmp_path: Path, target: str, source: str) -> localcloud.StackConfig:
    return localcloud.StackConfig(
        state_dir=tmp_path / "state",
        ports=localcloud.Ports.free(),
        model_store=tmp_path / "no-store",
        function_source=None,
        bridge_target=target,
        bridge_args=("--poll-interval=0.2",),
        bridge_source=source,
    )


@pytest.mark.parametrize("pubsub", ["present", "absent"])
def test_up_runs_a_listing_bridge_by_choice_or_without_the_pubsub_emulator(tmp_path, pubsub):
    """``bridge_source="listing"``, or ``auto`` where the Pub/Sub emulator is
    absent: no Pub/Sub process, no PUBSUB_EMULATOR_HOST, and an upload still
    reaches the function, once (the bridge process, as ``up`` starts it)."""
    tools = localcloud.find_tools()
    if localcloud.choose_firestore(tools)[0] is None or tools.missing("storage"):
        pytest.skip("the storage or Firestore emulator is unavailable here")
    source = "listing"
    if pubsub == "absent":
        tools, source = dataclasses.replace(tools, pubsub_jar=None), "auto"
    with FunctionStub([204]) as function:
        config = _stack_config(tmp_path, function.url, source)
        try:
            started = localcloud.up(config, tools)
            state = started.state
            assert [p.name for p in state.components] == ["firestore", "storage", "bridge"]
            assert state.info["bridge_source"] == "listing" and "listing gs://" in state.info["bridge"]
            env = localcloud.read_env_file(started.env_file)
            assert "PUBSUB_EMULATOR_HOST" not in env
            blob = upload(
                localcloud.storage_client(env["STORAGE_EMULATOR_HOST"], PROJECT).bucket(env["INCOMING_BUCKET"]), "a.jpg"
            )
            wait_for(lambda: len(function.requests) >= 1, 30, "the upload at the function")
            time.sleep(1.0)
            assert delivered(function) == [("a.jpg", str(blob.generation))]
            memory = Path(state.state_dir) / "bridge-delivered.jsonl"
            wait_for(memory.exists, 10, "the bridge's memory file in the state folder")
        finally:
            localcloud.down(config.state_dir)


def test_up_with_the_pubsub_source_still_needs_the_pubsub_emulator(tmp_path):
    tools = dataclasses.replace(localcloud.find_tools(), pubsub_jar=None)
    with pytest.raises(localcloud.ToolsMissing) as raised:
        localcloud.up(_stack_config(tmp_path, "http://127.0.0.1:9/", "pubsub"), tools)
    assert "pubsub" in raised.value.missing


# -- pure parts ----------------------------------------------------------------


def test_the_memory_file_survives_reloads_and_ignores_other_buckets_and_garbage(tmp_path):
    path = tmp_path / "memory.jsonl"
    log = DeliveredLog(path, "in")
    log.add(("a.jpg", 1))
    log.add(("a.jpg", 1))
    log.add(("b.jpg", 2))
    with path.open("a") as out:
        out.write('{"bucket": "other", "name": "x", "generation": "3"}\nnot json\n{"bucket": "in"}\n')
    reloaded = DeliveredLog(path, "in")
    assert len(reloaded) == 2 and ("a.jpg", 1) in reloaded and ("x", 3) not in reloaded
    assert reloaded.forget_all_but({("b.jpg", 2), ("c.jpg", 9)}) == 1
    assert DeliveredLog(path, "in")._versions == {("b.jpg", 2)}
    assert reloaded.forget_all_but({("b.jpg", 2)}) == 0


def _listed(name: str, generation: int, created: str = "2026-11-29T10:00:00.123000Z") -> ListedObject:
    resource = {"bucket": "in", "name": name, "generation": str(generation), "size": "5", "timeCreated": created}
    return ListedObject({**resource, "updated": created, "contentType": "image/jpeg"})


def test_a_listed_object_maps_to_the_cloudevent_of_its_notification():
    message = ListedNotification(_listed("a b.jpg", 17), lambda: None, lambda: None)
    assert message.attributes == {
        "bucketId": "in",
        "objectId": "a b.jpg",
        "objectGeneration": "17",
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "eventTime": "2026-11-29T10:00:00Z",
    }
    request = to_cloudevent(message.data, message.attributes, message.message_id, message.publish_time)
    assert request.headers["ce-id"] == ListedNotification(_listed("a b.jpg", 17), print, print).message_id
    assert request.headers["ce-id"] != ListedNotification(_listed("a b.jpg", 18), print, print).message_id
    assert request.headers["ce-time"] == "2026-11-29T10:00:00.123000Z"
    assert request.data["id"] == "in/a b.jpg/17" and request.data["generation"] == "17"


def test_a_poll_queues_new_versions_oldest_first_and_never_twice():
    listing = [_listed("late.jpg", 2, "2026-11-29T10:00:05Z"), _listed("early.jpg", 1, "2026-11-29T10:00:01Z")]
    received: list[ListedNotification] = []
    source = ListingSource(lambda: listing, received.append, DeliveredLog(None, "in"))
    assert source.poll() == [("early.jpg", 1), ("late.jpg", 2)]
    assert source.poll() == [] and source.in_flight() == 2  # in flight: not handed out again
    received[0].ack()
    received[1].nack()  # the bridge stopped before delivering it: the next poll hands it out again
    assert source.poll() == [("late.jpg", 2)]
    received[2].ack()
    assert source.poll() == [] and source.in_flight() == 0


def _args(*argv: str) -> argparse.Namespace:
    return parser().parse_args([*argv, "--project", "p", "--target", "http://127.0.0.1:9/"])


def test_the_command_line_chooses_the_source_and_names_what_it_lacks():
    assert config_from_args(_args("--pubsub-host", "h:1", "--subscription", "s")).source == "pubsub"
    listing = config_from_args(_args("--storage-url", "http://h:2", "--bucket", "in", "--delivered-file", "m.jsonl"))
    assert listing.source == "listing" and listing.listing == ListingConfig("http://h:2", "in", 1.0, Path("m.jsonl"))
    with pytest.raises(ValueError, match="--storage-url and --bucket"):
        config_from_args(_args("--source", "listing", "--pubsub-host", "h:1"))
    with pytest.raises(ValueError, match="--pubsub-host and --subscription"):
        config_from_args(_args("--source", "pubsub"))
    with pytest.raises(ValueError, match="--poll-interval"):
        config_from_args(_args("--storage-url", "http://h:2", "--bucket", "in", "--poll-interval", "0"))
