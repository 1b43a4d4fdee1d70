"""The local Eventarc stand-in: Cloud Storage notifications (from a Pub/Sub
emulator subscription) in, ``google.cloud.storage.object.v1.*`` CloudEvents
(binary content mode) POSTed to a function out.

Like Eventarc it retries a failed delivery (non-2xx or no answer) with
exponential backoff, and acknowledges the notification only once the function
accepted the event; after ``--max-attempts`` or ``--max-age`` the
notification goes to a dead-letter file (JSON lines) and is acknowledged.

Where no Pub/Sub emulator exists (``--source listing``, or ``auto`` without
``--pubsub-host``), the notifications come from listing the incoming bucket
instead (localcloud/listing.py): each new object version is delivered once,
and what was delivered is remembered in ``--delivered-file``.

    python -m localcloud.bridge --pubsub-host 127.0.0.1:8085 --project demo-fashion \\
        --subscription storage-incoming-bridge --target http://127.0.0.1:8087/
    python -m localcloud.bridge --source listing --storage-url http://127.0.0.1:9023 --bucket demo-fashion-incoming \\
        --project demo-fashion --target http://127.0.0.1:8087/ --delivered-file build/stack/bridge-delivered.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from localcloud.pull_worker import PullWorker, configure_process_logging

log = logging.getLogger("localcloud.bridge")

#: Cloud Storage notification eventType -> CloudEvent type
EVENT_TYPES = {
    "OBJECT_FINALIZE": "google.cloud.storage.object.v1.finalized",
    "OBJECT_DELETE": "google.cloud.storage.object.v1.deleted",
    "OBJECT_ARCHIVE": "google.cloud.storage.object.v1.archived",
    "OBJECT_METADATA_UPDATE": "google.cloud.storage.object.v1.metadataUpdated",
}
_UPDATE_TIMED = {"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE"}


class NotificationError(ValueError):
    """A Pub/Sub message that is not a usable Cloud Storage notification."""


# --------------------------------------------------------------------------
# The mapping (pure)


@dataclass(frozen=True)
class CloudEventRequest:
    """An HTTP request carrying one CloudEvent in binary content mode."""

    headers: dict[str, str]
    data: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()

    def describe(self) -> dict[str, Any]:
        """Fields for log records."""
        return {
            "event_id": self.headers["ce-id"],
            "event_type": self.headers["ce-type"],
            "bucket": self.data.get("bucket"),
            "object_name": self.data.get("name"),
            "generation": self.data.get("generation"),
        }


def to_cloudevent(
    data: bytes, attributes: Mapping[str, str], message_id: str, publish_time: datetime | str | None = None
) -> CloudEventRequest:
    """Turn a Cloud Storage notification (payload format JSON_API_V1 or NONE)
    into the CloudEvent Eventarc would deliver for it.

    ``ce-id`` is the Pub/Sub message id, so a redelivered notification keeps
    its event id. ``ce-time`` is the object's ``updated`` time for finalize
    and metadata updates, else the notification's ``eventTime``, else the
    publish time. The body is the object resource with ``generation``,
    ``metageneration`` and ``size`` as strings and ``id`` as
    ``bucket/name/generation``.
    """
    kind = attributes.get("eventType", "")
    if kind not in EVENT_TYPES:
        raise NotificationError(f"unsupported or missing eventType {kind!r}")
    resource = _parse_payload(data)
    bucket = resource.get("bucket") or attributes.get("bucketId")
    name = resource.get("name") or attributes.get("objectId")
    if not bucket or not name:
        raise NotificationError("the notification names no bucket or object")
    generation = str(resource.get("generation") or attributes.get("objectGeneration") or "")

    body = {"kind": "storage#object", **resource, "bucket": bucket, "name": name}
    if generation:
        body["generation"] = generation
    body["id"] = f"{bucket}/{name}/{generation}" if generation else f"{bucket}/{name}"
    body["metageneration"] = str(resource.get("metageneration") or "1")
    if "size" in body:
        body["size"] = str(body["size"])

    time_text = (body.get("updated") if kind in _UPDATE_TIMED else None) or attributes.get("eventTime") or publish_time
    headers = {
        "ce-id": str(message_id),
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-specversion": "1.0",
        "ce-type": EVENT_TYPES[kind],
        "ce-subject": f"objects/{header_safe(name)}",
        "ce-time": rfc3339(time_text),
        "content-type": "application/json; charset=utf-8",
    }
    return CloudEventRequest(headers=headers, data=body)


def _parse_payload(data: bytes) -> dict[str, Any]:
    if not data:
        return {}  # payload format NONE: everything is in the attributes
    try:
        resource = json.loads(data)
    except ValueError as exc:
        raise NotificationError(f"the payload is not JSON: {exc}") from exc
    if not isinstance(resource, dict):
        raise NotificationError("the payload is not a JSON object")
    return resource


def header_safe(text: str) -> str:
    """``text`` unchanged when it is printable ASCII, else with non-ASCII,
    control characters and ``%`` percent-encoded (UTF-8), as the CloudEvents
    HTTP binding asks. The object name itself is always in the body."""
    if all(" " <= ch <= "~" for ch in text):
        return text
    return "".join(ch if " " <= ch <= "~" and ch != "%" else quote(ch, safe="") for ch in text)


def rfc3339(value: datetime | str | None) -> str:
    """A UTC RFC 3339 timestamp with microseconds and ``Z``; now for None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    value = value or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts; 0 disables a limit."""

    initial: float = 1.0
    maximum: float = 60.0
    multiplier: float = 2.0
    max_attempts: int = 12
    max_age: float = 900.0  # seconds since the notification was published

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.initial * self.multiplier ** max(attempt - 1, 0), self.maximum)

    def gives_up(self, attempts: int, age: float) -> bool:
        """After ``attempts`` failed attempts, ``age`` seconds after publication."""
        return (self.max_attempts > 0 and attempts >= self.max_attempts) or (self.max_age > 0 and age >= self.max_age)


# --------------------------------------------------------------------------
# Delivery


@dataclass(frozen=True)
class ListingConfig:
    """Where the listing source looks: the storage emulator's URL, the bucket,
    seconds between listings, and the file remembering what was delivered
    (None: in memory only)."""

    storage_url: str
    bucket: str
    interval: float = 1.0
    delivered_file: Path | None = None


@dataclass(frozen=True)
class BridgeConfig:
    """``pubsub_host`` and ``subscription`` for the Pub/Sub source, or
    ``listing`` for the listing source (then the Pub/Sub fields are unused)."""

    pubsub_host: str | None
    project: str
    subscription: str | None
    target: str
    dead_letter: Path | None = None
    retry: RetryPolicy = RetryPolicy()
    workers: int = 4
    timeout: float = 60.0
    listing: ListingConfig | None = None

    @property
    def source(self) -> str:
        return "listing" if self.listing is not None else "pubsub"


@dataclass
class Outcome:
    ok: bool
    detail: str


def post(request: CloudEventRequest, url: str, timeout: float) -> Outcome:
    """One delivery attempt: 2xx is success, anything else (or no answer) a failure."""
    import requests

    try:
        response = requests.post(url, data=request.body, headers=request.headers, timeout=timeout)
    except requests.RequestException as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")
    detail = f"HTTP {response.status_code}"
    if not response.ok:
        detail += f": {response.text[:200]}"
    return Outcome(200 <= response.status_code < 300, detail)


@dataclass
class Bridge(PullWorker):
    """Pulls notifications with a streaming pull and delivers each on a small
    thread pool (so several events can be in flight at once)."""

    log: ClassVar[logging.Logger] = log
    unexpected_error: ClassVar[str] = "unexpected error handling a notification"
    stopped: ClassVar[str] = "bridge stopped"

    config: BridgeConfig
    send: Callable[[CloudEventRequest, str, float], Outcome] = post
    _listing: Any = None

    def _handle(self, message: Any) -> None:
        attributes = dict(message.attributes)
        try:
            request = to_cloudevent(message.data, attributes, message.message_id, message.publish_time)
        except NotificationError as exc:
            self._dead_letter(message, attributes, None, str(exc), attempts=0)
            self._ack(message, "dead_lettered")
            return
        fields = request.describe()
        attempt = 0
        while True:
            attempt += 1
            sent = time.perf_counter()
            outcome = self.send(request, self.config.target, self.config.timeout)
            latency_ms = round((time.perf_counter() - sent) * 1000, 1)
            if outcome.ok:
                log.info(
                    "event delivered",
                    extra={**fields, "attempt": attempt, "status": outcome.detail, "latency_ms": latency_ms},
                )
                self._ack(message, "delivered")
                return
            age = _age(message.publish_time)
            if self.config.retry.gives_up(attempt, age):
                log.error(
                    "event dead-lettered after %d attempts",
                    attempt,
                    extra={**fields, "attempt": attempt, "status": outcome.detail, "age_s": round(age, 1)},
                )
                self._dead_letter(message, attributes, request, outcome.detail, attempts=attempt)
                self._ack(message, "dead_lettered")
                return
            delay = self.config.retry.delay(attempt)
            self._count("retries")
            log.warning(
                "event delivery failed, retrying",
                extra={**fields, "attempt": attempt, "status": outcome.detail, "retry_in_s": delay},
            )
            if self._stop.wait(delay):
                log.info("stopping: event left for redelivery", extra=fields)
                message.nack()
                return

    def _ack(self, message: Any, outcome: str) -> None:
        message.ack()
        self._count(outcome, "acked")

    def _dead_letter(
        self, message: Any, attributes: dict[str, str], request: CloudEventRequest | None, reason: str, attempts: int
    ) -> None:
        entry = {
            "time": rfc3339(None),
            "reason": reason,
            "attempts": attempts,
            "message_id": message.message_id,
            "attributes": attributes,
            "data": message.data.decode("utf-8", errors="replace"),
            "event": {"headers": request.headers, "data": request.data} if request else None,
        }
        log.error("notification dead-lettered: %s", reason, extra={"message_id": message.message_id})
        if self.config.dead_letter is None:
            return
        with self._lock:
            self.config.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with self.config.dead_letter.open("a") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def start(self) -> None:
        """Open the streaming pull (or start listing the bucket); messages are
        handled on ``workers`` threads."""
        if self.config.listing is not None:
            self._start_listing(self.config.listing)
            return
        path = self._subscribe(
            self.config.pubsub_host,
            self.config.project,
            self.config.subscription,
            workers=self.config.workers,
            lease=max(3600, int(self.config.retry.max_age) + 300),
            threads="deliver",
        )
        workers = max(1, self.config.workers)
        log.info("bridge started", extra={"subscription": path, "target": self.config.target, "workers": workers})

    def _start_listing(self, listing: ListingConfig) -> None:
        from localcloud.listing import DeliveredLog, ListingSource, bucket_lister

        delivered = DeliveredLog(listing.delivered_file, listing.bucket)
        lister = bucket_lister(listing.storage_url, self.config.project, listing.bucket)
        self._listing = ListingSource(lister, self.handle, delivered, interval=listing.interval, workers=self.config.workers)
        self._listing.start()
        log.info(
            "bridge started",
            extra={
                "source": "listing",
                "bucket": listing.bucket,
                "poll_interval_s": listing.interval,
                "remembered": len(delivered),
                "target": self.config.target,
                "workers": self._listing.workers,
            },
        )

    def stop(self) -> None:
        """Stop listing the bucket, or end the streaming pull."""
        self._stop.set()
        if self._listing is not None:
            self._listing.stop()
            self._listing = None
        super().stop()


def _age(publish_time: datetime | None) -> float:
    if publish_time is None:
        return 0.0
    if publish_time.tzinfo is None:
        publish_time = publish_time.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - publish_time).total_seconds())


# --------------------------------------------------------------------------
# Command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m localcloud.bridge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--source",
        choices=("auto", "pubsub", "listing"),
        default="auto",
        help="where notifications come from: a Pub/Sub subscription, or listing the bucket; auto: pubsub when "
        "--pubsub-host is given, else listing (default %(default)s)",
    )
    p.add_argument("--pubsub-host", help="the Pub/Sub emulator, host:port (pubsub source)")
    p.add_argument("--project", required=True)
    p.add_argument("--subscription", help="subscription id on the storage notifications topic (pubsub source)")
    p.add_argument("--storage-url", help="the storage emulator, http://host:port (listing source)")
    p.add_argument("--bucket", help="the bucket to list (listing source)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="s between listings (default %(default)s)")
    p.add_argument("--delivered-file", type=Path, help="JSON-lines file remembering the delivered versions (listing source)")
    p.add_argument("--target", required=True, help="URL of the CloudEvent function")
    p.add_argument("--dead-letter", type=Path, help="JSON-lines file for notifications given up on")
    p.add_argument("--min-backoff", type=float, default=RetryPolicy.initial, help="first retry delay, s (default %(default)s)")
    p.add_argument("--max-backoff", type=float, default=RetryPolicy.maximum, help="longest retry delay, s (default %(default)s)")
    p.add_argument("--max-attempts", type=int, default=RetryPolicy.max_attempts, help="0: unlimited (default %(default)s)")
    p.add_argument(
        "--max-age", type=float, default=RetryPolicy.max_age, help="s after publication, 0: unlimited (default %(default)s)"
    )
    p.add_argument("--workers", type=int, default=4, help="events delivered concurrently (default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout per attempt, s (default %(default)s)")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> BridgeConfig:
    """The configuration the arguments describe; raises ValueError naming
    what the chosen source lacks."""
    retry = RetryPolicy(initial=args.min_backoff, maximum=args.max_backoff, max_attempts=args.max_attempts, max_age=args.max_age)
    source = args.source if args.source != "auto" else ("pubsub" if args.pubsub_host else "listing")
    listing = None
    if source == "pubsub" and not (args.pubsub_host and args.subscription):
        raise ValueError("the pubsub source needs --pubsub-host and --subscription")
    if source == "listing":
        if not (args.storage_url and args.bucket):
            raise ValueError("the listing source needs --storage-url and --bucket")
        if args.poll_interval <= 0:
            raise ValueError("--poll-interval must be positive")
        listing = ListingConfig(args.storage_url, args.bucket, args.poll_interval, args.delivered_file)
    return BridgeConfig(
        pubsub_host=args.pubsub_host,
        project=args.project,
        subscription=args.subscription,
        target=args.target,
        dead_letter=args.dead_letter,
        retry=retry,
        workers=args.workers,
        timeout=args.timeout,
        listing=listing,
    )


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        cli.error(str(exc))
    configure_process_logging(args.log_level)
    return Bridge(config).serve()


if __name__ == "__main__":
    sys.exit(main())
