"""The bridge's other source of events: where no Pub/Sub emulator exists, find
new object generations by listing the incoming bucket.

Every ``interval`` seconds :class:`ListingSource` lists the bucket's live
objects (name and generation) and hands each object version it has not
delivered yet, oldest first, to the bridge's delivery callback as a
:class:`ListedNotification`: the same attributes and JSON_API_V1 payload a
Cloud Storage OBJECT_FINALIZE notification carries, so the bridge maps and
retries it exactly as one pulled from Pub/Sub. ``ack()`` (delivered or
dead-lettered) records the version in a :class:`DeliveredLog`; ``nack()``
(the bridge is stopping) leaves it for the next poll.

The :class:`DeliveredLog` is a JSON-lines file in the stack's state folder,
so a restarted bridge does not deliver again what it already delivered (a
redelivery would be harmless, the function is idempotent, but wasteful).
Versions that have left the bucket are forgotten, and the file rewritten,
on the next poll: a generation number is never reused, so a gone version
cannot come back.

What listing cannot see: an object version overwritten or deleted between
two polls is never delivered (a notification would have been, and the
function would have recorded it as ``skipped``); metadata updates, deletes
and archives produce no events here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("localcloud.listing")

#: (name, generation): one object version of the listed bucket
Version = tuple[str, int]


class DeliveredLog:
    """The object versions of one bucket the bridge has delivered (or dead-lettered).

    Persisted as JSON lines ``{"bucket", "name", "generation"}`` in ``path``
    (appended on each :meth:`add`, rewritten by :meth:`forget_all_but`);
    ``path`` None keeps it in memory only. Lines of other buckets and
    unreadable lines are ignored. Thread-safe."""

    def __init__(self, path: Path | None, bucket: str) -> None:
        self.path = path
        self.bucket = bucket
        self._lock = threading.Lock()
        self._versions: set[Version] = set()
        if path is not None and path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    if entry["bucket"] == bucket:
                        self._versions.add((str(entry["name"]), int(entry["generation"])))
                except (ValueError, KeyError, TypeError):
                    continue

    def __contains__(self, version: Version) -> bool:
        with self._lock:
            return version in self._versions

    def __len__(self) -> int:
        with self._lock:
            return len(self._versions)

    def add(self, version: Version) -> None:
        """Remember ``version`` (and append it to the file)."""
        with self._lock:
            if version in self._versions:
                return
            self._versions.add(version)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as out:
                    out.write(self._line(version))

    def forget_all_but(self, live: set[Version]) -> int:
        """Forget the versions not in ``live`` (they left the bucket) and
        rewrite the file atomically when any were; returns how many."""
        with self._lock:
            gone = self._versions - live
            if not gone:
                return 0
            self._versions -= gone
            if self.path is not None:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text("".join(self._line(v) for v in sorted(self._versions)))
                tmp.replace(self.path)
            return len(gone)

    def _line(self, version: Version) -> str:
        name, generation = version
        return json.dumps({"bucket": self.bucket, "name": name, "generation": str(generation)}, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class ListedObject:
    """One live object version as listed: the JSON API object resource."""

    resource: dict[str, Any]

    @property
    def version(self) -> Version:
        return (self.resource["name"], int(self.resource["generation"]))

    @property
    def created(self) -> datetime | None:
        text = self.resource.get("timeCreated") or self.resource.get("updated")
        try:
            moment = datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def resource_of(blob: Any) -> dict[str, Any]:
    """The JSON API object resource of a google-cloud-storage ``Blob`` from a
    listing, built from its public properties (``generation``, ``size`` and
    ``metageneration`` as strings, times in RFC 3339)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None

    resource = {
        "kind": "storage#object",
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "metageneration": str(blob.metageneration or 1),
        "contentType": blob.content_type,
        "size": str(blob.size) if blob.size is not None else None,
        "md5Hash": blob.md5_hash,
        "crc32c": blob.crc32c,
        "storageClass": blob.storage_class,
        "timeCreated": iso(blob.time_created),
        "updated": iso(blob.updated),
        "metadata": blob.metadata,
    }
    return {key: value for key, value in resource.items() if value is not None}


