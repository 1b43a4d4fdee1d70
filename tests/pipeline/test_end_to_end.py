"""The whole local pipeline: fake-gcs-server publishing notifications to the
Pub/Sub emulator, the Eventarc bridge, the classify function under
functions-framework and the Firestore emulator, started by
``localcloud.up`` on free ports with the tiny test model; uploads
through google-cloud-storage, results read back with the real clients."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import localcloud
from shared.labels import slugify
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, pointer_payload
from shared.records import FINISHED, classification_id, day_of
from tests.emulators import require, unavailable
from tests.pipeline.conftest import CONTRACT_FIELDS, FIRESTORE_PREFERENCE, REPO

DATA = Path(os.environ.get("FASHION_SHARED_DATA") or REPO.parent / "shared" / "data" / "fashion-product-images-small")
EVENT_RECORD_FIELDS = CONTRACT_FIELDS | {"event_ids"}  # records made by events also list them
SOURCE_FIELDS = {"bucket", "name", "generation", "size", "content_type"}
FAST_RETRIES = ("--min-backoff=0.2", "--max-backoff=1")


def dev_images() -> list[tuple[Path, str]]:
    """(image, articleType) of every image of the dev data folder, by id;
    skips the test when the folder is absent."""
    if not (DATA / "styles.csv").is_file():
        pytest.skip(f"dev dataset not found at {DATA} (set FASHION_SHARED_DATA)")
    found = []
    with (DATA / "styles.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            path = DATA / "images" / f"{row['id']}.jpg"
            if path.is_file():
                found.append((path, row["articleType"]))
    return sorted(found, key=lambda item: int(item[0].stem))


def real_images(count: int) -> list[Path]:
    found = [path for path, _ in dev_images()]
    if len(found) < count:
        pytest.skip(f"only {len(found)} images in {DATA}")
    return found[:count]


def make_store(root: Path, version_dir: Path, test_items: list[tuple[str, str]] | None = None) -> Path:
    """A model store holding ``version_dir`` as its current version (plus a
    split.json whose test items are ``test_items``)."""
    version = json.loads((version_dir / MANIFEST_FILE).read_text())["version"]
    target = root / "models" / version
    target.mkdir(parents=True)
    for name in (MODEL_FILE, MANIFEST_FILE):
        (target / name).write_bytes((version_dir / name).read_bytes())
    if test_items is not None:
        (target / "split.json").write_text(json.dumps({"items": {"train": [], "val": [], "test": test_items}}))
    (root / POINTER).write_text(pointer_payload(version))
    return root


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return result


def log_records(path: str | Path) -> list[dict]:
    """The JSON log lines of a component's log."""
    records = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def require_stack() -> None:
    require("pubsub", "storage")
    if localcloud.choose_firestore(localcloud.find_tools(), FIRESTORE_PREFERENCE)[0] is None:
        unavailable(
            f"firestore emulator unavailable: {localcloud.choose_firestore(localcloud.find_tools(), FIRESTORE_PREFERENCE)[1]}"
        )


def stop_leftovers(state_dir: Path) -> None:
    """``fashionctl down``, then a safety net: nothing recorded outlives the tests."""
    localcloud.down(state_dir)
    state = localcloud.State.load(state_dir)
    for proc in state.components if state else []:
        localcloud.stop(proc, timeout=2)


