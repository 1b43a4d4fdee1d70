"""HTTP benchmark: the predict function under functions-framework with the
deployed worker settings (one gunicorn worker, THREADS = predict_concurrency,
pinned to one core like a 1-vCPU instance), loaded by wrk from the other
core; the same for the TensorFlow/Keras variant (bench/tf_serving). Also cold
start (process start to the first successful prediction) and peak RSS."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

import localcloud
from bench import loadgen
from bench.artifacts import Artifacts
from bench.measure import PeakMemory, peak_rss_mb, tree, tree_pss_mb, usable_cores
from bench.samples import Sample
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PROJECT = "bench-fashion"
MODELS_BUCKET = "bench-models"
#: terraform/variables.tf predict_concurrency (default): one gunicorn worker, this many threads
PREDICT_THREADS = 4


def _cores() -> tuple[int | None, int | None]:
    """The server's core and the load generator's (the first two this process
    may use), or neither where there are fewer or no taskset."""
    cores = usable_cores()
    if len(cores) >= 2 and shutil.which("taskset"):
        return cores[0], cores[1]
    return None, None


@contextmanager
def storage_with_model(store: Path, log_dir: Path) -> Iterator[str]:
    """fake-gcs-server with the model store published (the predict function
    downloads its model from the models bucket, as in the cloud)."""
    tools = localcloud.find_tools()
    missing = tools.missing("storage")
    if missing:
        raise RuntimeError(f"cannot start the storage emulator: {missing}")
    proc = localcloud.start_storage(tools, localcloud.free_port(), log_dir)
    try:
        localcloud.wait_until(proc, localcloud.http_answers(f"{proc.url}/storage/v1/b"), 60)
        localcloud.create_buckets(proc.url or "", PROJECT, [MODELS_BUCKET])
        localcloud.publish_model_store(proc.url or "", PROJECT, MODELS_BUCKET, store)
        yield proc.url or ""
    finally:
        localcloud.stop(proc)


def _launch(name: str, source: Path, env: dict[str, str], log_dir: Path, core: int | None) -> localcloud.Proc:
    port = localcloud.free_port()
    executable = Path(sys.executable).with_name("functions-framework")
    launcher = [str(executable)] if executable.is_file() else [sys.executable, "-m", "functions_framework"]
    argv = [*launcher, "--source", str(source), "--target", "predict", "--signature-type", "http"]
    argv += ["--host", localcloud.HOST, "--port", str(port)]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    full_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        "WORKERS": "1",
        "THREADS": str(PREDICT_THREADS),
        **env,
    }
    return localcloud.spawn(
        name, argv, log_dir / f"{name}.log", env=full_env, cwd=REPO, port=port, url=f"http://{localcloud.HOST}:{port}"
    )


def _cold_start(
    proc: localcloud.Proc, url: str, body: bytes, content_type: str, started: float, timeout: float = 120
) -> tuple[float, float]:
    """Seconds from process start to its port accepting connections, and to
    the first 200 from ``url`` (the first request loads the model)."""
    deadline = started + timeout
    listening: float | None = None
    while time.perf_counter() < deadline:
        if not localcloud.alive(proc):
            raise RuntimeError(f"{proc.name} exited during start:\n{localcloud.log_tail(proc)}")
        if listening is None:
            try:
                socket.create_connection((localcloud.HOST, proc.port or 0), timeout=1).close()
                listening = time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
                continue
        try:
            answer = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=timeout)
            if answer.status_code == 200:
                return listening, time.perf_counter() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{proc.name} gave no successful prediction within {timeout} s:\n{localcloud.log_tail(proc)}")


def _serve_and_load(
    name: str, source: Path, env: dict[str, str], samples: list[Sample], *, seconds: float, concurrency: list[int], log_dir: Path
) -> dict[str, Any]:
    server_core, load_core = _cores()
    first, first_type = loadgen.multipart_body("file", "product.jpg", samples[0].data)
    started = time.perf_counter()
    proc = _launch(name, source, env, log_dir, server_core)
    try:
        with PeakMemory(proc.pid) as memory:
            result = _load(proc, name, samples, first, first_type, started, seconds, concurrency, load_core)
        pids = tree(proc.pid)
        result["peak_rss_mb"] = round(sum(peak_rss_mb(p) for p in pids), 1)  # counts shared pages once per process
        result["peak_rss_by_process_mb"] = [peak_rss_mb(p) for p in pids]
        result["peak_pss_mb"] = round(memory.peak_pss_mb, 1)
        result["server_core"], result["load_core"] = server_core, load_core
        return result
    finally:
        localcloud.stop(proc)


def _load(
    proc: localcloud.Proc,
    name: str,
    samples: list[Sample],
    first: bytes,
    first_type: str,
    started: float,
    seconds: float,
    concurrency: list[int],
    load_core: int | None,
) -> dict[str, Any]:
    url = f"{proc.url}/predict"
    listening, cold = _cold_start(proc, url, first, first_type, started)
    pss_after_first = round(tree_pss_mb(proc.pid), 1)
    result: dict[str, Any] = {
        "cold_start_s": round(cold, 3),
        "listening_s": round(listening, 3),
        "pss_after_first_mb": pss_after_first,
        "runs": [],
    }
    print(
        f"  {name}: cold start {cold:.3f} s (listening after {listening:.3f} s), {pss_after_first} MB (PSS) after the first prediction",
        flush=True,
    )
    for sample in samples:
        body, content_type = loadgen.multipart_body("file", f"{sample.name}.jpg", sample.data)
        for _ in range(10):  # warm: caches, lazily built paths, connection pools
            requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=60).raise_for_status()
        for connections in concurrency:
            run = loadgen.run(url, body, content_type, connections=connections, seconds=seconds, core=load_core)
            run["image"] = sample.name
            result["runs"].append(run)
            print(
                f"  {name:<14} {sample.name:<10} c={connections:<3} p50 {run['p50_ms']:8.2f}  p95 {run['p95_ms']:8.2f}  "
                f"p99 {run['p99_ms']:8.2f} ms  {run['requests_per_s']:7.1f} req/s  errors {run['errors']}",
                flush=True,
            )
    return result


def run(artifacts: Artifacts, samples: list[Sample], *, seconds: float, concurrency: list[int]) -> dict[str, Any]:
    reason = loadgen.available()
    if reason:
        raise RuntimeError(reason)
    results: dict[str, Any] = {"threads": PREDICT_THREADS, "seconds_per_run": seconds, "samples": {}}
    for sample in samples:
        results["samples"][sample.name] = sample.describe()
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        log_dir = Path(tmp)
        with storage_with_model(artifacts.store, log_dir) as storage_url:
            settings = Settings(
                project=PROJECT,
                incoming_bucket="bench-incoming",
                processed_bucket="bench-processed",
                models_bucket=MODELS_BUCKET,
                model_cache_dir=str(log_dir / "model-cache"),
            )
            env = localcloud.settings_env(settings) | {"STORAGE_EMULATOR_HOST": storage_url}
            results["litert"] = _serve_and_load(
                "litert-predict",
                REPO / "functions" / "main.py",
                env,
                samples,
                seconds=seconds,
                concurrency=concurrency,
                log_dir=log_dir,
            )
        results["tensorflow"] = _serve_and_load(
            "tf-predict",
            REPO / "bench" / "tf_serving" / "main.py",
            {"BENCH_WORK_DIR": str(artifacts.work_dir.resolve()), "TF_CPP_MIN_LOG_LEVEL": "2"},
            samples,
            seconds=seconds,
            concurrency=concurrency,
            log_dir=log_dir,
        )
    ours, tf = results["litert"], results["tensorflow"]
    results["cold_start_speedup"] = round(tf["cold_start_s"] / ours["cold_start_s"], 1)
    results["p50_speedup"] = {
        f"{run['image']} c={run['connections']}": round(other["p50_ms"] / run["p50_ms"], 1)
        for run, other in zip(ours["runs"], tf["runs"], strict=True)
    }
    return results