class ListedNotification:
    """A listed object version in the shape of a pulled Pub/Sub message (what
    :meth:`localcloud.bridge.Bridge.handle` takes): ``data`` (JSON_API_V1),
    ``attributes`` (those of OBJECT_FINALIZE), ``message_id`` (stable for the
    version, so a redelivery keeps its CloudEvent id), ``publish_time`` (the
    object's creation time: the bridge's ``--max-age`` counts from it)."""

    def __init__(self, listed: ListedObject, on_ack: Callable[[], None], on_nack: Callable[[], None]) -> None:
        resource = listed.resource
        self.data = json.dumps(resource, ensure_ascii=False).encode()
        self.publish_time = listed.created
        event_time = self.publish_time.strftime("%Y-%m-%dT%H:%M:%SZ") if self.publish_time else None
        self.attributes = {
            "bucketId": resource["bucket"],
            "objectId": resource["name"],
            "objectGeneration": str(resource["generation"]),
            "eventType": "OBJECT_FINALIZE",
            "payloadFormat": "JSON_API_V1",
            **({"eventTime": event_time} if event_time else {}),
        }
        key = f"gs://{resource['bucket']}/{resource['name']}#{resource['generation']}"
        self.message_id = "listing-" + hashlib.sha256(key.encode()).hexdigest()[:32]
        self._on_ack, self._on_nack = on_ack, on_nack

    def ack(self) -> None:
        self._on_ack()

    def nack(self) -> None:
        self._on_nack()


class ListingSource:
    """Polls ``list_objects()`` every ``interval`` seconds and hands each new
    object version to ``deliver`` on a pool of ``workers`` threads (the rest
    queue; a version queued or in flight is not handed out again).

    ``list_objects`` returns the bucket's live objects as
    :class:`ListedObject`; a failing listing (storage down) is logged and
    tried again at the next poll."""

    def __init__(
        self,
        list_objects: Callable[[], Iterable[ListedObject]],
        deliver: Callable[[ListedNotification], None],
        delivered: DeliveredLog,
        *,
        interval: float = 1.0,
        workers: int = 4,
    ) -> None:
        self.list_objects = list_objects
        self.deliver = deliver
        self.delivered = delivered
        self.interval = interval
        self.workers = max(1, workers)
        self._in_flight: set[Version] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failed_polls = 0

    def poll(self) -> list[Version]:
        """One listing: queue each new version that is not queued or in
        flight yet, oldest first, for delivery; forget delivered versions
        that left the bucket. Returns the versions queued."""
        listed = list(self.list_objects())
        self.polls += 1
        self.delivered.forget_all_but({item.version for item in listed})
        fresh = [item for item in listed if item.version not in self.delivered]
        fresh.sort(key=lambda item: (item.created or datetime.max.replace(tzinfo=UTC), item.version))
        handed = []
        for item in fresh:
            version = item.version
            with self._lock:
                if version in self._in_flight:
                    continue
                self._in_flight.add(version)
            message = ListedNotification(item, lambda v=version: self._acked(v), lambda v=version: self._nacked(v))
            self._submit(message)
            handed.append(version)
        return handed

    def _submit(self, message: ListedNotification) -> None:
        if self._pool is None:  # used without start(): deliver in this thread
            self.deliver(message)
        else:
            self._pool.submit(self.deliver, message)

    def _acked(self, version: Version) -> None:
        self.delivered.add(version)
        with self._lock:
            self._in_flight.discard(version)

    def _nacked(self, version: Version) -> None:
        with self._lock:
            self._in_flight.discard(version)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def start(self) -> None:
        """Poll on a background thread until :meth:`stop`."""
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deliver")
        self._thread = threading.Thread(target=self._run, name="listing", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # storage unreachable for a moment: try again at the next poll
                self.failed_polls += 1
                log.warning("listing the bucket failed; trying again", exc_info=True)
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait for the deliveries in flight (each acks or nacks)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def bucket_lister(storage_url: str, project: str, bucket: str, timeout: float = 30.0) -> Callable[[], list[ListedObject]]:
    """``list_objects`` for :class:`ListingSource`: the live objects of
    ``bucket`` on the storage emulator at ``storage_url``, through
    google-cloud-storage, each HTTP request given up after ``timeout`` s
    (raises GoogleAPIError or a requests error when it is unreachable)."""
    from localcloud.clients import storage_client

    client = storage_client(storage_url, project)

    def list_objects() -> list[ListedObject]:
        # no client-side retry (it would wait up to 2 minutes on a dead emulator): the next poll is the retry
        blobs = client.list_blobs(bucket, retry=None, timeout=timeout)
        return [ListedObject(resource_of(blob)) for blob in blobs]

    return list_objects