@dataclass
class Stack:
    state_dir: Path
    env: dict[str, str]
    labels: list[str]

    @property
    def state(self) -> localcloud.State:
        loaded = localcloud.State.load(self.state_dir)
        assert loaded is not None
        return loaded

    def component(self, name: str) -> localcloud.Proc:
        return next(p for p in self.state.components if p.name == name)

    def storage(self) -> Any:
        return localcloud.storage_client(self.env["STORAGE_EMULATOR_HOST"], self.env["GOOGLE_CLOUD_PROJECT"])

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project=self.env["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials())

    @property
    def incoming(self) -> str:
        return self.env["INCOMING_BUCKET"]

    @property
    def processed(self) -> str:
        return self.env["PROCESSED_BUCKET"]

    def upload(self, name: str, path: Path) -> int:
        blob = self.storage().bucket(self.incoming).blob(name)
        blob.upload_from_filename(str(path), content_type="image/jpeg")
        return int(blob.generation)

    def records(self, generations: dict[str, int]) -> dict[str, dict]:
        db = self.firestore()
        found = {}
        for name, generation in generations.items():
            snapshot = db.collection("classifications").document(classification_id(self.incoming, name, generation)).get()
            if snapshot.exists:
                found[name] = snapshot.to_dict()
        return found

    def finished(self, generations: dict[str, int]) -> dict[str, dict] | None:
        """The records once every upload has a finished one and none of them is left in incoming."""
        records = self.records(generations)
        done = len(records) == len(generations) and all(r["status"] in FINISHED for r in records.values())
        left = {b.name for b in self.storage().list_blobs(self.incoming)} & set(generations)
        return records if done and not left else None

    def documents_named(self, name: str) -> list[dict]:
        """Every record of ``name`` (filtered here: the npm emulator cannot query nested fields)."""
        documents = (snapshot.to_dict() or {} for snapshot in self.firestore().collection("classifications").stream())
        return [d for d in documents if d.get("source", {}).get("name") == name]

    def counters(self, days: set[str]) -> Counter[str]:
        """The per-day counter shards (stats/<day>/shards/<n>), summed."""
        total: Counter[str] = Counter()
        for day in days:
            for shard in self.firestore().collection("stats", day, "shards").stream():
                total.update({k: v for k, v in (shard.to_dict() or {}).items() if isinstance(v, int)})
        return total

    def processed_names(self) -> list[str]:
        return sorted(b.name for b in self.storage().list_blobs(self.processed))


@contextmanager
def running_stack(root: Path, tiny_model_dir: Any, bridge_args: tuple[str, ...]) -> Iterator[Stack]:
    """``fashionctl up`` with the tiny model in ``root``, stopped afterwards
    whatever happens (FIRESTORE_EMULATOR_HOST set meanwhile, for the tests'
    own Firestore clients)."""
    require_stack()
    state_dir = root / "state"
    config = localcloud.StackConfig(
        state_dir=state_dir,
        ports=localcloud.Ports.free(),
        model_store=make_store(root / "store", Path(tiny_model_dir.int8_dir)),
        bridge_args=bridge_args,
        firestore=FIRESTORE_PREFERENCE,
    )
    try:
        started = localcloud.up(config, localcloud.find_tools())  # raises a StackError saying why when it does not come up
        assert all(localcloud.alive(p) for p in started.state.components), started.headline()
        env = localcloud.read_env_file(state_dir / localcloud.ENV_FILE)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FIRESTORE_EMULATOR_HOST", env["FIRESTORE_EMULATOR_HOST"])  # read by the Firestore client
            yield Stack(state_dir.resolve(), env, list(tiny_model_dir.labels))
    finally:
        stop_leftovers(state_dir)


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), tiny_model_dir, FAST_RETRIES) as running:
        yield running


