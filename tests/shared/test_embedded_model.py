"""The embedded default model (default-model/) and the demo samples
(samples/): they load and work with nothing beside the checkout, and the
model still scores what its manifest and the README say on the test split
its own split.json lists (read from ../shared by path when it is there)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from shared.classifier import Classifier
from shared.dev_paths import DEV_DATA_12K, EMBEDDED_MODEL_STORE, REPO_ROOT, SAMPLES_DIR, default_model_store
from shared.errors import ImageError
from shared.model_layout import resolve_model_dir


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load(EMBEDDED_MODEL_STORE)


@pytest.fixture(scope="module")
def version_dir():
    return resolve_model_dir(EMBEDDED_MODEL_STORE)


def test_the_embedded_model_is_small_complete_and_the_default(classifier, version_dir, tmp_path):
    assert (version_dir / "model.tflite").stat().st_size < 2_000_000
    for name in ("manifest.json", "metrics.json", "split.json", "report.html"):
        assert (version_dir / name).is_file(), name
    assert classifier.labels == json.loads((version_dir / "split.json").read_text())["labels"]
    assert default_model_store(trained=tmp_path / "no-store") == EMBEDDED_MODEL_STORE


def test_the_samples_are_classified_and_the_non_photo_is_refused(classifier):
    rows = list(csv.DictReader((SAMPLES_DIR / "labels.csv").open(encoding="utf-8")))
    photos = [r for r in rows if r["label"]]
    assert len(photos) == 30 and {r["label"] for r in photos} == set(classifier.labels)
    correct = sum(classifier.classify((SAMPLES_DIR / r["file"]).read_bytes()).label == r["label"] for r in photos)
    assert correct >= 27, f"{correct}/30"
    (odd,) = [r for r in rows if not r["label"]]
    with pytest.raises(ImageError) as caught:
        classifier.classify((SAMPLES_DIR / odd["file"]).read_bytes())
    assert caught.value.reason == "not_an_image"


def test_the_samples_come_from_the_test_split(version_dir):
    test_ids = {i for i, _ in json.loads((version_dir / "split.json").read_text())["items"]["test"]}
    rows = [r for r in csv.DictReader((SAMPLES_DIR / "labels.csv").open(encoding="utf-8")) if r["label"]]
    assert {r["file"].removesuffix(".jpg") for r in rows} <= test_ids


def test_the_embedded_model_scores_what_its_manifest_and_the_readme_say(classifier, version_dir):
    split = json.loads((version_dir / "split.json").read_text())
    images = DEV_DATA_12K / "images"
    if not images.is_dir():
        pytest.skip(f"the 12k data set is not at {DEV_DATA_12K}: the test split's images are read from there")
    index = {label: k for k, label in enumerate(split["labels"])}
    truth, predicted = [], []
    for image_id, label in split["items"]["test"]:
        scores = classifier.classify((images / f"{image_id}.jpg").read_bytes(), top_k=1)
        truth.append(index[label])
        predicted.append(index[scores.label])
    accuracy = float(np.mean(np.array(truth) == np.array(predicted)))
    stated = classifier.manifest.metrics["test_accuracy"]
    assert len(truth) == classifier.manifest.metrics["test_images"]
    assert abs(accuracy - stated) <= 0.005, (accuracy, stated)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    figure = f"{100 * stated:.1f}%"
    assert re.search(rf"embedded[^\n]*{re.escape(figure)}", readme), f"README states no {figure} for the embedded model"


def test_the_embedded_model_carries_thresholds_for_every_label(classifier, version_dir):
    """Its manifest has both thresholds of every class (``python -m training
    thresholds``, measured on its validation split), which serving applies,
    and its report shows them."""
    from shared.settings import Settings
    from shared.thresholds import policy

    thresholds = classifier.manifest.thresholds
    assert thresholds["split"] == "val" and thresholds["images"] == classifier.manifest.training_data["counts"]["val"]
    assert set(thresholds["classes"]) == set(classifier.labels)
    for label, entry in thresholds["classes"].items():
        assert 0 < entry["check"] <= entry["auto"] <= 1, label
        assert entry["auto_images"] + entry["check_images"] + entry["review_images"] == entry["predicted"], label
        if entry["auto_reached"]:
            assert entry["auto_precision"] >= thresholds["auto_precision"] and entry["auto_images"] >= 20, label
    used = policy(classifier.manifest, Settings(project="p", incoming_bucket="i", processed_bucket="o", models_bucket="m"))
    assert {label: used.for_label(label).source for label in classifier.labels} == dict.fromkeys(classifier.labels, "manifest")
    assert "Per-class thresholds (validation split)" in (version_dir / "report.html").read_text(encoding="utf-8")
