"""The training job end to end on a tiny synthetic dataset: every stage run
alone through the CLI, the quality gate refusing, the published model loaded
by the shared Classifier and used by ``fashionctl classify``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.classifier import Classifier
from shared.manifest import read_manifest
from shared.model_layout import POINTER, parse_pointer
from tests.datasets import make_kaggle_dataset
from training.cli import main as training_main

pytestmark = pytest.mark.training

LABELS = {"Handbags": 14, "Heels": 14, "Watches": 14}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    data = make_kaggle_dataset(root / "data", LABELS, missing=1, corrupt=1, size=48)
    common = [
        "--data",
        str(data),
        "--work-dir",
        str(root / "work"),
        "--out",
        str(root / "store"),
        "--size",
        "32",
        "--weights",
        "none",
        "--head-epochs",
        "2",
        "--fine-tune-epochs",
        "1",
        "--batch-size",
        "8",
        "--representative-count",
        "6",
        "--min-accuracy",
        "0",
        "--version",
        "v-test-1",
        "--log-level",
        "WARNING",
    ]
    stages = {}
    for stage in ("prepare", "train", "export", "evaluate", "thresholds", "gate", "report", "publish"):
        stages[stage] = training_main([stage, *common])
    return {"root": root, "data": data, "work": root / "work", "store": root / "store", "common": common, "codes": stages}


def test_every_stage_runs_alone_and_succeeds(job):
    assert job["codes"] == dict.fromkeys(job["codes"], 0)
    work = job["work"]
    for name in (
        "split.json",
        "model.keras",
        "history.json",
        "model_int8.tflite",
        "model_float32.tflite",
        "model.tflite",
        "manifest.json",
        "metrics.json",
        "report.html",
        "training_curves.png",
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "class_distribution.png",
    ):
        assert (work / name).is_file(), name
    split = json.loads((work / "split.json").read_text())
    assert split["skipped"] == {"missing_image": 1, "unreadable_image:corrupt": 1}
    assert sum(split["counts"].values()) == 42


def test_metrics_cover_keras_and_both_tflite_variants(job):
    metrics = json.loads((job["work"] / "metrics.json").read_text())
    assert set(metrics["variants"]) == {"int8", "float16", "float32", "float16-single"}
    for name in ("keras", "served"):
        assert 0.0 <= metrics[name]["accuracy"] <= 1.0
        assert len(metrics[name]["confusion_matrix"]) == 3
        assert set(metrics[name]["per_class"]) == set(LABELS)
    assert metrics["served_variant"] in metrics["variants"] and "fastest" in metrics["served_because"]
    served = metrics["variants"][metrics["served_variant"]]
    best = max(v["accuracy"] for v in metrics["variants"].values())
    assert served["accuracy"] >= best - 0.005  # the fastest of those that keep the accuracy
    keeping = [v for v in metrics["variants"].values() if v["accuracy"] >= best - 0.005]
    assert served["invoke_ms"] == min(v["invoke_ms"] for v in keeping)
    assert metrics["variants"]["float16-single"]["flip_average"] is False and metrics["variants"]["int8"]["flip_average"]
    assert 0.0 <= metrics["agreement"] <= 1.0
    assert metrics["gate"]["passed"] is True
    assert set(metrics["stage_seconds"]) >= {"prepare", "train", "export", "evaluate"}
    manifest = read_manifest(job["work"] / "manifest.json")
    assert manifest.labels == sorted(LABELS) and manifest.version == "v-test-1"
    assert manifest.metrics["test_accuracy"] == round(metrics["served"]["accuracy"], 4)
    if metrics["served_variant"] == "int8":
        assert manifest.input_dtype == "uint8" and manifest.quantization["output"]["dtype"] == "uint8"


def test_report_is_self_contained_html_with_charts(job):
    html = (job["work"] / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "v-test-1" in html
    assert html.count("data:image/png;base64,") == 4
    assert "src='http" not in html and 'src="http' not in html
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert (job["work"] / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_published_model_is_current_and_loads_in_the_classifier(job):
    store = job["store"]
    assert parse_pointer((store / POINTER).read_bytes()) == "v-test-1"
    for name in ("model.tflite", "manifest.json", "metrics.json", "report.html", "split.json"):
        assert (store / "models" / "v-test-1" / name).is_file(), name
    classifier = Classifier.load(store)
    assert classifier.version == "v-test-1" and classifier.labels == sorted(LABELS)
    image = next((job["data"] / "images").glob("*.jpg"))
    prediction = classifier.classify(image.read_bytes())
    assert prediction.label in LABELS


def test_gate_refuses_and_pointer_stays(job):
    refused = [*job["common"], "--min-accuracy", "1.01", "--version", "v-test-2"]
    assert training_main(["evaluate", *refused]) == 0
    assert training_main(["gate", *refused]) == 3
    assert training_main(["publish", *refused]) == 3
    store = job["store"]
    assert parse_pointer((store / POINTER).read_bytes()) == "v-test-1"
    assert (store / "models" / "v-test-2" / "model.tflite").is_file()
    metrics = json.loads((job["work"] / "metrics.json").read_text())
    assert metrics["gate"]["passed"] is False and "below the floor" in metrics["gate"]["reason"]


def test_fashionctl_classify_json(job, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    images = sorted((job["data"] / "images").glob("*.jpg"))[:3]
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "notes.jpg").write_text("not an image")
    fashionctl = [sys.executable, "-m", "fashionctl.cli"]
    result = subprocess.run(
        [*fashionctl, "classify", "--model-dir", str(job["store"]), "--json", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1, result.stderr  # one file failed
    assert len(lines) == 4
    good = [line for line in lines if "error" not in line]
    bad = [line for line in lines if "error" in line]
    assert len(good) == 3 and len(bad) == 1
    assert bad[0]["file"].endswith("notes.jpg") and bad[0]["reason"] == "not_an_image"
    for line in good:
        assert set(line) == {"file", "label", "confidence", "top_k"}
        assert line["label"] in LABELS and line["top_k"][0] == {"label": line["label"], "score": line["confidence"]}
    table = subprocess.run(
        [*fashionctl, "classify", "--model-dir", str(job["store"]), str(folder / images[0].name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "v-test-1" in table.stdout and images[0].name in table.stdout


def test_fashionctl_reports_a_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fashionctl.cli", "classify", "--model-dir", str(tmp_path), "x.jpg"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "holds no model" in result.stderr


def test_the_thresholds_stage_writes_every_class_into_the_manifest_and_report(job):
    """Run alone, it measured the validation split through the served model;
    with two or three validation images a class, below --min-auto-images (20),
    no class may auto-file: every auto threshold is 1.0 (never), and the
    published manifest and report say so (read from the store: a later test
    runs evaluate again in the work folder)."""
    published = job["store"] / "models" / "v-test-1"
    thresholds = read_manifest(published / "manifest.json").thresholds
    split = json.loads((published / "split.json").read_text())
    assert thresholds["images"] == split["counts"]["val"] and thresholds["split"] == "val"
    assert set(thresholds["classes"]) == set(LABELS)
    assert all(not e["auto_reached"] and e["auto"] == 1.0 for e in thresholds["classes"].values())
    assert sum(e["predicted"] for e in thresholds["classes"].values()) == split["counts"]["val"]
    assert "Never auto-filed" in (published / "report.html").read_text(encoding="utf-8")