def test_uploaded_real_images_are_classified_recorded_and_sorted(e2e_stack: Stack):
    images = {f"e2e/{path.name}": path for path in real_images(8)}
    generations = {name: e2e_stack.upload(name, path) for name, path in images.items()}

    records = wait_for(lambda: e2e_stack.finished(generations), 60, "8 finished records and an empty incoming bucket")

    assert len(records) == 8
    processed = e2e_stack.processed_names()
    for name, record in records.items():
        path = images[name]
        assert set(record) >= EVENT_RECORD_FIELDS, name
        assert set(record["source"]) == SOURCE_FIELDS
        assert record["source"]["bucket"] == e2e_stack.incoming and record["source"]["name"] == name
        assert record["source"]["generation"] == str(generations[name])
        assert record["source"]["size"] == path.stat().st_size and record["source"]["content_type"] == "image/jpeg"
        assert record["status"] in ("classified", "needs_review"), record
        assert record["label"] in e2e_stack.labels and record["model_version"] == "tiny-int8"
        assert record["top_k"][0] == {"label": record["label"], "score": record["confidence"]}
        assert record["trigger"] == "event" and record["attempts"] >= 1 and record["event_ids"]
        assert record["error"] is None
        assert record["created_at"] <= record["finished_at"]
        assert {"download", "classify", "copy", "delete", "total"} <= set(record["timings_ms"])
        prefix = "" if record["status"] == "classified" else "review/"
        expected = f"{prefix}{slugify(record['label'])}/{name}"
        assert record["destination"] == {"bucket": e2e_stack.processed, "name": expected}
        assert expected in processed
    assert len([n for n in processed if n.endswith(tuple(generations))]) == 8
    assert not [b.name for b in e2e_stack.storage().list_blobs(e2e_stack.incoming)]
    delivered = [r for r in log_records(e2e_stack.component("bridge").log) if r.get("message") == "event delivered"]
    assert {r["object_name"] for r in delivered} >= set(generations)
    listed = subprocess.run(
        [sys.executable, "-m", "fashionctl.cli", "results", "--state-dir", str(e2e_stack.state_dir), "--json"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")},  # from the stack's env file
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(line)["source"]["name"] for line in listed.stdout.splitlines()) == sorted(generations)
    if e2e_stack.env["FASHION_FIRESTORE_EMULATOR"] != "npm":  # without transaction isolation, concurrent counts can be lost
        counters = e2e_stack.counters({day_of(r["finished_at"]) for r in records.values()})
        assert counters["total"] == 8
        assert counters.get("status.classified", 0) + counters.get("status.needs_review", 0) == 8
        assert sum(v for k, v in counters.items() if k.startswith("category.")) == 8


def test_firestore_outage_answers_5xx_and_the_bridge_retry_completes_the_work(e2e_stack: Stack):
    """Firestore is stopped before the upload: every delivery fails with a 5xx
    until it is back (on the same port, empty); then the bridge's retry
    classifies the object exactly once."""
    (path,) = real_images(1)
    name = f"outage/{path.name}"
    firestore = e2e_stack.component("firestore")
    assert localcloud.stop(firestore)
    try:
        generation = e2e_stack.upload(name, path)
        bridge_log, function_log = e2e_stack.component("bridge").log, e2e_stack.component("function").log

        def failed_deliveries() -> list[dict]:
            return [
                r
                for r in log_records(bridge_log)
                if r.get("object_name") == name and r.get("message") == "event delivery failed, retrying"
            ]

        failures = wait_for(failed_deliveries, 60, "the bridge to see the function fail")
        assert failures[0]["status"].startswith("HTTP 5"), failures[0]
        transient = [r for r in log_records(function_log) if r.get("object") == name and "transient failure" in r["message"]]
        assert transient and transient[0]["severity"] == "WARNING"
        assert not [n for n in e2e_stack.processed_names() if n.endswith(name)]  # nothing done without a record
    finally:
        restart_firestore(e2e_stack, firestore)

    records = wait_for(lambda: e2e_stack.finished({name: generation}), 60, "the retried delivery to finish the object")
    assert records[name]["status"] in ("classified", "needs_review")
    (document,) = e2e_stack.documents_named(name)
    assert document["source"]["generation"] == str(generation)
    copies = [n for n in e2e_stack.processed_names() if "outage/" in n]
    assert copies == [document["destination"]["name"]]
    delivered = [
        r
        for r in log_records(e2e_stack.component("bridge").log)
        if r.get("object_name") == name and r.get("message") == "event delivered"
    ]
    assert len(delivered) == 1 and delivered[0]["attempt"] > 1
    dead_letter = e2e_stack.state_dir / "dead-letter.jsonl"
    assert not dead_letter.exists() or name not in dead_letter.read_text()


def restart_firestore(running: Stack, old: localcloud.Proc) -> None:
    """Start the stack's Firestore emulator again on its port, recorded in the
    state so that ``down`` stops the new process."""
    tools = localcloud.find_tools()
    assert old.port is not None
    log_dir = Path(old.log).parent
    if running.env.get("FASHION_FIRESTORE_EMULATOR") == "npm":
        new = localcloud.start_firestore_npm(tools, old.port, log_dir)
    else:
        new = localcloud.start_firestore(tools, old.port, log_dir, running.env["GOOGLE_CLOUD_PROJECT"])
    state = running.state
    state.components = [new if p.name == "firestore" else p for p in state.components]
    state.save()
    localcloud.wait_until(new, localcloud.firestore_ready(new), 60)


# --------------------------------------------------------------------------
# The demo (make demo), on its own stack with the tiny model


@pytest.fixture(scope="module")
def tiny_store_with_split(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Path:
    """The tiny model as a store whose split.json lists real test images (2 of each of the 10 classes)."""
    by_class: dict[str, list[str]] = {}
    for path, label in dev_images():
        by_class.setdefault(label, []).append(path.stem)
    items = [[image_id, label] for label, ids in sorted(by_class.items()) for image_id in ids[:2]]
    return make_store(tmp_path_factory.mktemp("demo-store"), Path(tiny_model_dir.int8_dir), items)


def run_demo(store: Path, state_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.demo", "--data", str(DATA), "--out", str(store), "--state-dir", str(state_dir)]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    command += ["--free-ports", "--firestore", FIRESTORE_PREFERENCE]
    return subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_uploads_waits_reports_and_stops_the_stack(tiny_store_with_split: Path, tmp_path: Path):
    require_stack()
    state_dir = tmp_path / "state"
    try:
        result = run_demo(tiny_store_with_split, state_dir, "--per-class", "2", "--timeout", "60")
    finally:
        stop_leftovers(state_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    split = json.loads(next(tiny_store_with_split.glob("models/*/split.json")).read_text())
    uploaded = [f"{image_id}.jpg" for image_id, _ in split["items"]["test"]] + ["not-a-photo.jpg"]
    assert len(uploaded) == 21
    for name in uploaded:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert any(status in line for status in ("classified", "needs_review", "rejected")), line
    assert "rejected: not_an_image  rejected/not-a-photo.jpg" in result.stdout
    assert "Waiting for the pipeline: 21/21 finished, 0 left in incoming" in result.stdout
    assert "rejected/ " in result.stdout  # the bucket layout
    assert "/20 correct" in result.stdout and "wall time" in result.stdout
    assert "Stopping the stack... stopped." in result.stdout
    assert not (state_dir / localcloud.STATE_FILE).exists()


def test_demo_stops_the_stack_when_the_pipeline_times_out(tiny_store_with_split: Path, tmp_path: Path):
    require_stack()
    state_dir = tmp_path / "state"
    try:
        result = run_demo(tiny_store_with_split, state_dir, "--per-class", "1", "--timeout", "0")
    finally:
        stop_leftovers(state_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "demo: timed out after 0 s" in result.stderr
    assert "Stopping the stack... stopped." in result.stdout  # `down` found every process and stopped it
    assert f"(its logs stay in {state_dir.resolve()})" in result.stdout
    assert not (state_dir / localcloud.STATE_FILE).exists()


def _ctrl_c() -> None:
    raise KeyboardInterrupt


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler interrupts this


@pytest.mark.parametrize("interrupt", [_ctrl_c, _sigterm], ids=["ctrl-c", "sigterm"])
def test_a_stack_the_demo_started_is_stopped_on_ctrl_c_and_sigterm(tmp_path: Path, interrupt: Callable[[], None]):
    from scripts.demo import stack_running

    sleeper = localcloud.spawn("bridge", ["sleep", "60"], tmp_path / "bridge.log")  # stands in for the stack's processes
    localcloud.State(state_dir=str(tmp_path), started_at="now", components=[sleeper]).save()
    handler = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt), stack_running(tmp_path, keep=True):
            interrupt()
    finally:
        localcloud.stop(sleeper, timeout=2)
    assert time.monotonic() - started < 4
    assert not localcloud.alive(sleeper)
    assert not (tmp_path / localcloud.STATE_FILE).exists()  # stopped by `down`, not by the safety net
    assert signal.getsignal(signal.SIGTERM) is handler
