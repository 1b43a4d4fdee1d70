"""The training job with attribute heads (issue 19), every stage run alone
through the CLI on a tiny synthetic dataset whose styles.csv varies gender
and colour (usage and season have one value: no head): the cached-feature
path trains every head, every exported variant gives every head in one
invoke, the evaluate and thresholds stages write each attribute's labels,
threshold (chosen on val) and test report into the manifest and metrics,
and the report has the attribute section."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from shared.classifier import Classifier
from shared.manifest import read_manifest
from shared.model_layout import MANIFEST_FILE, MODEL_FILE
from shared.thresholds import NEVER
from tests.datasets import make_kaggle_dataset
from training.cli import main as training_main

pytestmark = pytest.mark.training

LABELS = {"Handbags": 26, "Heels": 26, "Watches": 26}


def _vary_attributes(root) -> None:
    """Rewrite styles.csv: gender and colour alternate within each class
    (so each value has >= 20 training rows), usage and season stay as one
    value each (no head: an attribute needs two classes)."""
    path = root / "styles.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    gender, colour = header.index("gender"), header.index("baseColour")
    for k, row in enumerate(body):
        if len(row) == len(header):
            row[gender] = ("Men", "Women")[k % 2]
            row[colour] = ("Navy Blue", "Black", "Blue")[(k // 2) % 3]  # blue family twice as often as black
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("attr-job")
    data = make_kaggle_dataset(root / "data", LABELS, size=40)
    _vary_attributes(data)
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
        "1",
        "--fine-tune-epochs",
        "1",
        "--batch-size",
        "8",
        "--representative-count",
        "6",
        "--min-accuracy",
        "0",
        "--attributes",
        "--version",
        "v-attr-1",
        "--log-level",
        "WARNING",
    ]
    codes = {
        stage: training_main([stage, *common]) for stage in ("prepare", "train", "export", "evaluate", "thresholds", "report")
    }
    return {"root": root, "data": data, "work": root / "work", "codes": codes}


def test_every_stage_succeeds_and_the_heads_trained(job):
    assert job["codes"] == dict.fromkeys(job["codes"], 0)
    history = json.loads((job["work"] / "history.json").read_text())
    assert {"attr_gender_loss", "attr_colour_loss", "probabilities_loss", "accuracy", "val_accuracy"} <= set(history)
    assert "attr_usage_loss" not in history and "attr_season_loss" not in history
    assert len(history["val_accuracy"]) == len(history["loss"]) == len(history["phase"])


def test_every_variant_gives_every_head_in_one_invoke(job):
    from ai_edge_litert.interpreter import Interpreter

    from training.pipeline import VARIANT_FILES

    for variant, name in VARIANT_FILES.items():
        interpreter = Interpreter(model_content=(job["work"] / name).read_bytes())
        runner = interpreter.get_signature_runner()
        assert set(runner.get_output_details()) == {"probabilities", "attr_gender", "attr_colour"}, variant
        detail = runner.get_input_details()["pixels"]
        out = runner(pixels=np.zeros(detail["shape"], detail["dtype"]))  # one call returns every head
        assert {k: v.shape[-1] for k, v in out.items()} == {"probabilities": 3, "attr_gender": 2, "attr_colour": 2}, variant


def test_manifest_carries_labels_outputs_and_val_thresholds(job):
    manifest = read_manifest(job["work"] / MANIFEST_FILE)
    assert set(manifest.attributes) == {"gender", "colour"}  # the manifest file sorts its keys
    assert manifest.attributes["gender"]["labels"] == ["Men", "Women"]
    assert manifest.attributes["colour"]["labels"] == ["black", "blue"]  # families, in FAMILIES order
    assert manifest.attributes["colour"]["mapping"] == {"black": "black", "blue": "blue"}  # values after COLOUR_FAMILIES
    split = json.loads((job["work"] / "split.json").read_text())
    for name, head in manifest.attributes.items():
        assert head["output"] == f"attr_{name}"
        assert 0.0 <= head["threshold"] <= NEVER
        assert head["val"]["val_images"] == split["counts"]["val"]  # every val image has both labels
        assert head["val"]["reached"] == (head["threshold"] < NEVER)
    assert set(manifest.metrics["attributes"]) == {"gender", "colour"}
    assert manifest.thresholds["classes"]  # the category's thresholds are there as before


def test_served_model_returns_the_attributes_with_their_thresholds(job):
    classifier = Classifier.load(job["work"])
    manifest = read_manifest(job["work"] / MANIFEST_FILE)
    image = next((job["data"] / "images").glob("*.jpg")).read_bytes()
    prediction = classifier.classify(image)
    assert set(prediction.attributes) == {"gender", "colour"}
    for name, attribute in prediction.attributes.items():
        assert attribute.threshold == manifest.attributes[name]["threshold"]
        assert attribute.best in manifest.attributes[name]["labels"]
        assert attribute.value == (attribute.best if attribute.confidence >= attribute.threshold < NEVER else None)
    assert (job["work"] / MODEL_FILE).is_file()


def test_metrics_and_report_have_the_attribute_section(job):
    metrics = json.loads((job["work"] / "metrics.json").read_text())
    manifest = read_manifest(job["work"] / MANIFEST_FILE)
    split = json.loads((job["work"] / "split.json").read_text())
    for name in ("gender", "colour"):
        m = metrics["attributes"][name]
        assert m["images"] == split["counts"]["test"] and m["missing"] == 0
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
        assert np.asarray(m["confusion_matrix"]).sum() == m["images"]
        assert m["threshold"] == manifest.attributes[name]["threshold"]
        assert 0.0 <= m["coverage"] <= 1.0
        assert name in metrics["keras_attributes"]
        for variant in metrics["variants"].values():
            assert 0.0 <= variant["attributes"][name]["agreement"] <= 1.0
    page = (job["work"] / "report.html").read_text()
    assert "Attributes (test split)" in page and "<td>gender</td>" in page and "colour: confusion" in page


def test_a_model_without_heads_keeps_its_manifest_category_only(job, tmp_path):
    """--no-attributes on the same data: no heads anywhere."""
    work = tmp_path / "work"
    args = [
        "--data",
        str(job["data"]),
        "--work-dir",
        str(work),
        "--size",
        "32",
        "--weights",
        "none",
        "--head-epochs",
        "1",
        "--fine-tune-epochs",
        "0",
        "--batch-size",
        "8",
        "--no-attributes",
        "--log-level",
        "WARNING",
    ]
    for stage in ("prepare", "train"):
        assert training_main([stage, *args]) == 0
    history = json.loads((work / "history.json").read_text())
    assert not any(key.startswith("attr_") for key in history)
