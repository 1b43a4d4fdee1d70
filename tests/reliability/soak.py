"""The soak run: many uploads through the whole local stack while its
dependencies fail, then a full account of every object version.

What runs (all on loopback, real processes):

- ``localcloud.up`` starts the Pub/Sub and Firestore emulators,
  fake-gcs-server publishing OBJECT_FINALIZE notifications, and the Eventarc
  bridge, whose target is the classify function started here: the real
  ``functions/main.py`` under functions-framework, reaching Firestore and
  Cloud Storage through :class:`~tests.reliability.proxy.TcpProxy` objects
  that the chaos thread cuts (the emulators keep their data, as a real
  outage would). The bridge, the uploader and the checks talk to the
  emulators directly.
- The uploader puts :class:`Item` objects into the incoming bucket at a
  steady rate (a photo shoot or catalogue import, not one burst): real
  catalogue photos (``../shared/data/fashion-product-images-12k``, else the
  small set), with every eighth upload an odd one, alternating the
  bad-input corpus (tests/reliability/corpus.py) and the real-world inputs
  of ``../shared/cases/real-world``. For 10% of uploads the storage
  notification is published again, so that event is delivered
  :data:`COPIES` times.
- The chaos thread plays the :class:`Plan`'s :class:`Fault` list when the
  uploads reach each fault's fraction: cut Firestore and/or Storage for a
  while, or SIGKILL the function's process group and start a new one on the
  same port (a crashed instance replaced by the platform).
- Afterwards (every notification acknowledged by the bridge and the incoming
  bucket empty, or a time limit), one sweep run (functions/sweep.py, in this
  process) finishes whatever the events left, and :func:`account` checks
  every object version and returns the run's figures.
"""

from __future__ import annotations

import json
import mimetypes
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import localcloud
from shared import records as rec
from tests.pipeline.conftest import REPO
from tests.reliability.corpus import CORPUS, LONG_NAME_BYTES, Case
from tests.reliability.proxy import TcpProxy

SHARED = Path(os.environ.get("FASHION_SHARED_DIR") or REPO.parent / "shared")
CATALOGUE_DIRS = (SHARED / "data" / "fashion-product-images-12k", SHARED / "data" / "fashion-product-images-small")
REAL_WORLD_DIR = SHARED / "cases" / "real-world"
SOURCE = REPO / "functions" / "main.py"

