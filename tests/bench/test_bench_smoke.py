"""A short run of every benchmark (``python -m bench all --quick``) on a
tiny synthetic dataset: the benchmarks keep working, and their results hold
what docs/benchmarks.md reports. Measures nothing itself: timings are never
asserted, only that each figure was produced and is sane."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.datasets import make_kaggle_dataset
from tests.emulators import require

REPO = Path(__file__).resolve().parents[2]
UPLOADS = 8
pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed for the training run and the Keras baseline")
    require("storage", "pubsub", "firestore")
    root = tmp_path_factory.mktemp("bench")
    data = make_kaggle_dataset(root / "data", {"Handbags": 12, "Heels": 12, "Watches": 12}, size=48)
    sections = ["training", "inference", "pipeline"] + (["http"] if shutil.which("wrk") else [])
    argv = [sys.executable, "-m", "bench", *sections, "--quick", "--out", str(root / "out"), "--data", str(data)]
    argv += ["--weights", "none", "--train-arg=--size", "--train-arg=48", "--train-arg=--log-level", "--train-arg=WARNING"]
    argv += ["--uploads", str(UPLOADS), "--iterations", "10", "--seconds", "1", "--concurrency", "1,4"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    out = json.loads((root / "out" / "results.json").read_text())
    out["_stdout"] = done.stdout
    out["_markdown"] = (root / "out" / "results.md").read_text()
    return out


def test_training_stage_times(results: dict[str, Any]) -> None:
    training = results["training"]
    assert set(training["stages_s"]) == {"prepare", "train", "export", "evaluate", "thresholds", "gate", "report", "publish"}
    assert training["wall_s"] >= sum(training["stages_s"].values()) > 0
    assert training["peak_rss_mb"] > 100  # TensorFlow was loaded
    assert "total wall time" in results["_stdout"]


def test_inference_rows_and_ratios(results: dict[str, Any]) -> None:
    inference = results["inference"]
    expected = {
        f"{variant} {path}"
        for variant in ("int8", "float32")
        for path in ("bare invoke()", "Classifier.predict_arrays", "Classifier.classify (JPEG bytes)")
    }
    assert expected <= set(inference["rows"])
    assert {"Keras model.predict", "preprocess product JPEG", "preprocess 2-MP photo"} <= set(inference["rows"])
    for row in inference["rows"].values():
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["images_per_s"] > 0
    for variant in ("int8", "float32"):
        assert inference[f"{variant}_overhead_ratio"] > 0
        assert inference["speedup_vs_keras_predict"][variant] > 0


def test_inference_compares_every_exported_variant_and_names_the_served_one(results: dict[str, Any]) -> None:
    inference = results["inference"]
    assert inference["variants"] == ["int8", "float16", "float32", "float16-single"]
    for variant in inference["variants"]:
        assert inference["rows"][f"{variant} bare invoke()"]["p50_ms"] > 0
        assert inference[f"{variant}_overhead_ratio"] > 0
    assert inference["served_variant"] in inference["variants"] and "fastest" in inference["served_because"]
    assert inference["fastest_variant"] in inference["variants"]
    assert isinstance(inference["served_is_fastest"], bool)
    assert f"served: {inference['served_variant']}" in results["_stdout"]


def test_http_both_servers_all_loads(results: dict[str, Any]) -> None:
    if "http" not in results:
        pytest.skip("wrk (Debian package wrk) is not installed: the HTTP benchmark needs it as its load generator")
    http = results["http"]
    for server in ("litert", "tensorflow"):
        runs = http[server]["runs"]
        assert {(r["image"], r["connections"]) for r in runs} == {(i, c) for i in ("product", "photo-2mp") for c in (1, 4)}
        for run in runs:
            assert run["requests"] > 0 and run["errors"] == 0, run
            assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
        assert http[server]["cold_start_s"] > 0
        assert http[server]["peak_pss_mb"] > 0
    # the served model answers with far less memory than TensorFlow: a
    # regression importing TensorFlow into serving would show here
    assert http["litert"]["peak_pss_mb"] < http["tensorflow"]["peak_pss_mb"]
    names = {t["target"] for t in results["targets"]}
    assert any(n.startswith("cold start") for n in names) and any(n.startswith("warm predict p50") for n in names)


def test_pipeline_every_upload_finished(results: dict[str, Any]) -> None:
    pipeline = results["pipeline"]
    assert pipeline["uploads"] == UPLOADS
    assert sum(pipeline["statuses"].values()) == UPLOADS
    assert pipeline["latency"]["count"] == UPLOADS
    assert pipeline["images_per_s"] > 0
    assert {"function", "firestore", "storage", "pubsub", "bridge"} <= set(pipeline["cpu_s"])
    assert {"download", "classify", "copy", "delete", "total"} <= set(pipeline["function_step_ms"])
    assert "cores busy" in pipeline["bound_by"]


def test_markdown_report(results: dict[str, Any]) -> None:
    markdown = results["_markdown"]
    for heading in ("### Training job", "### Inference (one core)", "### Pipeline", "### Targets"):
        assert heading in markdown
