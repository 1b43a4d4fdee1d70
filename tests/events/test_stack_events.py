"""``fashionctl up --events-webhook URL`` as ``make demo`` runs the stack
(``localcloud.up`` on free ports, storage notifications through the Pub/Sub
emulator, the bridge, the classify function, the tiny test model): uploads
through google-cloud-storage come out as completion events POSTed to a
webhook served by the test."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import localcloud
from shared import records as rec
from shared import result_events as events
from tests.events.test_webhook_and_tail import Webhook
from tests.images import make_photo_like
from tests.pipeline.conftest import FIRESTORE_PREFERENCE
from tests.pipeline.test_end_to_end import FAST_RETRIES, make_store, require_stack, stop_leftovers, wait_for


def test_uploads_reach_the_local_webhook_as_events(tmp_path: Path, tiny_model_dir: Any) -> None:
    require_stack()
    webhook = Webhook()
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    state_dir = tmp_path / "state"
    config = localcloud.StackConfig(
        state_dir=state_dir,
        ports=localcloud.Ports.free(),
        model_store=make_store(tmp_path / "store", Path(tiny_model_dir.int8_dir)),
        bridge_args=FAST_RETRIES,
        firestore=FIRESTORE_PREFERENCE,
        events_webhook=webhook.url,
    )
    try:
        started = localcloud.up(config, localcloud.find_tools())
        assert "events-push" in [p.name for p in started.state.components]
        env = localcloud.read_env_file(state_dir / localcloud.ENV_FILE)
        assert env["EVENTS_TOPIC"] == config.events_topic
        storage = localcloud.storage_client(env["STORAGE_EMULATOR_HOST"], env["GOOGLE_CLOUD_PROJECT"])
        bucket = storage.bucket(env["INCOMING_BUCKET"])
        ids = {}
        for i in range(3):
            blob = bucket.blob(f"hooked/{i}.jpg")
            blob.upload_from_string(make_photo_like((48, 40), seed=40 + i), content_type="image/jpeg")
            record_id = rec.classification_id(env["INCOMING_BUCKET"], blob.name, int(blob.generation))
            ids[events.event_id(record_id, events.FINISHED_TYPE, 1)] = record_id

        def received() -> list[dict]:
            with webhook.lock:
                bodies = [body for _, _, body in webhook.received]
            return [events.decode(body) for body in bodies]

        got = wait_for(lambda: (found := received()) and {e["id"] for e in found} >= set(ids) and found, 90, "3 events")
        assert {e["id"] for e in got} == set(ids)
        for event in got:
            assert event["subject"] == ids[event["id"]] and event["data"]["status"] in events.EVENT_STATUSES
            assert event["data"]["source"]["name"].startswith("hooked/")
    finally:
        stop_leftovers(state_dir)
        webhook.shutdown()
        webhook.server_close()
