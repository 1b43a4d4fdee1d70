"""Fault injection on the real emulators: the function instance, the
Firestore emulator or the storage emulator goes down at each step of one
event's handling, and after recovery every upload is in exactly one place
with exactly one finished record, its bytes intact and no duplicate copy.

How (tests/reliability/faults.py, proxy.py, functions/failpoints.py):

- function: an instance started with ``FAILPOINTS=<step>=crash`` dies
  (``os._exit``) at that step, in the middle of the request: no answer, no
  failure recorded, its lease left held.
- firestore / storage: an instance started with ``FAILPOINTS=<step>=hang:…``
  logs that it reached the step and pauses; the test then cuts the proxy in
  front of that emulator (open connections reset, new ones refused), and the
  delivery goes on against a dead dependency. It must answer 5xx (retry
  later), never 2xx. The emulator comes back, with its data, when the proxy
  is restored.
- recovery: the faulty instance is gone, the dependency is back, and the
  same event (same ``ce-id``) is redelivered, with backoff, to an instance
  without failpoints until accepted, as Eventarc retries; then the sweep
  runs, and must find nothing left to do.

Steps: ``after_download`` (bytes read, nothing decided), ``after_decision``
(decision written to Firestore), ``after_copy`` (copy made, destination not
yet recorded), ``before_delete`` (destination recorded, source not deleted).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from functions.failpoints import CRASH_EXIT_CODE, FailPointError, FailPoints
from shared import records as rec
from shared.model_layout import MANIFEST_FILE, MODEL_FILE
from shared.settings import Settings
from tests.images import make_photo_like
from tests.pipeline.conftest import publish_model
from tests.reliability.faults import (
    LEASE_SECONDS,
    SOURCE,
    FaultLab,
    Upload,
    check_invariants,
    fault_lab,
    new_event_id,
    places,
    post_event,
    wait_for,
)

STEPS = ("after_download", "after_decision", "after_copy", "before_delete")
COMPONENTS = ("function", "firestore", "storage")
HANG_SECONDS = 1.5


def delivery_thread(url: str, upload: Any, event_id: str) -> tuple[threading.Thread, dict[str, Any]]:
    """A thread (not started) that delivers the event and records the answer's
    status code, or the name of the exception when none came."""
    answer: dict[str, Any] = {}

    def deliver() -> None:
        try:
            answer["status"] = post_event(url, upload, event_id, timeout=90).status_code
        except requests.RequestException as exc:
            answer["status"] = type(exc).__name__

    return threading.Thread(target=deliver), answer


def crash_delivery(lab: FaultLab, step: str, upload: Upload, event_id: str) -> None:
    """Deliver ``upload``'s event to an instance that crashes at ``step``: no answer comes."""
    proc = lab.start_faulty(f"{step}=crash")
    try:
        with pytest.raises(requests.ConnectionError):
            post_event(proc.url or "", upload, event_id, timeout=30)
    finally:
        localcloud.stop(proc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[FaultLab]:
    with fault_lab(tmp_path_factory.mktemp("faults"), Path(tiny_model_dir.int8_dir)) as running:
        yield running


def _log_text(proc: localcloud.Proc) -> str:
    return Path(proc.log).read_text(errors="replace")


def _inject(lab: FaultLab, component: str, step: str, name: str) -> tuple[Any, str, Any]:
    """Upload one image, deliver its event to a faulty instance and bring
    ``component`` down at ``step``; returns (upload, event id, what the
    delivery got back: an HTTP status or an exception's name)."""
    seed = 100 * COMPONENTS.index(component) + STEPS.index(step)
    upload = lab.upload(name, make_photo_like((48, 40), seed=seed))
    event_id = new_event_id()
    if component == "function":
        proc = lab.start_faulty(f"{step}=crash")
        try:
            with pytest.raises(requests.ConnectionError):
                post_event(proc.url or "", upload, event_id, timeout=30)
            assert f"failpoint {step} reached" in _log_text(proc)
            assert f"exited with code {CRASH_EXIT_CODE}" in wait_for(
                lambda: (text := _log_text(proc)) and f"code {CRASH_EXIT_CODE}" in text and text,
                10,
                "the worker's exit",
            )
        finally:
            localcloud.stop(proc)  # the instance is gone for good
        return upload, event_id, "crashed"

    proxy = lab.proxy(component)
    proc = lab.start_faulty(f"{step}=hang:{HANG_SECONDS}")
    worker, answer = delivery_thread(proc.url or "", upload, event_id)
    try:
        worker.start()
        wait_for(lambda: f"failpoint {step} reached" in _log_text(proc), 30, f"failpoint {step}")
        proxy.cut()
        worker.join(90)
        assert not worker.is_alive(), "the delivery hung with its dependency down"
    finally:
        localcloud.stop(proc)
        proxy.restore()
    return upload, event_id, answer.get("status")


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_recovery_after_a_failure_at_each_step(lab: FaultLab, component: str, step: str):
    """The instance crashes, or Firestore or Cloud Storage goes down, at
    ``step``; the delivery is not acknowledged (no answer, or 5xx); after the
    dependency is back, the redelivered event finishes the object: one
    record, one processed copy with the same bytes, nothing left in
    incoming, counted once, and the sweep finds nothing to do."""
    started = time.monotonic()
    upload, event_id, first = _inject(lab, component, step, f"{component}-{step}.jpg")
    if component != "function":
        assert isinstance(first, int) and first >= 500, f"a delivery facing a dead {component} answered {first}"
    where = places(lab, upload)  # before any recovery: the bytes are somewhere, intact
    assert where, f"{upload.name} is nowhere after the failure"

    answers = lab.redeliver(upload, event_id)
    sweep = lab.sweep()
    records = check_invariants(lab, [upload])
    record = records[upload.name]
    assert sweep["processed"] == 0 and sweep["failed"] == 0, sweep
    assert record["attempts"] >= 2, record  # the faulty delivery claimed it first
    assert record["event_ids"] == [event_id]  # one event, delivered more than once
    assert record["trigger"] == "event"
    print(
        f"{component:9} {step:14} first: {first}; left in: {', '.join(where)}; "
        f"redelivery: {answers}; {time.monotonic() - started:.1f} s"
    )


def test_everything_so_far_is_in_exactly_one_place(lab: FaultLab):
    """After all the cases above (run in one module, on one emulated cloud):
    every upload of the module is processed exactly once, and the per-day
    counters counted each record once."""
    if not lab.uploads:
        pytest.skip("no upload yet (run with the parametrized cases)")
    check_invariants(lab)


def test_the_sweep_alone_finishes_what_a_crash_left_in_incoming(lab: FaultLab):
    """A delivery crashed after the copy and its event is never redelivered
    (dead-lettered): once the lease has expired, the scheduled sweep finishes
    the object from incoming; the identical copy already made counts as done."""
    upload = lab.upload("sweep-only.jpg", make_photo_like((48, 40), seed=4242))
    crash_delivery(lab, "after_copy", upload, new_event_id())
    time.sleep(LEASE_SECONDS + 0.5)
    counts = lab.sweep()
    assert counts["processed"] == 1, counts
    record = check_invariants(lab, [upload])[upload.name]
    assert record["trigger"] == "event" and record["attempts"] == 2


def test_a_sweep_during_a_held_lease_leaves_the_object_alone(lab: FaultLab):
    """A crashed delivery's lease still holds: the sweep skips the object as
    busy (it does not process it twice), and the redelivery finishes it."""
    upload = lab.upload("busy.jpg", make_photo_like((48, 40), seed=777))
    event_id = new_event_id()
    crash_delivery(lab, "after_decision", upload, event_id)
    snapshot = lab.firestore().collection(rec.COLLECTION).document(upload.doc_id).get().to_dict()
    assert snapshot["status"] == rec.PROCESSING and snapshot["step"] == "decided"
    counts = lab.sweep()
    if counts["skipped_busy"] != 1:  # the lease ran out on a slow machine: the sweep finished it, once
        assert counts["processed"] == 1, counts
    lab.redeliver(upload, event_id)
    check_invariants(lab, [upload])


def test_failpoints_parse_and_are_off_by_default():
    """The FAILPOINTS setting: empty is off (and costs one test), bad specs
    fail loudly, and no Terraform file ever sets it."""
    from tests.pipeline.conftest import REPO

    assert Settings.failpoints == ""
    assert not [p.name for p in (REPO / "terraform").rglob("*.tf") if "FAILPOINTS" in p.read_text()]
    assert not FailPoints.parse("")
    FailPoints.parse("").hit("after_copy")  # nothing happens
    points = FailPoints.parse("after_copy=hang:0, before_delete=error")
    assert points.actions == {"after_copy": "hang:0", "before_delete": "error"}
    points.hit("after_copy")
    with pytest.raises(ConnectionError):
        points.hit("before_delete")
    for bad in ("nowhere=crash", "after_copy", "after_copy=explode", "after_copy=hang:soon"):
        with pytest.raises(FailPointError):
            FailPoints.parse(bad)


def _relabelled_model(source: Path, target: Path) -> Path:
    """The same model.tflite under a new version whose labels are rotated:
    every class index now has another name, so every decision differs."""
    target.mkdir(parents=True)
    (target / MODEL_FILE).write_bytes((source / MODEL_FILE).read_bytes())
    manifest = json.loads((source / MANIFEST_FILE).read_text())
    manifest["labels"] = manifest["labels"][1:] + manifest["labels"][:1]
    manifest["version"] = f"{manifest['version']}-relabelled"
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def test_a_delivery_that_outlived_its_lease_stops_writing(lab: FaultLab, tiny_model_dir: Any, tmp_path: Path):
    """Regression (found with these failpoints): delivery A pauses after the
    download for longer than its lease; a redelivery B takes the object over
    and finishes it; then a new model version is published, and A wakes up
    and decides differently. A's writes are fenced by the update time of its
    own last write, so it stops (5xx) at its first write: no second copy
    under another category, and B's finished record is left as it is.
    Before the fence, A rewrote the finished record's decision and step and
    copied the file a second time, to its own, different destination."""
    upload = lab.upload("stale-lease.jpg", make_photo_like((48, 40), seed=9090))
    event_id = new_event_id()
    proc = lab.start_faulty(f"after_download=hang:{LEASE_SECONDS + 5}")
    worker, answer = delivery_thread(proc.url or "", upload, event_id)
    storage = lab.storage()
    try:
        worker.start()
        wait_for(lambda: "failpoint after_download reached" in _log_text(proc), 30, "failpoint after_download")
        time.sleep(LEASE_SECONDS + 0.3)  # A's lease runs out while it pauses
        lab.redeliver(upload, event_id)  # B takes over and finishes
        finished_by_b = lab.firestore().collection(rec.COLLECTION).document(upload.doc_id).get().to_dict()
        assert finished_by_b["status"] in rec.FINISHED
        publish_model(storage, _relabelled_model(Path(tiny_model_dir.int8_dir), tmp_path / "relabelled"))
        worker.join(90)
        assert not worker.is_alive()
    finally:
        localcloud.stop(proc)
        publish_model(storage, Path(tiny_model_dir.int8_dir))  # the module's other cases use the original
    assert isinstance(answer.get("status"), int) and answer["status"] >= 500, answer
    assert "taken over by another delivery" in _log_text(proc)
    record = check_invariants(lab, [upload])[upload.name]
    assert record["destination"] == finished_by_b["destination"] and record["label"] == finished_by_b["label"]
    assert record["step"] == "done" and record["updated_at"] == finished_by_b["updated_at"]


def test_simultaneous_duplicate_deliveries_do_not_deadlock(lab: FaultLab):
    """Regression (found by the load test): every event of 8 new uploads
    delivered 5 times at once. For each upload one delivery claims it with a
    create-only write and finishes it; the others are told "busy" at once
    (5xx, retried later). With a read-then-write claim transaction the
    duplicates could deadlock on the Firestore emulator's document locks and
    all fail after its lock timeout ("409 Transaction lock timeout", about
    10 s), round after round."""
    from concurrent.futures import ThreadPoolExecutor

    uploads = [lab.upload(f"simultaneous-{i}.jpg", make_photo_like((48, 40), seed=5000 + i)) for i in range(8)]
    assert lab.healthy is not None and lab.healthy.url
    url = lab.healthy.url

    def deliver(upload: Any) -> tuple[str, int, float]:
        started = time.monotonic()
        status = post_event(url, upload, new_event_id(), timeout=60).status_code
        return upload.name, status, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(deliver, [u for u in uploads for _ in range(5)]))
    elapsed = time.monotonic() - started
    print(f"{len(results)} deliveries in {elapsed:.2f} s; slowest {max(r[2] for r in results):.2f} s")
    for upload in uploads:
        statuses = [status for name, status, _ in results if name == upload.name]
        assert statuses.count(200) >= 1, f"{upload.name}: no delivery got through: {statuses}"
    assert "lock timeout" not in _log_text(lab.healthy)
    assert elapsed < 8, f"{len(results)} deliveries took {elapsed:.1f} s"
    check_invariants(lab, uploads)


