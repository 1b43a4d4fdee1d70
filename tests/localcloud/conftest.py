"""Fixtures for the local-stack tests: real emulators on loopback, real client
libraries, and a small HTTP server that plays the function."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import localcloud
from tests.emulators import PROJECT, fake_gcs_server, firestore_emulator, pubsub_emulator, require

TOPIC = "storage-events"
INCOMING = "test-incoming"
OTHER = "test-other"


@dataclass
class Cloud:
    project: str
    pubsub_host: str
    firestore_host: str
    storage_url: str
    topic: str
    incoming: str
    other: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    def storage(self) -> Any:
        return localcloud.storage_client(self.storage_url, self.project)

    def new_subscription(self, ack_deadline: int = 10) -> str:
        """A fresh subscription on the notifications topic: it sees only what is published from now on."""
        name = f"sub-{next(self._names)}"
        localcloud.create_topic_and_subscription(self.pubsub_host, self.project, self.topic, name, ack_deadline)
        return name

    def pull(self, subscription: str, wait: float = 10.0, expect: int = 1) -> list[Any]:
        """Synchronously pull until ``expect`` messages came or ``wait`` seconds passed; acks them."""
        subscriber = localcloud.subscriber_client(self.pubsub_host)
        path = subscriber.subscription_path(self.project, subscription)
        received: list[Any] = []
        deadline = time.monotonic() + wait
        try:
            while len(received) < expect and time.monotonic() < deadline:
                response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=2)
                received.extend(response.received_messages)
                if response.received_messages:
                    ack_ids = [m.ack_id for m in response.received_messages]
                    subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
                else:
                    time.sleep(0.2)
        finally:
            subscriber.close()
        return received


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Pub/Sub, Firestore and fake-gcs-server (publishing OBJECT_FINALIZE of
    the incoming bucket to a topic), with the buckets created."""
    require("pubsub", "storage")
    logs = tmp_path_factory.mktemp("emulators")
    with pubsub_emulator(logs) as pubsub_host, firestore_emulator(logs) as firestore_host:
        localcloud.create_topic_and_subscription(pubsub_host, PROJECT, TOPIC, "unused")
        with fake_gcs_server(logs, pubsub_host=pubsub_host, topic=TOPIC, bucket=INCOMING) as storage_url:
            localcloud.create_buckets(storage_url, PROJECT, [INCOMING, OTHER])
            yield Cloud(PROJECT, pubsub_host, firestore_host, storage_url, TOPIC, INCOMING, OTHER)


@dataclass
class Recorded:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FunctionStub:
    """An HTTP server on loopback that records each POST and answers with the
    next status of ``statuses`` (the last one repeats), after ``delay`` s."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with stub._lock:
                    stub.requests.append(Recorded({k.lower(): v for k, v in self.headers.items()}, body))
                    status = stub.statuses[min(len(stub.requests), len(stub.statuses)) - 1]
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                time.sleep(stub.delay)
                with stub._lock:
                    stub.in_flight -= 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((localcloud.HOST, 0), Handler)
        self.url = f"http://{localcloud.HOST}:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FunctionStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
