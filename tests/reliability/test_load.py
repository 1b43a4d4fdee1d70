"""Load through the whole local stack, with duplicated events.

``localcloud.up`` starts fake-gcs-server (publishing OBJECT_FINALIZE
notifications to the Pub/Sub emulator), the Firestore emulator, the classify
function under functions-framework with the tiny test model, and the
Eventarc bridge. N photos are uploaded with google-cloud-storage; for 10% of
them the storage notification is published 4 more times (5 deliveries in
all, concurrent on the bridge's workers, each with its own event id, as
at-least-once delivery may do). When every delivery is acknowledged there
must be exactly N records and N processed objects, none left in incoming,
no duplicate copy, the counters at N, and no dead letter.

N is 200 by default and 1,000 under ``pytest --long``; the time taken and the
throughput are printed (``-s`` shows them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import localcloud
from shared import records as rec
from tests.images import make_photo_like
from tests.pipeline.test_end_to_end import Stack, log_records, running_stack, wait_for
from tests.reliability.faults import counted
from tests.reliability.soak import notify_again

DEFAULT_UPLOADS = 200
LONG_UPLOADS = 1000
DUPLICATED_FRACTION = 0.10
COPIES = 5  # deliveries of each duplicated event, the original included
BRIDGE_WORKERS = 8


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[Stack]:
    bridge_args = ("--min-backoff=0.2", "--max-backoff=1", f"--workers={BRIDGE_WORKERS}")
    with running_stack(tmp_path_factory.mktemp("load"), tiny_model_dir, bridge_args) as running:
        yield running


def test_uploads_with_duplicated_events_are_processed_exactly_once(load_stack: Stack, long_run: bool):
    """N uploads, 10% of their events delivered 5 times: N records, N
    processed objects with the uploaded bytes, nothing left in incoming, no
    duplicate, counters at N, no dead letter."""
    count = LONG_UPLOADS if long_run else DEFAULT_UPLOADS
    duplicated = set(range(0, count, round(1 / DUPLICATED_FRACTION)))
    photos = {f"load/{i:05d}.jpg": make_photo_like((64, 64), seed=i) for i in range(count)}
    names = sorted(photos)
    topic = localcloud.publisher_client(load_stack.env["PUBSUB_EMULATOR_HOST"]).topic_path(
        load_stack.env["GOOGLE_CLOUD_PROJECT"], load_stack.state.info["topic"]
    )
    publisher = localcloud.publisher_client(load_stack.env["PUBSUB_EMULATOR_HOST"])
    bucket = load_stack.storage().bucket(load_stack.incoming)

    def upload(index: int) -> tuple[str, int]:
        name = names[index]
        blob = bucket.blob(name)
        blob.upload_from_string(photos[name], content_type="image/jpeg")
        if index in duplicated:
            for _ in range(COPIES - 1):
                notify_again(publisher, topic, blob)
        return name, int(blob.generation)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        generations = dict(pool.map(upload, range(count)))
    uploaded = time.monotonic() - started
    expected_deliveries = count + len(duplicated) * (COPIES - 1)
    bridge_log = load_stack.component("bridge").log

    def settled() -> bool:
        done = Counter(r.get("message") for r in log_records(bridge_log))
        return done["event delivered"] + done["notification dead-lettered: %s"] >= expected_deliveries

    def all_finished() -> bool:
        return load_stack.finished(generations) is not None

    wait_for(all_finished, 60 + count * 0.5, f"{count} records and an empty incoming bucket")
    finished = time.monotonic() - started
    wait_for(settled, 60, f"{expected_deliveries} deliveries acknowledged by the bridge")
    settled_at = time.monotonic() - started

    documents = [d.to_dict() or {} for d in load_stack.firestore().collection(rec.COLLECTION).stream()]
    sources = Counter((d["source"]["name"], d["source"]["generation"]) for d in documents)
    assert len(documents) == count and set(sources.values()) == {1}, sources.most_common(3)
    assert {name for name, _ in sources} == set(names)
    assert all(d["status"] in (rec.CLASSIFIED, rec.NEEDS_REVIEW) for d in documents), Counter(d["status"] for d in documents)
    processed = list(load_stack.storage().list_blobs(load_stack.processed))
    assert len(processed) == count, f"{len(processed)} processed objects for {count} uploads"
    by_source = Counter((b.metadata or {}).get("source-name") for b in processed)
    assert set(by_source) == set(names) and set(by_source.values()) == {1}
    destinations = {d["source"]["name"]: d["destination"]["name"] for d in documents}
    md5 = {b.name: b.md5_hash for b in processed}
    uploaded_md5 = {name: _md5(data) for name, data in photos.items()}
    assert all(md5[destinations[name]] == uploaded_md5[name] for name in names)
    assert not list(load_stack.storage().list_blobs(load_stack.incoming))
    assert counted(load_stack.firestore()) == count
    dead = Path(load_stack.state_dir) / "dead-letter.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()
    delivered = Counter(r.get("message") for r in log_records(bridge_log))
    retries = sum(1 for r in log_records(bridge_log) if r.get("message") == "event delivery failed, retrying")
    print(
        f"\nload: {count} uploads ({len(duplicated)} with {COPIES} deliveries, {expected_deliveries} events), "
        f"uploaded in {uploaded:.1f} s, all finished after {finished:.1f} s "
        f"({count / finished:.1f} images/s end to end), every delivery acknowledged after {settled_at:.1f} s; "
        f"{delivered['event delivered']} deliveries acknowledged, {retries} retried (busy lease), 0 dead letters"
    )


def _md5(data: bytes) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.md5(data).digest()).decode()