def test_the_sweep_finishes_a_record_stranded_after_the_delete(lab: FaultLab):
    """Regression (found with the failpoints): a delivery dies after deleting
    the source and before writing the final record, and its event is never
    redelivered (dead-lettered). The file is already in the processed bucket
    only, so the incoming listing cannot find it; the sweep also looks for
    records left processing (lease expired) or failed, and finishes this one:
    one finished record, counted once. Before, it stayed "processing" forever."""
    upload = lab.upload("stranded.jpg", make_photo_like((48, 40), seed=3131))
    crash_delivery(lab, "after_delete", upload, new_event_id())
    assert upload.name not in lab.incoming()  # deleted: only in the processed bucket now
    young = lab.sweep(min_age=300)  # within min_age its event may still come: left alone
    assert young["stranded"] == 0 and young["processed"] == 0, young
    time.sleep(LEASE_SECONDS + 0.5)
    counts = lab.sweep()
    assert counts["stranded"] == 1 and counts["processed"] == 1, counts
    record = check_invariants(lab, [upload])[upload.name]
    assert record["step"] == "done" and record["attempts"] == 2


def test_a_sweep_stopped_by_a_dependency_error_ends_failed_and_the_next_run_and_health_say_so(lab: FaultLab):
    """The sweep function (over HTTP, through the proxies) with Cloud Storage
    cut: it answers 503 in the one error shape within the dependency
    deadline, its run document ends ``failed`` with the reason (not
    ``running``), ``fashionctl health`` names the failed run, and the next
    run reports it as its ``previous_run``."""
    from fashionctl import health

    proc = localcloud.start_http_function(SOURCE, "sweep", localcloud.free_port(), lab.logs, lab.env, name="sweep-faulty")
    try:
        localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
        lab.storage_proxy.cut()
        try:
            started = time.monotonic()
            response = requests.post(proc.url or "", json={"min_age": 0, "budget": 30}, timeout=120)
            took = time.monotonic() - started
        finally:
            lab.storage_proxy.restore()
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert set(response.json()) == {"error"} and set(error) == {"code", "message"}
        assert error["code"] == "dependency_unavailable" and took < 30, (error, took)

        db = lab.firestore()
        failed = next(iter(db.collection(rec.RUNS).where(filter=_status_is("failed")).stream()), None)
        assert failed is not None, "the stopped run's document is not marked failed"
        document = failed.to_dict()
        assert failed.id in error["message"]
        assert document["error"]["reason"] == "dependency_unavailable" and document["error"]["message"]
        assert document["finished_at"] >= document["started_at"]
        assert not list(db.collection(rec.RUNS).where(filter=_status_is("running")).stream())

        sick = health.check(lab.env, db, lab.storage(), health.Thresholds())
        assert not sick.healthy and any(failed.id in problem and "failed" in problem for problem in sick.problems)
        assert "failed" in health.render(sick)

        response = requests.post(proc.url or "", json={"min_age": 0, "budget": 30}, timeout=120)
        assert response.status_code == 200, response.text
        after = response.json()
        assert after["status"] == "finished" and after["error"] is None
        assert after["previous_run"] == {"run_id": failed.id, "status": "failed", "error": document["error"]}
        well = health.check(lab.env, db, lab.storage(), health.Thresholds())
        assert not any("sweep" in problem for problem in well.problems), well.problems
    finally:
        localcloud.stop(proc)


def _status_is(status: str) -> Any:
    from google.cloud.firestore import FieldFilter

    return FieldFilter("status", "==", status)


def test_a_transient_failure_answers_500_in_the_one_error_shape(lab: FaultLab):
    """The classify function with Firestore cut: 500 (the platform retries),
    functions-framework's crash header, and the body in the one error shape
    of every function; the redelivered event then finishes the object."""
    assert lab.healthy is not None and lab.healthy.url
    upload = lab.upload("shape-0.jpg", make_photo_like(seed=7))
    event_id = new_event_id()
    lab.firestore_proxy.cut()
    try:
        response = post_event(lab.healthy.url, upload, event_id)
    finally:
        lab.firestore_proxy.restore()
    assert response.status_code == 500 and response.headers["X-Google-Status"] == "crash", response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and set(error) == {"code", "message"} and error["code"] == "retry_later"
    lab.redeliver(upload, event_id)
    check_invariants(lab, [upload])