ODD_EVERY = 8  # every eighth upload is a corpus case or a real-world input
DUPLICATED_EVERY = 10  # 10% of uploads: the notification is published COPIES times in all
COPIES = 3
BRIDGE_WORKERS = 8
#: Short enough that a killed instance's leases lapse within seconds, long
#: enough for one event on a busy 2-core machine.
LEASE_SECONDS = 10.0
DEPENDENCY_DEADLINE_SECONDS = 5.0
BRIDGE_ARGS = (
    "--min-backoff=0.2",
    "--max-backoff=2",
    f"--workers={BRIDGE_WORKERS}",
    "--max-attempts=0",  # Eventarc retries for a day; here, for as long as the run lasts
    "--max-age=3600",
)


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` is ``firestore``, ``storage``, ``both`` (a cut of
    ``seconds`` s) or ``kill`` (SIGKILL the function, start a new one);
    played when ``at`` (0..1) of the uploads are done."""

    kind: str
    at: float
    seconds: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A soak run: ``uploads`` objects at ``rate`` uploads/s, the faults in order."""

    uploads: int
    rate: float
    faults: tuple[Fault, ...]
    settle_timeout: float = 600.0  # s after the last upload to wait for the events before the sweep


@dataclass(frozen=True)
class Item:
    """One upload: its object name, bytes, content type, and what it is."""

    name: str
    data: bytes
    content_type: str
    kind: str  # "catalogue", "corpus:<kind>" or "real-world:<file>"
    case: Case | None = None


@dataclass
class Uploaded:
    item: Item
    generation: int
    md5: str
    at: float  # time.time() when the upload returned


def catalogue_images() -> list[Path]:
    """The real catalogue photos, by id, of the first dataset folder present ([] if none)."""
    for folder in CATALOGUE_DIRS:
        images = folder / "images"
        if images.is_dir():
            return sorted(images.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    return []


def real_world_inputs() -> list[Path]:
    """The files of ../shared/cases/real-world (not its README); [] when absent."""
    if not REAL_WORLD_DIR.is_dir():
        return []
    return sorted(p for p in REAL_WORLD_DIR.iterdir() if p.is_file() and p.suffix != ".md")


def _content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or {".heic": "image/heic", ".jfif": "image/jpeg"}.get(
        path.suffix, "application/octet-stream"
    )


def _odd_name(case: Case, index: int, first: bool) -> str:
    """The case's own name the first time it is used, then a unique variant
    that keeps what is odd about it (and fits Cloud Storage's name limit)."""
    if first:
        return case.name
    name = f"soak/odd-{index:05d}/{case.name.lstrip('/')}"
    if len(name.encode()) <= LONG_NAME_BYTES:
        return name
    assert "x" * 10 in case.name, case.kind
    return case.name.replace("x" * 10, f"{index:010d}", 1)


class Mix:
    """Item ``i`` of the soak, made on demand (the photos are read when
    uploaded, not held in memory)."""

    def __init__(self, catalogue: list[Path], real_world: list[Path]) -> None:
        if not catalogue:
            raise FileNotFoundError(f"no catalogue photos in {' or '.join(str(d) for d in CATALOGUE_DIRS)}")
        self.catalogue = catalogue
        self.real_world = real_world
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def item(self, index: int) -> Item:
        if index % ODD_EVERY != ODD_EVERY // 2:
            photo = self.catalogue[index % len(self.catalogue)]
            return Item(f"soak/{index:05d}-{photo.name}", photo.read_bytes(), "image/jpeg", "catalogue")
        odd = index // ODD_EVERY
        if odd % 2 == 1 and self.real_world:
            path = self.real_world[(odd // 2) % len(self.real_world)]
            return Item(f"soak/real-{index:05d}/{path.name}", path.read_bytes(), _content_type(path), f"real-world:{path.name}")
        case = CORPUS[(odd // 2 if self.real_world else odd) % len(CORPUS)]
        with self._lock:
            first = case.kind not in self._used
            self._used.add(case.kind)
        return Item(_odd_name(case, index, first), case.data, case.content_type, f"corpus:{case.kind}", case)


# -- the stack ------------------------------------------------------------------


@dataclass
class SoakStack:
    """The running stack, the function behind the proxies, and clients."""

    state_dir: Path
    env: dict[str, str]  # the env file: the emulators themselves
    function_env: dict[str, str]  # the function's: through the proxies
    function_port: int
    proxies: dict[str, TcpProxy]
    function: localcloud.Proc | None = None  # the instance serving now
    kills: int = 0

    @property
    def incoming(self) -> str:
        return self.env["INCOMING_BUCKET"]

    @property
    def processed(self) -> str:
        return self.env["PROCESSED_BUCKET"]

    def storage(self) -> Any:
        return localcloud.storage_client(self.env["STORAGE_EMULATOR_HOST"], self.env["GOOGLE_CLOUD_PROJECT"])

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project=self.env["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials())

    def bridge_log(self) -> Path:
        state = localcloud.State.load(self.state_dir)
        assert state is not None
        return Path(next(p.log for p in state.components if p.name == "bridge"))

    def start_function(self) -> None:
        """A new function instance on :attr:`function_port`; raises StackError when it does not come up."""
        function = localcloud.start_function(SOURCE, "classify_upload", self.function_port, self.state_dir, self.function_env)
        self.function = function
        localcloud.wait_until(function, localcloud.http_answers(function.url or "", ok_only=False), 90)

    def kill_function(self) -> None:
        """SIGKILL the function's whole process group (no clean shutdown), then start a new one on the same port."""
        assert self.function is not None
        os.killpg(self.function.pid, signal.SIGKILL)
        localcloud.stop(self.function, timeout=5)  # reaps it
        self.kills += 1
        self.start_function()


@contextmanager
def soak_stack(root: Path, model_store: Path, firestore: str) -> Iterator[SoakStack]:
    """``localcloud.up`` (emulators and bridge) plus the classify function
    behind proxies; everything stopped afterwards."""
    state_dir = root / "state"
    function_port = localcloud.free_port()
    target = f"http://{localcloud.HOST}:{function_port}/"
    config = localcloud.StackConfig(
        state_dir=state_dir,
        ports=localcloud.Ports.free(),
        model_store=model_store,
        function_source=None,
        bridge_target=target,
        bridge_args=BRIDGE_ARGS,
        firestore=firestore,
    )
    proxies: dict[str, TcpProxy] = {}
    stack: SoakStack | None = None
    try:
        localcloud.up(config, localcloud.find_tools())
        env = localcloud.read_env_file(state_dir / localcloud.ENV_FILE)
        storage_port = urlsplit(env["STORAGE_EMULATOR_HOST"]).port
        assert storage_port is not None
        proxies["storage"] = TcpProxy(localcloud.HOST, storage_port)
        proxies["firestore"] = TcpProxy(localcloud.HOST, int(env["FIRESTORE_EMULATOR_HOST"].rsplit(":", 1)[1]))
        settings = replace(
            config.settings,
            model_cache_dir=str(state_dir / "model-cache"),
            lease_seconds=LEASE_SECONDS,
            dependency_deadline_seconds=DEPENDENCY_DEADLINE_SECONDS,
        )
        function_env = localcloud.settings_env(settings) | {
            "STORAGE_EMULATOR_HOST": f"http://{proxies['storage'].address}",
            "FIRESTORE_EMULATOR_HOST": proxies["firestore"].address,
            "PUBSUB_EMULATOR_HOST": env["PUBSUB_EMULATOR_HOST"],
        }
        stack = SoakStack(state_dir.resolve(), env, function_env, function_port, proxies)
        stack.start_function()
        yield stack
    finally:
        if stack is not None and stack.function is not None:
            localcloud.stop(stack.function)
        for proxy in proxies.values():
            proxy.close()
        localcloud.down(state_dir)


# -- running it -------------------------------------------------------------------


class LogCounter:
    """Counts the ``message`` of the JSON lines appended to a log, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counts: Counter[str] = Counter()
        self._partial = b""

    def update(self) -> Counter[str]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"{"):
                try:
                    self.counts[json.loads(line).get("message", "")] += 1
                except ValueError:
                    continue
        return self.counts


def notify_again(publisher: Any, topic: str, blob: Any) -> None:
    """Publish the storage notification fake-gcs-server published for
    ``blob`` once more (same attributes and JSON_API_V1 payload)."""
    attributes = {
        "bucketId": blob.bucket.name,
        "objectId": blob.name,
        "objectGeneration": str(blob.generation),
        "eventType": "OBJECT_FINALIZE",
        "eventTime": blob.updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "payloadFormat": "JSON_API_V1",
    }
    payload = {**blob._properties, "size": str(blob.size)}
    publisher.publish(topic, json.dumps(payload).encode(), **attributes).result(timeout=60)


@dataclass
class Timeline:
    """What happened when (seconds since the run started)."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 1), what))

    def now(self) -> float:
        return time.monotonic() - self.started


def play_faults(stack: SoakStack, plan: Plan, progress: Callable[[], int], timeline: Timeline, stop: threading.Event) -> None:
    """The chaos thread: each fault when ``progress()`` uploads reach its fraction."""
    for fault in plan.faults:
        while progress() < fault.at * plan.uploads:
            if stop.wait(0.2):
                return
        if fault.kind == "kill":
            timeline.note("function killed (SIGKILL)")
            stack.kill_function()
            timeline.note("new function instance ready")
            continue
        cut = ("firestore", "storage") if fault.kind == "both" else (fault.kind,)
        for name in cut:
            stack.proxies[name].cut()
        timeline.note(f"{' and '.join(cut)} cut")
        stop.wait(fault.seconds)
        for name in cut:
            stack.proxies[name].restore()
        timeline.note(f"{' and '.join(cut)} restored")


def _md5(data: bytes) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.md5(data).digest()).decode()


def run(stack: SoakStack, plan: Plan, mix: Mix) -> dict[str, Any]:
    """Upload, play the faults, wait for the events, sweep; returns the run's
    figures (the uploads under ``"uploaded"``, for :func:`account`)."""
    publisher = localcloud.publisher_client(stack.env["PUBSUB_EMULATOR_HOST"])
    topic = publisher.topic_path(stack.env["GOOGLE_CLOUD_PROJECT"], "storage-incoming")
    bucket = stack.storage().bucket(stack.incoming)
    uploaded: dict[str, Uploaded] = {}
    lock = threading.Lock()
    timeline = Timeline()
    stop = threading.Event()

    def upload(index: int) -> None:
        item = mix.item(index)
        blob = bucket.blob(item.name)
        blob.upload_from_string(item.data, content_type=item.content_type)
        done = Uploaded(item, int(blob.generation), _md5(item.data), time.time())
        if index % DUPLICATED_EVERY == 0:
            for _ in range(COPIES - 1):
                notify_again(publisher, topic, blob)
        with lock:
            uploaded[item.name] = done

    chaos = threading.Thread(target=play_faults, args=(stack, plan, lambda: len(uploaded), timeline, stop), daemon=True)
    chaos.start()
    try:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="upload") as pool:
            futures = []
            for index in range(plan.uploads):
                delay = timeline.started + index / plan.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(upload, index))
            for future in futures:
                future.result()
        uploads_done = timeline.now()
        timeline.note(f"{plan.uploads} uploads done")
        chaos.join(timeout=300)
        assert not chaos.is_alive(), "the fault thread did not finish"
    finally:
        stop.set()
        for proxy in stack.proxies.values():
            proxy.restore()

    expected = plan.uploads + len(range(0, plan.uploads, DUPLICATED_EVERY)) * (COPIES - 1)
    bridge = LogCounter(stack.bridge_log())
    deadline = time.monotonic() + plan.settle_timeout
    while True:
        counts = bridge.update()
        acked = counts["event delivered"] + counts["event dead-lettered after %d attempts"]
        if acked >= expected and not any(True for _ in stack.storage().list_blobs(stack.incoming, max_results=1)):
            break
        if time.monotonic() > deadline:
            timeline.note(f"gave up waiting for the events: {acked}/{expected} acknowledged")
            break
        time.sleep(2)
    events_done = timeline.now()
    timeline.note("events settled")
    sweep = sweep_once(stack)
    timeline.note(f"sweep: {sweep}")
    counts = bridge.update()
    return {
        "uploaded": uploaded,
        "uploads": plan.uploads,
        "deliveries_expected": expected,
        "deliveries_acked": counts["event delivered"],
        "retries": counts["event delivery failed, retrying"],
        "dead_lettered": counts["event dead-lettered after %d attempts"],
        "upload_seconds": round(uploads_done, 1),
        "events_seconds": round(events_done, 1),
        "sweep": sweep,
        "kills": stack.kills,
        "cuts": {name: proxy.cuts for name, proxy in stack.proxies.items()},
        "timeline": timeline.events,
    }


def sweep_once(stack: SoakStack) -> dict[str, int]:
    """One sweep run, in this process, straight to the emulators (min age 0)."""
    from functions.model_cache import ModelCache
    from functions.processing import Processor
    from functions.sweep import Sweeper, SweepOptions
    from shared.settings import Settings

    env = stack.function_env | {
        "STORAGE_EMULATOR_HOST": stack.env["STORAGE_EMULATOR_HOST"],
        "FIRESTORE_EMULATOR_HOST": stack.env["FIRESTORE_EMULATOR_HOST"],
    }
    settings = Settings.from_env(env)
    storage, db = stack.storage(), stack.firestore()
    models = ModelCache(storage, settings.models_bucket, stack.state_dir / "sweep-model-cache", 60.0)
    core = Processor(settings, storage, db, models)
    report = Sweeper(settings, storage, db, core).run(SweepOptions(min_age=0.0, budget=600.0))
    return dict(report.to_dict()["counts"])


# -- the account ------------------------------------------------------------------


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, int]:
    flat: dict[str, int] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def counters(db: Any) -> Counter[str]:
    """Every counter of today's and yesterday's shards, summed (``total``, ``status.<s>``, ``category.<c>``, ``rejection.<r>``)."""
    from datetime import timedelta

    now = rec.utcnow()
    total: Counter[str] = Counter()
    for day in {rec.day_of(now), rec.day_of(now - timedelta(days=1))}:
        for shard in db.collection(rec.STATS, day, "shards").stream():
            total.update(_flatten(shard.to_dict() or {}))
    return total


def expected_counters(documents: list[dict]) -> Counter[str]:
    """What the counters must say for these finished records (records.counter_fields, summed)."""
    total: Counter[str] = Counter()
    for document in documents:
        reason = (document.get("error") or {}).get("reason")
        total.update(rec.counter_fields(document["status"], document.get("label"), reason))
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def account(stack: SoakStack, figures: dict[str, Any]) -> dict[str, Any]:
    """Check every object version of the run (AssertionError naming the
    first few that fail) and add the outcome figures to ``figures``:

    - the incoming bucket is empty;
    - each upload has exactly one record, finished (classified, needs_review
      or rejected), and exactly one copy in the processed bucket, at the
      record's destination, with the uploaded bytes (md5); corpus cases end
      with their stated outcome and reason;
    - no record and no processed object belongs to no upload;
    - the counters equal the records;
    - every dead-lettered notification (if any) is one of the uploads' (all
      of which are finished, above).
    """
    uploaded: dict[str, Uploaded] = figures["uploaded"]
    storage, db = stack.storage(), stack.firestore()
    # Only a zero-byte upload may stay in incoming: it is recorded `empty`
    # (issue 13.4: its content may still follow as a newer version), checked below.
    left = {(b.name, str(b.generation)) for b in storage.list_blobs(stack.incoming)}
    empty_uploads = {(u.item.name, str(u.generation)) for u in uploaded.values() if not u.item.data}
    assert left <= empty_uploads, (
        f"{len(left - empty_uploads)} objects left in incoming after the sweep: {sorted(left - empty_uploads)[:5]}"
    )

    documents = [d.to_dict() or {} for d in db.collection(rec.COLLECTION).stream()]
    by_source: dict[tuple[str, str], list[dict]] = {}
    for document in documents:
        source = document.get("source") or {}
        by_source.setdefault((source.get("name"), str(source.get("generation"))), []).append(document)
    copies: dict[tuple[str, str], list[Any]] = {}
    processed = list(storage.list_blobs(stack.processed))
    for blob in processed:
        meta = blob.metadata or {}
        copies.setdefault((meta.get("source-name"), meta.get("source-generation")), []).append(blob)

    wanted = {(u.item.name, str(u.generation)): u for u in uploaded.values()}
    problems: list[str] = []
    latencies: dict[str, float] = {}
    for key, upload in wanted.items():
        found = by_source.get(key, [])
        if len(found) != 1:
            problems.append(f"{upload.item.name}: {len(found)} records")
            continue
        (record,) = found
        status = record.get("status")
        if status not in (rec.CLASSIFIED, rec.NEEDS_REVIEW, rec.REJECTED, rec.EMPTY):
            problems.append(f"{upload.item.name}: status {status}")
            continue
        case = upload.item.case
        if not upload.item.data:  # zero bytes: `empty`, no copy, still in incoming
            if status != rec.EMPTY or record.get("destination") or key not in left:
                problems.append(f"{upload.item.name}: zero bytes ended {status}, {record.get('destination')}")
            if copies.get(key):
                problems.append(f"{upload.item.name}: zero bytes copied to {[b.name for b in copies[key]]}")
            latencies[upload.item.name] = record["finished_at"].timestamp() - upload.at
            continue
        if case is not None:
            reason = (record.get("error") or {}).get("reason")
            if case.outcome == "sorted" and status == rec.REJECTED:
                problems.append(f"{upload.item.name} ({case.kind}): rejected {reason}, expected sorted")
            if case.outcome == "rejected" and (status != rec.REJECTED or reason != case.reason):
                problems.append(f"{upload.item.name} ({case.kind}): {status} {reason}, expected rejected {case.reason}")
        placed = copies.get(key, [])
        if len(placed) != 1:
            problems.append(f"{upload.item.name}: {len(placed)} processed copies {[b.name for b in placed]}")
            continue
        (copy,) = placed
        if record.get("destination") != {"bucket": stack.processed, "name": copy.name}:
            problems.append(f"{upload.item.name}: record says {record.get('destination')}, copy at {copy.name}")
        if copy.md5_hash != upload.md5:
            problems.append(f"{upload.item.name}: other bytes at {copy.name}")
        latencies[upload.item.name] = record["finished_at"].timestamp() - upload.at
    extra_records = [k for k in by_source if k not in wanted]
    extra_copies = [k for k in copies if k not in wanted]
    if extra_records:
        problems.append(f"{len(extra_records)} records of no upload: {extra_records[:3]}")
    if extra_copies:
        problems.append(f"{len(extra_copies)} processed objects of no upload: {extra_copies[:3]}")
    assert not problems, f"{len(problems)} problems, the first: {problems[:10]}"

    finished = [d for d in documents if d.get("status") in rec.FINISHED]
    have, want = counters(db), expected_counters(finished)
    assert have == want, f"counters differ from the records: {dict((have - want) + (want - have))}"

    dead_file = stack.state_dir / "dead-letter.jsonl"
    dead = [json.loads(line) for line in dead_file.read_text().splitlines()] if dead_file.exists() else []
    for entry in dead:
        attributes = entry.get("attributes") or {}
        key = (attributes.get("objectId"), str(attributes.get("objectGeneration")))
        assert key in wanted, f"a dead letter for no upload of the run: {entry}"

    triggers = Counter(d.get("trigger") for d in documents)
    worst = max(latencies, key=latencies.__getitem__)
    values = list(latencies.values())
    figures.update(
        records=len(documents),
        statuses=dict(Counter(d["status"] for d in documents)),
        kinds=dict(Counter(u.item.kind.split(":")[0] for u in uploaded.values())),
        triggers=dict(triggers),
        dead_letters=len(dead),
        latency_p50_s=round(percentile(values, 0.5), 2),
        latency_p95_s=round(percentile(values, 0.95), 2),
        latency_max_s=round(latencies[worst], 2),
        latency_max_file=worst,
        throughput_per_s=round(len(uploaded) / figures["events_seconds"], 1),
    )
    return figures


def summary(figures: dict[str, Any]) -> str:
    """The figures as printable JSON (without the per-upload table)."""
    return json.dumps({k: v for k, v in figures.items() if k != "uploaded"}, indent=1, default=str)
