"""The local stand-in of the events push subscription: completion events
(``shared/result_events.py``) from a Pub/Sub emulator subscription, POSTed to
a webhook URL.

Like the cloud's push subscription (``terraform/events.tf``: no wrapper, so
the request body is the CloudEvent itself in structured JSON mode,
``Content-Type: application/cloudevents+json``), a delivery succeeds on any
2xx answer; otherwise it is retried with exponential backoff
(``--min-backoff`` doubling to ``--max-backoff``), and after
``--max-attempts`` attempts the message goes to the dead-letter topic
(``--dead-letter-topic``, attributes kept plus ``delivery_attempts`` and
``last_error``) and is acknowledged.

    python -m localcloud.event_push --pubsub-host 127.0.0.1:8085 --project demo-fashion \\
        --subscription fashion-events-webhook --target http://127.0.0.1:9000/hook \\
        --dead-letter-topic fashion-events-dead-letter
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from localcloud.bridge import RetryPolicy
from localcloud.pull_worker import PullWorker, configure_process_logging

log = logging.getLogger("localcloud.event_push")

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True)
class PushConfig:
    """Where events come from and go: the emulator, the subscription on the
    events topic, the webhook URL, the dead-letter topic id (None: dropped
    with an error log), the retry policy, HTTP timeout (s) and workers."""

    pubsub_host: str
    project: str
    subscription: str
    target: str
    dead_letter_topic: str | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(initial=1.0, maximum=60.0, max_attempts=5, max_age=0.0))
    timeout: float = 30.0
    workers: int = 2


@dataclass(frozen=True)
class Answer:
    ok: bool
    detail: str  # "HTTP 204", or the connection error


def post(target: str, body: bytes, timeout: float) -> Answer:
    """POST one event; ok on 2xx."""
    import requests

    try:
        response = requests.post(target, data=body, headers={"Content-Type": CONTENT_TYPE}, timeout=timeout)
    except requests.RequestException as exc:
        return Answer(False, f"{type(exc).__name__}: {exc}")
    return Answer(200 <= response.status_code < 300, f"HTTP {response.status_code}")


@dataclass
class EventPusher(PullWorker):
    """Streaming pull on ``config.subscription``; each message POSTed until
    accepted or dead-lettered."""

    log: ClassVar[logging.Logger] = log
    unexpected_error: ClassVar[str] = "unexpected error pushing an event"
    stopped: ClassVar[str] = "event push stopped"

    config: PushConfig
    send: Callable[[str, bytes, float], Answer] = post
    _publisher: Any = None

    def _handle(self, message: Any) -> None:
        attributes = dict(message.attributes)
        fields = {"message_id": message.message_id, "event_type": attributes.get("type"), "target": self.config.target}
        attempt = 0
        while True:
            attempt += 1
            answer = self.send(self.config.target, message.data, self.config.timeout)
            if answer.ok:
                log.info("event pushed", extra=fields | {"attempt": attempt, "status": answer.detail})
                self._count("delivered")
                message.ack()
                return
            if self.config.retry.gives_up(attempt, 0.0):
                self._dead_letter(message.data, attributes, attempt, answer.detail, fields)
                self._count("dead_lettered")
                message.ack()
                return
            delay = self.config.retry.delay(attempt)
            self._count("retries")
            log.warning(
                "event push failed, retrying", extra=fields | {"attempt": attempt, "status": answer.detail, "retry_in_s": delay}
            )
            if self._stop.wait(delay):
                message.nack()
                return

    def _dead_letter(self, data: bytes, attributes: Mapping[str, str], attempts: int, reason: str, fields: dict) -> None:
        log.error("event dead-lettered after %d attempts: %s", attempts, reason, extra=fields | {"attempt": attempts})
        if not self.config.dead_letter_topic or self._publisher is None:
            return
        topic = self._publisher.topic_path(self.config.project, self.config.dead_letter_topic)
        extra = {"delivery_attempts": str(attempts), "last_error": reason[:1024]}
        self._publisher.publish(topic, data, **dict(attributes), **extra).result(timeout=30)

    def start(self) -> None:
        """Open the publisher of the dead-letter topic (when one is named) and the streaming pull."""
        from localcloud.clients import publisher_client

        self._publisher = publisher_client(self.config.pubsub_host) if self.config.dead_letter_topic else None
        path = self._subscribe(
            self.config.pubsub_host,
            self.config.project,
            self.config.subscription,
            workers=self.config.workers,
            lease=3600,
            threads="push",
        )
        log.info("event push started", extra={"subscription": path, "target": self.config.target})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m localcloud.event_push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pubsub-host", required=True, help="the Pub/Sub emulator, host:port")
    p.add_argument("--project", required=True)
    p.add_argument("--subscription", required=True, help="subscription id on the events topic")
    p.add_argument("--target", required=True, help="the webhook URL")
    p.add_argument("--dead-letter-topic", help="topic id for events given up on")
    p.add_argument("--min-backoff", type=float, default=1.0, help="first retry delay, s (default %(default)s)")
    p.add_argument("--max-backoff", type=float, default=60.0, help="longest retry delay, s (default %(default)s)")
    p.add_argument("--max-attempts", type=int, default=5, help="attempts before the dead-letter topic (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout per attempt, s (default %(default)s)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_attempts < 1 or args.min_backoff < 0 or args.max_backoff < args.min_backoff:
        parser().error("--max-attempts must be >= 1 and 0 <= --min-backoff <= --max-backoff")
    configure_process_logging(args.log_level)
    retry = RetryPolicy(initial=args.min_backoff, maximum=args.max_backoff, max_attempts=args.max_attempts, max_age=0.0)
    config = PushConfig(
        args.pubsub_host, args.project, args.subscription, args.target, args.dead_letter_topic, retry, args.timeout
    )
    return EventPusher(config).serve()


if __name__ == "__main__":
    sys.exit(main())
