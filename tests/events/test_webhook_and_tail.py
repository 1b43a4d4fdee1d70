"""The local events push (``python -m localcloud.event_push``, what
``fashionctl up --events-webhook URL`` starts) and ``fashionctl events tail``,
on the Pub/Sub emulator: a webhook (a small HTTP server in the test) receives
each event as the CloudEvent JSON body, a failed delivery is retried with the
same event, and one that keeps failing goes to the dead-letter topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import localcloud
from functions.event_outbox import Publisher
from shared import records as rec
from shared import result_events as events
from tests.emulators import PROJECT, pubsub_emulator

REPO = Path(__file__).resolve().parents[2]
TOPIC, PUSH_SUBSCRIPTION, DEAD_LETTER, DEAD_LETTER_SUBSCRIPTION = "hook-events", "hook-push", "hook-dead", "hook-dead-all"
FAILS_BEFORE_OK = 2  #: "flaky" records' deliveries fail this often, then succeed; "broken" ones always fail


class Webhook(ThreadingHTTPServer):
    """Records every POST: (path, headers, body); answers 500 for a flaky
    event's first attempts and for a broken one's every attempt."""

    def __init__(self) -> None:
        super().__init__((localcloud.HOST, 0), _Handler)
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{localcloud.HOST}:{self.server_address[1]}/hook"

    def bodies(self, subject: str) -> list[dict]:
        with self.lock:
            found = [json.loads(body) for _, _, body in self.received]
        return [event for event in found if event.get("subject") == subject]


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers), body))
        subject = json.loads(body).get("subject", "")
        attempts = len(self.server.bodies(subject))
        failing = subject.startswith("broken") or (subject.startswith("flaky") and attempts <= FAILS_BEFORE_OK)
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def event_for(subject: str) -> dict:
    ref = rec.ObjectRef("in", f"{subject}.jpg", 7, 10, "image/jpeg")
    record = rec.Classification(
        source=ref, status=rec.CLASSIFIED, label="Tops", confidence=0.9, top_k=rec.top_k_entries([("Tops", 0.9)])
    )
    record.finished_at = datetime.now(UTC)
    return events.build(record.to_firestore(), subject, project=PROJECT)


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def pubsub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("webhook")
    with pytest.MonkeyPatch.context() as mp, pubsub_emulator(logs) as host:
        mp.setenv("PUBSUB_EMULATOR_HOST", host)
        localcloud.create_topic_and_subscription(host, PROJECT, TOPIC, PUSH_SUBSCRIPTION)
        localcloud.create_topic_and_subscription(host, PROJECT, DEAD_LETTER, DEAD_LETTER_SUBSCRIPTION)
        yield host, logs


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_receives_each_event_retried_until_accepted_else_dead_lettered(
    pubsub: tuple[str, Path], webhook: Webhook
) -> None:
    host, logs = pubsub
    push = localcloud.start_event_push(
        host,
        PROJECT,
        PUSH_SUBSCRIPTION,
        webhook.url,
        logs,
        DEAD_LETTER,
        ["--min-backoff", "0.2", "--max-backoff", "0.5", "--max-attempts", "3"],
    )
    try:
        localcloud.wait_until(push, localcloud.log_contains(push.log, "event push started", push.name), 60)
        publisher = Publisher(f"projects/{PROJECT}/topics/{TOPIC}")
        sent = {subject: event_for(subject) for subject in ("fine-1", "flaky-1", "broken-1")}
        for event in sent.values():
            publisher.publish(event)

        assert wait_for(lambda: webhook.bodies("fine-1"), 30, "the event") == [sent["fine-1"]]
        flaky = wait_for(lambda: (got := webhook.bodies("flaky-1")) and len(got) > FAILS_BEFORE_OK and got, 30, "retries")
        assert flaky == [sent["flaky-1"]] * (FAILS_BEFORE_OK + 1), "each retry carries the same event, same id"
        path, headers, _ = webhook.received[0]
        assert path == "/hook" and headers["Content-Type"].startswith("application/cloudevents+json")

        client = localcloud.subscriber_client(host)
        subscription = f"projects/{PROJECT}/subscriptions/{DEAD_LETTER_SUBSCRIPTION}"

        def dead_letters() -> list[Any]:
            return list(client.pull(request={"subscription": subscription, "max_messages": 10}, timeout=10).received_messages)

        dead = wait_for(dead_letters, 30, "the dead letter")
        client.acknowledge(request={"subscription": subscription, "ack_ids": [m.ack_id for m in dead]})
        client.close()
        assert [events.decode(m.message.data) for m in dead] == [sent["broken-1"]]
        attributes = dict(dead[0].message.attributes)
        assert attributes["delivery_attempts"] == "3" and attributes["last_error"] == "HTTP 500"
        assert attributes["status"] == rec.CLASSIFIED and attributes["type"] == events.FINISHED_TYPE
        assert len(webhook.bodies("broken-1")) == 3
        time.sleep(1.0)
        assert len(webhook.bodies("fine-1")) == 1 and len(webhook.bodies("flaky-1")) == FAILS_BEFORE_OK + 1
    finally:
        localcloud.stop(push)


def test_fashionctl_events_tail_prints_the_events(pubsub: tuple[str, Path]) -> None:
    host, _ = pubsub
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": host, "EVENTS_TOPIC": TOPIC, "GOOGLE_CLOUD_PROJECT": PROJECT}
    argv = [sys.executable, "-m", "fashionctl.cli", "events", "tail", "--json", "--max-events", "2", "--timeout", "60"]
    tail = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = localcloud.subscriber_client(host)
    try:

        def tailing() -> bool:
            names = [s.name for s in client.list_subscriptions(request={"project": f"projects/{PROJECT}"})]
            return any("/fashionctl-tail-" in name for name in names)

        wait_for(tailing, 60, "the tail's subscription")
        sent = [event_for("tail-1"), event_for("tail-2")]
        publisher = Publisher(f"projects/{PROJECT}/topics/{TOPIC}")
        for event in sent:
            publisher.publish(event)
        out, err = tail.communicate(timeout=90)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [{k: v for k, v in line.items() if k != "attributes"} for line in lines] == sent
    assert lines[0]["attributes"] == events.attributes(sent[0])
    assert not tailing(), "the tail deletes its subscription"
    client.close()


def test_tail_without_an_events_topic_says_events_are_off() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTS_TOPIC", "PUBSUB_EMULATOR_HOST")}
    argv = [sys.executable, "-m", "fashionctl.cli", "events", "tail", "--state-dir", "/nonexistent-state"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "EVENTS_TOPIC" in result.stderr and "events are off" in result.stderr
