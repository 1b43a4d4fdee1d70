"""The fault-injection lab: fake-gcs-server and the Firestore emulator, each
behind a :class:`~tests.reliability.proxy.TcpProxy` the tests can cut, and
classify functions (functions-framework, the real ``functions/main.py``)
that reach both through the proxies.

- :meth:`FaultLab.start_faulty` starts one instance with ``FAILPOINTS`` set
  (functions/failpoints.py): it crashes or pauses at the named step.
- :attr:`FaultLab.healthy` is an instance without failpoints: the "restarted
  function" a redelivered event lands on.
- :meth:`FaultLab.redeliver` posts the same CloudEvent (same ``ce-id``) until
  it is accepted, with backoff, as Eventarc retries a failed delivery.
- :meth:`FaultLab.sweep` runs the scheduled sweep (functions/sweep.py).
- :func:`check_invariants` states what must hold after recovery.

Leases and dependency deadlines are short here (``LEASE_SECONDS``,
``DEPENDENCY_DEADLINE_SECONDS``), so that a crashed delivery's lease expires,
and a delivery facing a dead dependency gives up, within seconds.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

import localcloud
from shared import records as rec
from shared.settings import Settings
from tests.cloudevents import post_storage_event
from tests.pipeline.conftest import INCOMING, PROCESSED, REPO, emulated_cloud, function_env
from tests.reliability.proxy import TcpProxy

LEASE_SECONDS = 2.0
DEPENDENCY_DEADLINE_SECONDS = 2.0
SOURCE = REPO / "functions" / "main.py"


@dataclass(frozen=True)
class Upload:
    name: str
    generation: int
    md5: str  # base64, as Cloud Storage reports it
    size: int
    content_type: str = "image/jpeg"

    @property
    def doc_id(self) -> str:
        return rec.classification_id(INCOMING, self.name, self.generation)


@dataclass
class FaultLab:
    logs: Path
    storage_url: str  # fake-gcs-server itself (the tests' own clients)
    firestore_host: str
    storage_proxy: TcpProxy
    firestore_proxy: TcpProxy
    env: dict[str, str]  # the function's environment (through the proxies)
    healthy: localcloud.Proc | None = None
    uploads: list[Upload] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    # -- clients (past the proxies) ---------------------------------------

    def storage(self) -> Any:
        return localcloud.storage_client(self.storage_url, localcloud.PROJECT)

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project=localcloud.PROJECT, credentials=AnonymousCredentials())

    def incoming(self) -> list[str]:
        return [b.name for b in self.storage().list_blobs(INCOMING)]

    def proxy(self, component: str) -> TcpProxy:
        return {"storage": self.storage_proxy, "firestore": self.firestore_proxy}[component]

    # -- functions ---------------------------------------------------------

    def start_function(self, name: str, failpoints: str = "") -> localcloud.Proc:
        port = localcloud.free_port()
        env = self.env | {"FAILPOINTS": failpoints}
        proc = localcloud.start_functions_framework(
            SOURCE, "classify_upload", "cloudevent", port, self.logs, env, name, f"http://{localcloud.HOST}:{port}/"
        )
        localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
        return proc

    def start_faulty(self, failpoints: str) -> localcloud.Proc:
        return self.start_function(f"faulty-{next(self._names)}", failpoints)

    # -- events ------------------------------------------------------------

    def upload(self, name: str, data: bytes) -> Upload:
        blob = self.storage().bucket(INCOMING).blob(name)
        blob.upload_from_string(data, content_type="image/jpeg")
        upload = Upload(name, int(blob.generation), base64.b64encode(hashlib.md5(data).digest()).decode(), len(data))
        self.uploads.append(upload)
        return upload

    def redeliver(self, upload: Upload, event_id: str, timeout: float = 60.0) -> list[int | str]:
        """Post the event to the healthy instance until it answers 2xx, with
        backoff (0.25 s doubling to 2 s), as Eventarc retries; returns every
        answer (an HTTP status, or the connection error's name)."""
        assert self.healthy is not None and self.healthy.url
        answers: list[int | str] = []
        delay, deadline = 0.25, time.monotonic() + timeout
        while True:
            try:
                status = post_event(self.healthy.url, upload, event_id).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers.append(status)
            if isinstance(status, int) and 200 <= status < 300:
                return answers
            if time.monotonic() > deadline:
                raise AssertionError(f"{upload.name}: the redelivered event was never accepted: {answers}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def sweep(self, min_age: float = 0.0) -> dict[str, int]:
        """One sweep run (the scheduler's call), in this process, straight to
        the emulators; returns its counts."""
        from functions import wiring
        from functions.sweep import SweepOptions

        settings = Settings.from_env(
            self.env | {"FAILPOINTS": "", "MODEL_CACHE_DIR": str(self.logs / "sweep-model-cache"), "MODEL_REFRESH_SECONDS": "60"}
        )
        components = wiring.build(settings, storage=self.storage(), db=self.firestore())
        report = wiring.sweeper(components).run(SweepOptions(min_age=min_age, budget=60.0))
        return report.to_dict()["counts"]


def post_event(url: str, upload: Upload, event_id: str, timeout: float = 60.0) -> requests.Response:
    """What Eventarc sends for an upload: a binary-mode CloudEvent."""
    return post_storage_event(
        url,
        bucket=INCOMING,
        name=upload.name,
        generation=upload.generation,
        content_type=upload.content_type,
        size=upload.size,
        event_id=event_id,
        timeout=timeout,
    )


def new_event_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def fault_lab(logs: Path, model_dir: Path) -> Iterator[FaultLab]:
    """The emulators with the tiny model published, a proxy in front of each,
    and a healthy function instance."""
    with emulated_cloud(logs, model_dir) as (storage_url, firestore_host):
        storage_port = urlsplit(storage_url).port
        firestore_port = int(firestore_host.rsplit(":", 1)[1])
        assert storage_port is not None
        storage_proxy = TcpProxy(localcloud.HOST, storage_port)
        firestore_proxy = TcpProxy(localcloud.HOST, firestore_port)
        env = function_env(f"http://{storage_proxy.address}", firestore_proxy.address, logs / "model-cache")
        env |= {"LEASE_SECONDS": str(LEASE_SECONDS), "DEPENDENCY_DEADLINE_SECONDS": str(DEPENDENCY_DEADLINE_SECONDS)}
        lab = FaultLab(logs, storage_url, firestore_host, storage_proxy, firestore_proxy, env)
        try:
            lab.healthy = lab.start_function("healthy")
            yield lab
        finally:
            if lab.healthy is not None:
                localcloud.stop(lab.healthy)
            storage_proxy.close()
            firestore_proxy.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return result


def places(lab: FaultLab, upload: Upload) -> list[str]:
    """Where ``upload``'s bytes are now (md5 checked): ``incoming`` (that
    generation), and/or ``processed:<name>`` for each copy."""
    storage = lab.storage()
    found = []
    source = storage.bucket(INCOMING).get_blob(upload.name, generation=upload.generation)
    if source is not None and source.md5_hash == upload.md5:
        found.append("incoming")
    for blob in storage.list_blobs(PROCESSED):
        meta = blob.metadata or {}
        if meta.get("source-name") == upload.name and meta.get("source-generation") == str(upload.generation):
            assert blob.md5_hash == upload.md5, f"{blob.name}: other bytes than {upload.name}"
            found.append(f"processed:{blob.name}")
    return found


def check_invariants(lab: FaultLab, uploads: list[Upload] | None = None) -> dict[str, dict]:
    """What recovery must leave, for every upload so far (or ``uploads``):

    - it is no longer in incoming: it is in exactly one place, the processed
      bucket;
    - exactly one ``classifications`` document names its bucket, name and
      generation, finished (classified, needs_review or rejected), with
      every contract field, and its destination holds the same bytes (md5
      and content, read back);
    - no processed object is a duplicate: one object per upload, and no
      object whose source has no record;
    - the per-day counters counted each finished record once.

    Returns the records by object name."""
    uploads = lab.uploads if uploads is None else uploads
    from tests.pipeline.conftest import CONTRACT_FIELDS

    storage, db = lab.storage(), lab.firestore()
    wanted = {(u.name, str(u.generation)): u for u in uploads}
    left = {b.name for b in storage.list_blobs(INCOMING)} & {u.name for u in uploads}
    assert not left, f"still in incoming after recovery: {sorted(left)}"

    documents = [d.to_dict() | {"id": d.id} for d in db.collection(rec.COLLECTION).stream()]
    by_source: dict[tuple[str, str], list[dict]] = {}
    for document in documents:
        source = document.get("source") or {}
        by_source.setdefault((source.get("name"), str(source.get("generation"))), []).append(document)
    processed = list(storage.list_blobs(PROCESSED))
    copies: dict[tuple[str, str], list[Any]] = {}
    for blob in processed:
        meta = blob.metadata or {}
        copies.setdefault((meta.get("source-name"), meta.get("source-generation")), []).append(blob)

    records = {}
    for key, upload in wanted.items():
        found = by_source.get(key, [])
        assert len(found) == 1, f"{upload.name}: {len(found)} records, expected exactly one: {found}"
        (record,) = found
        assert record["id"] == upload.doc_id
        assert record["status"] in (rec.CLASSIFIED, rec.NEEDS_REVIEW, rec.REJECTED), f"{upload.name}: {record}"
        assert set(record) >= CONTRACT_FIELDS, f"{upload.name}: lacks {CONTRACT_FIELDS - set(record)}"
        placed = copies.get(key, [])
        assert len(placed) == 1, f"{upload.name}: {len(placed)} processed copies: {[b.name for b in placed]}"
        (copy,) = placed
        assert record["destination"] == {"bucket": PROCESSED, "name": copy.name}, f"{upload.name}: {record['destination']}"
        assert copy.md5_hash == upload.md5 and copy.size == upload.size, f"{upload.name}: bytes differ at {copy.name}"
        data = storage.bucket(PROCESSED).blob(copy.name).download_as_bytes()
        assert base64.b64encode(hashlib.md5(data).digest()).decode() == upload.md5
        records[upload.name] = record

    orphans = [
        b.name
        for b in processed
        if (b.metadata or {}).get("source-name") is not None
        and not by_source.get(((b.metadata or {}).get("source-name"), (b.metadata or {}).get("source-generation")))
    ]
    assert not orphans, f"processed objects with no record: {orphans}"
    finished = sum(1 for d in documents if d.get("status") in rec.FINISHED)
    assert counted(db) == finished, f"counters say {counted(db)}, {finished} finished records"
    return records


def counted(db: Any) -> int:
    """The ``total`` of today's and yesterday's counter shards, summed."""
    now = rec.utcnow()
    total: Counter[str] = Counter()
    for day in {rec.day_of(now), rec.day_of(now - timedelta(days=1))}:
        for shard in db.collection(rec.STATS, day, "shards").stream():
            total["total"] += int((shard.to_dict() or {}).get("total") or 0)
    return total["total"]
