"""The committed model with attribute heads (attributes-model/, issue 19):
it loads beside the checkout alone, one invoke answers the category and the
four attributes with their thresholds, and on the test split its own
split.json lists it scores what its metrics and the README say (the images
read from ../shared by path when they are there)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from shared.attributes import ATTRIBUTES
from shared.classifier import Classifier
from shared.dev_paths import DEV_DATA_12K, REPO_ROOT, SAMPLES_DIR
from shared.model_layout import resolve_model_dir

STORE = REPO_ROOT / "attributes-model"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load(STORE)


def test_the_store_is_complete_and_small(classifier):
    version_dir = resolve_model_dir(STORE)
    assert (version_dir / "model.tflite").stat().st_size < 2_000_000
    for name in ("manifest.json", "metrics.json", "split.json", "report.html"):
        assert (version_dir / name).is_file(), name
    assert set(classifier.manifest.attributes) == set(ATTRIBUTES)


def test_one_classify_answers_every_attribute_with_its_threshold(classifier):
    rows = [r for r in csv.DictReader((SAMPLES_DIR / "labels.csv").open(encoding="utf-8")) if r["label"]]
    correct = 0
    for row in rows:
        prediction = classifier.classify((SAMPLES_DIR / row["file"]).read_bytes())
        correct += prediction.label == row["label"]
        assert set(prediction.attributes) == set(ATTRIBUTES)
        for name, attribute in prediction.attributes.items():
            labels = classifier.manifest.attributes[name]["labels"]
            assert attribute.best in labels
            assert attribute.threshold == pytest.approx(classifier.manifest.attributes[name]["threshold"])
            # below its threshold an attribute is left empty, never guessed
            assert attribute.value == (attribute.best if attribute.confidence >= attribute.threshold else None)
    assert correct >= 27, f"{correct}/30"


def test_it_scores_what_its_metrics_and_the_readme_say(classifier):
    version_dir = resolve_model_dir(STORE)
    split = json.loads((version_dir / "split.json").read_text())
    images = DEV_DATA_12K / "images"
    if not images.is_dir():
        pytest.skip(f"the 12k data set is not at {DEV_DATA_12K}: the test split's images are read from there")
    hits = [
        classifier.classify((images / f"{image_id}.jpg").read_bytes(), top_k=1).label == label
        for image_id, label in split["items"]["test"]
    ]
    accuracy = float(np.mean(hits))
    stated = classifier.manifest.metrics["test_accuracy"]
    assert abs(accuracy - stated) <= 0.005, (accuracy, stated)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\*\*{re.escape(f'{100 * stated:.2f}%')}\*\* \(803\)", readme), "README states another figure"
