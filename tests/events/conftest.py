"""The fault-injection lab of tests/reliability with the Pub/Sub emulator
beside it: the classify functions publish their completion events to
:data:`TOPIC`, and the tests read them back from :data:`SUBSCRIPTION`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import localcloud
from shared import result_events as events
from tests.emulators import PROJECT, pubsub_emulator
from tests.reliability.faults import FaultLab, fault_lab

TOPIC = "test-events"
SUBSCRIPTION = "test-events-all"


@dataclass
class EventsLab:
    lab: FaultLab
    pubsub_host: str

    def subscription_path(self, name: str = SUBSCRIPTION) -> str:
        return f"projects/{PROJECT}/subscriptions/{name}"

    def drain(self, quiet: float = 3.0, timeout: float = 60.0, name: str = SUBSCRIPTION) -> list[tuple[dict, dict]]:
        """Every message on the subscription until none came for ``quiet``
        seconds: (event, attributes) pairs, acknowledged."""
        return drain(self.pubsub_host, self.subscription_path(name), quiet, timeout)


def drain(pubsub_host: str, subscription_path: str, quiet: float = 3.0, timeout: float = 60.0) -> list[tuple[dict, dict]]:
    """Every message on the Pub/Sub emulator's subscription ``subscription_path``
    until none came for ``quiet`` seconds: (event, attributes) pairs, acknowledged."""
    client = localcloud.subscriber_client(pubsub_host)
    got: list[tuple[dict, dict]] = []
    deadline, last = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            response = client.pull(request={"subscription": subscription_path, "max_messages": 100}, timeout=10)
            if not response.received_messages:
                time.sleep(0.2)
                continue
            last = time.monotonic()
            for received in response.received_messages:
                got.append((events.decode(received.message.data), dict(received.message.attributes)))
            ids = [r.ack_id for r in response.received_messages]
            client.acknowledge(request={"subscription": subscription_path, "ack_ids": ids})
    finally:
        client.close()
    return got


@pytest.fixture(scope="module")
def events_lab(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[EventsLab]:
    logs = tmp_path_factory.mktemp("events")
    with (
        pytest.MonkeyPatch.context() as mp,
        pubsub_emulator(logs) as pubsub_host,
        fault_lab(logs, Path(tiny_model_dir.int8_dir)) as lab,
    ):
        mp.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)  # the in-process sweep's publisher
        localcloud.create_topic_and_subscription(pubsub_host, PROJECT, TOPIC, SUBSCRIPTION)
        lab.env |= {"EVENTS_TOPIC": TOPIC, "PUBSUB_EMULATOR_HOST": pubsub_host, "EVENTS_GRACE_SECONDS": "0"}
        assert lab.healthy is not None
        localcloud.stop(lab.healthy)  # started before the events settings: start it again with them
        lab.healthy = lab.start_function("healthy-events")
        yield EventsLab(lab, pubsub_host)
