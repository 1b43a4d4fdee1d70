"""``fashionctl events tail``: the completion events (docs/events.md) as they
are published, read through a subscription of its own on the events topic.

The subscription (``fashionctl-tail-<random>``) is created at the start and
deleted at the end, so only events published meanwhile are shown; on the
local stack the Pub/Sub emulator is ``PUBSUB_EMULATOR_HOST`` of the stack's
env file, elsewhere the real Pub/Sub of ``GOOGLE_CLOUD_PROJECT``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from shared import result_events as events
from shared.attributes import compact

#: seconds one pull waits for messages before the loop checks its deadline
PULL_WAIT = 2.0


def subscriber(env: Mapping[str, str]) -> Any:
    """A Pub/Sub subscriber: the emulator's when ``PUBSUB_EMULATOR_HOST`` is set."""
    host = env.get("PUBSUB_EMULATOR_HOST")
    if host:
        from localcloud.clients import subscriber_client

        return subscriber_client(host)
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def topic_path(env: Mapping[str, str]) -> str:
    """The events topic of ``env`` (``EVENTS_TOPIC``, a topic id or a full path).
    Raises KeyError naming the missing setting."""
    topic = env.get("EVENTS_TOPIC") or ""
    if not topic:
        raise KeyError("EVENTS_TOPIC")
    return topic if topic.startswith("projects/") else f"projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/{topic}"


@contextmanager
def tail_subscription(client: Any, topic: str) -> Iterator[str]:
    """A fresh subscription on ``topic``, deleted on exit; yields its path."""
    project = topic.split("/")[1]
    path = client.subscription_path(project, f"fashionctl-tail-{uuid.uuid4().hex[:12]}")
    client.create_subscription(request={"name": path, "topic": topic, "ack_deadline_seconds": 30})
    try:
        yield path
    finally:
        client.delete_subscription(request={"subscription": path})


def tail(
    client: Any,
    subscription: str,
    show: Callable[[dict[str, Any], Mapping[str, str]], None],
    *,
    max_events: int | None = None,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Pull events from ``subscription`` and ``show`` each (event, attributes),
    acknowledging them, until ``max_events`` were shown or ``timeout``
    seconds passed (None: until interrupted); the number shown. A message
    that is not an event is shown as ``{"invalid": <its text>}``."""
    from google.api_core.exceptions import DeadlineExceeded

    shown, deadline = 0, None if timeout is None else clock() + timeout
    while (max_events is None or shown < max_events) and (deadline is None or clock() < deadline):
        try:
            response = client.pull(request={"subscription": subscription, "max_messages": 50}, timeout=PULL_WAIT)
        except DeadlineExceeded:
            continue
        ids = []
        for received in response.received_messages:
            ids.append(received.ack_id)
            try:
                event = events.decode(received.message.data)
            except ValueError:
                event = {"invalid": received.message.data.decode("utf-8", errors="replace")}
            show(event, dict(received.message.attributes))
            shown += 1
        if ids:
            client.acknowledge(request={"subscription": subscription, "ack_ids": ids})
        elif not response.received_messages:
            time.sleep(0.2)
    return shown


def line(event: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
    """One human-readable line: time, type, status, category, band, sku, the
    final attributes (``attrs=Men,?colour,Casual,Fall``: ATTRIBUTES order, an
    empty one as ``?name``; only for a record with attributes), record id, event id."""
    if "invalid" in event:
        return f"(not an event) {str(event['invalid'])[:200]}"
    data = event.get("data") or {}
    columns = [
        str(event.get("time", "-")),
        str(event.get("type", "-")),
        attributes.get(events.ATTR_STATUS, "-"),
        attributes.get(events.ATTR_CATEGORY, "-"),
        attributes.get(events.ATTR_BAND, "-"),
        attributes.get(events.ATTR_SKU, "-"),
        *([f"attrs={compact(final)}"] if isinstance(final := data.get(events.FINAL_ATTRIBUTES), Mapping) and final else []),
        f"record={data.get('id', '-')}",
        f"id={event.get('id', '-')}",
    ]
    return "  ".join(columns)


def as_json(event: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
    """One JSON line: the event with its message attributes under ``attributes``."""
    return json.dumps({**event, "attributes": dict(attributes)}, ensure_ascii=False, sort_keys=True)
