"""Per-class thresholds end to end: a model whose manifest carries chosen
thresholds is published to fake-gcs-server; uploads go through the classify
function (functions-framework over HTTP, Firestore emulator) and land in the
band, status and destination those thresholds give; predict answers the same
band and threshold; CLASS_THRESHOLDS overrides the manifest."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from shared.classifier import Classifier
from shared.labels import slugify
from shared.manifest import read_manifest, write_manifest
from shared.model_layout import MANIFEST_FILE
from tests.datasets import synthetic_product
from tests.emulators import free_port
from tests.pipeline.conftest import PROCESSED, REPO, EmulatedCloud, emulated_cloud, function_env

TIMEOUT = 60


@dataclass
class Case:
    """One image and the band the chosen thresholds put it in."""

    band: str
    data: bytes
    label: str
    confidence: float


@dataclass
class BandStack(EmulatedCloud):
    storage_url: str
    classify_url: str
    override_url: str  # a classify function with CLASS_THRESHOLDS="*=0"
    predict_url: str
    cases: dict[str, Case]
    thresholds: dict[str, dict[str, float]]

    def record(self, name: str) -> dict[str, Any]:
        (doc,) = [d.to_dict() for d in self.firestore().collection("classifications").stream() if d.get("source")["name"] == name]
        return doc


def _cases(model_dir: Path) -> tuple[dict[str, Case], dict[str, dict[str, float]]]:
    """Three synthetic images the tiny model gives three different labels,
    and thresholds for those labels that put one in each band."""
    classifier = Classifier.load(model_dir)
    by_label: dict[str, tuple[bytes, float]] = {}
    for k in range(60):
        data = synthetic_product(k % 3, k, size=64)
        prediction = classifier.classify(data)
        if prediction.label not in by_label and 0.05 < prediction.confidence < 0.99:
            by_label[prediction.label] = (data, prediction.confidence)
    assert len(by_label) == 3, f"the tiny model gave only {sorted(by_label)} to the synthetic images"
    (auto_label, (auto_data, auto_c)), (check_label, (check_data, check_c)), (review_label, (review_data, review_c)) = (
        by_label.items()
    )
    thresholds = {
        auto_label: {"auto": round(auto_c - 0.01, 6), "check": round(auto_c - 0.02, 6)},
        check_label: {"auto": round(check_c + 0.005, 6), "check": round(check_c - 0.01, 6)},
        review_label: {"auto": 1.0, "check": round(review_c + 0.005, 6)},  # never auto-filed
    }
    cases = {
        "auto": Case("auto", auto_data, auto_label, auto_c),
        "check": Case("check", check_data, check_label, check_c),
        "review": Case("review", review_data, review_label, review_c),
    }
    return cases, thresholds


@pytest.fixture(scope="module")
def bands(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[BandStack]:
    logs = tmp_path_factory.mktemp("bands")
    model_dir = logs / "model"
    shutil.copytree(tiny_model_dir.int8_dir, model_dir)
    cases, thresholds = _cases(model_dir)
    manifest = read_manifest(model_dir / MANIFEST_FILE)
    manifest.version = "tiny-thresholds"
    manifest.thresholds = {"classes": thresholds, "split": "val", "rule": "chosen by the test"}
    write_manifest(manifest, model_dir / MANIFEST_FILE)
    with emulated_cloud(logs, model_dir) as (storage_url, firestore_host):
        # CONFIDENCE_THRESHOLD 0.5 (function_env's) applies to no class here: the manifest names all three
        env = function_env(storage_url, firestore_host, logs / "cache")
        override_env = function_env(storage_url, firestore_host, logs / "cache-override") | {"CLASS_THRESHOLDS": "*=0"}
        procs = [
            localcloud.start_function(REPO / "functions" / "main.py", "classify_upload", free_port(), logs, env),
            _cloudevent_function(free_port(), logs, override_env, "classify-override"),
            localcloud.start_http_function(REPO / "functions" / "main.py", "predict", free_port(), logs, env, name="predict"),
        ]
        try:
            for proc in procs[:2]:
                localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            localcloud.wait_until(procs[2], localcloud.http_answers(f"{procs[2].url}/health"), 60)
            urls = [proc.url or "" for proc in procs]
            yield BandStack(storage_url, *urls, cases=cases, thresholds=thresholds)
        finally:
            for proc in procs:
                localcloud.stop(proc)


def _cloudevent_function(port: int, logs: Path, env: dict[str, str], name: str) -> Any:
    from localcloud.components import HOST, start_functions_framework

    source = REPO / "functions" / "main.py"
    return start_functions_framework(source, "classify_upload", "cloudevent", port, logs, env, name, f"http://{HOST}:{port}/")


def _upload_and_deliver(stack: BandStack, url: str, name: str, data: bytes) -> dict[str, Any]:
    from tests.cloudevents import post_blob_event

    blob = stack.upload(name, data)
    response = post_blob_event(url, blob, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return stack.record(name)


@pytest.mark.parametrize("band", ["auto", "check", "review"])
def test_an_upload_lands_in_the_band_its_class_thresholds_give(bands: BandStack, band: str) -> None:
    case = bands.cases[band]
    name = f"bands/{band}.jpg"
    doc = _upload_and_deliver(bands, bands.classify_url, name, case.data)
    assert (doc["label"], doc["confidence"], doc["band"]) == (case.label, case.confidence, band)
    if band == "auto":
        assert doc["status"] == "classified" and doc["destination"]["name"] == f"{slugify(case.label)}/{name}"
    else:
        assert doc["status"] == "needs_review" and doc["destination"]["name"] == f"review/{slugify(case.label)}/{name}"
    copy = bands.storage().bucket(PROCESSED).get_blob(doc["destination"]["name"])
    assert copy is not None and copy.metadata["band"] == band and copy.metadata["status"] == doc["status"]
    assert name not in bands.incoming()


def test_predict_answers_the_same_band_and_the_threshold_it_used(bands: BandStack) -> None:
    for band, case in bands.cases.items():
        response = requests.post(f"{bands.predict_url}/predict", files={"file": case.data}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body = response.json()
        used = bands.thresholds[case.label]
        assert (body["category"], body["band"], body["needs_review"]) == (case.label, band, band != "auto")
        assert (body["threshold"], body["check_threshold"], body["threshold_source"]) == (used["auto"], used["check"], "manifest")
    # a request's threshold applies to every class, each keeping its check threshold (capped at it)
    review = bands.cases["review"]
    body = requests.post(
        f"{bands.predict_url}/predict", files={"file": review.data}, data={"threshold": "0"}, timeout=TIMEOUT
    ).json()
    assert (body["band"], body["threshold"], body["check_threshold"], body["threshold_source"]) == ("auto", 0.0, 0.0, "override")


def test_class_thresholds_override_the_manifest(bands: BandStack) -> None:
    """CLASS_THRESHOLDS="*=0": every class auto-files, even the one its manifest never auto-files."""
    case = bands.cases["review"]
    name = "bands/override-review.jpg"
    doc = _upload_and_deliver(bands, bands.override_url, name, case.data)
    assert (doc["band"], doc["status"]) == ("auto", "classified")
    assert doc["destination"]["name"] == f"{slugify(case.label)}/{name}"
    assert doc["destination"]["bucket"] == PROCESSED and name not in bands.incoming()
