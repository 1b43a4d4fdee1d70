"""Attribute heads (issue 19): a tiny multi-head model exported to every
TFLite variant, one invoke giving every head, the manifest's attributes, and
the classifier's attributes with their thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shared.errors import ModelError
from shared.manifest import Manifest, read_manifest, write_manifest
from shared.model_layout import MANIFEST_FILE, MODEL_FILE

pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the tiny test models")
pytestmark = pytest.mark.training

SIZE = 32
LABELS = ["Alpha Shoes", "Beta Bags", "Gamma Tops"]
ATTRS = {"gender": ["Men", "Women"], "colour": ["black", "white", "blue", "red"]}


def _tiny(attributes: dict[str, int], seed: int = 7):
    import keras

    from training.model import ModelSpec, heads, with_flip_averaging

    keras.utils.set_random_seed(seed)
    spec = ModelSpec(num_classes=len(LABELS), size=SIZE, weights=None, attributes=attributes)
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return with_flip_averaging(keras.Model(inputs, heads(x, spec), name="tiny_multi"))


def _pixels(count: int = 6, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{variant: (model bytes, folder with model + manifest)} for a multi-head
    model, plus the keras model and a single-head model's int8 bytes."""
    from shared.classifier import inspect_model
    from shared.manifest import sha256_bytes
    from training.export import to_float16, to_float32, to_int8
    from training.model import attribute_output

    model = _tiny({name: len(labels) for name, labels in ATTRS.items()})
    calibration = _pixels(24, seed=5).astype(np.float32)
    variants = {"int8": to_int8(model, calibration), "float16": to_float16(model), "float32": to_float32(model)}
    folders = {}
    for variant, data in variants.items():
        folder = tmp_path_factory.mktemp(variant)
        (folder / MODEL_FILE).write_bytes(data)
        details = inspect_model(data)
        manifest = Manifest(
            version=f"tiny-multi-{variant}",
            labels=LABELS,
            input_size=SIZE,
            input_dtype=details["input"]["dtype"],
            quantization={"type": variant},
            model_sha256=sha256_bytes(data),
            attributes={
                name: {"labels": labels, "output": attribute_output(name), "threshold": 0.0} for name, labels in ATTRS.items()
            },
        )
        write_manifest(manifest, folder / MANIFEST_FILE)
        folders[variant] = folder
    single = to_int8(_tiny({}), calibration)
    return {"model": model, "bytes": variants, "folders": folders, "single_int8": single}


@pytest.mark.parametrize("variant", ["int8", "float16", "float32"])
def test_one_invoke_gives_every_head(exported, variant):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=exported["bytes"][variant])
    interpreter.allocate_tensors()
    names = set(interpreter.get_signature_runner().get_output_details())
    assert names == {"probabilities", "attr_gender", "attr_colour"}
    detail = interpreter.get_input_details()[0]
    pixels = _pixels(1)
    interpreter.set_tensor(detail["index"], pixels if detail["dtype"] == np.uint8 else pixels.astype(np.float32))
    interpreter.invoke()
    sizes = {d["name"]: int(d["shape"][-1]) for d in interpreter.get_output_details()}
    assert sorted(sizes.values()) == sorted([len(LABELS), *(len(v) for v in ATTRS.values())])


def test_category_output_keeps_the_single_head_contract(exported):
    from shared.classifier import inspect_model

    single = inspect_model(exported["single_int8"])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=exported["bytes"]["int8"])
    category = interpreter.get_signature_runner().get_output_details()["probabilities"]
    assert [int(d) for d in category["shape"]] == single["output"]["shape"] == [1, len(LABELS)]
    assert np.dtype(category["dtype"]).name == single["output"]["dtype"] == "uint8"
    assert single["input"] == inspect_model(exported["bytes"]["int8"])["input"]


@pytest.mark.parametrize("variant", ["int8", "float32"])
def test_classifier_returns_attributes_matching_keras(exported, variant):
    from shared.classifier import Classifier

    classifier = Classifier.load(exported["folders"][variant])
    pixels = _pixels(6)
    categories, attributes = classifier.predict_heads(pixels)
    expected = exported["model"].predict(pixels.astype(np.float32), verbose=0)
    tolerance = 0.08 if variant == "int8" else 1e-4
    np.testing.assert_allclose(categories, expected["probabilities"], atol=tolerance)
    for name in ATTRS:
        np.testing.assert_allclose(attributes[name], expected[f"attr_{name}"], atol=tolerance)
    prediction = classifier.classify_pixels(pixels[:1])[0]
    assert set(prediction.attributes) == set(ATTRS)
    colour = prediction.attributes["colour"]
    assert colour.value == colour.best == ATTRS["colour"][int(np.argmax(attributes["colour"][0]))]
    as_json = prediction.to_dict()
    assert as_json["attributes"]["gender"]["low_confidence"] is False


def test_low_confidence_attribute_is_left_empty(exported, tmp_path):
    from shared.classifier import Classifier

    folder = exported["folders"]["float32"]
    manifest = read_manifest(folder / MANIFEST_FILE)
    manifest.attributes["colour"]["threshold"] = 1.0  # no softmax of 4 random classes reaches 1.0
    manifest.attributes["gender"]["threshold"] = 0.5  # 2 classes: the top one always reaches 0.5
    classifier = Classifier((folder / MODEL_FILE).read_bytes(), manifest)
    prediction = classifier.classify_pixels(_pixels(1))[0]
    assert prediction.attributes["colour"].value is None and prediction.attributes["colour"].low_confidence
    assert prediction.attributes["colour"].best in ATTRS["colour"]
    assert prediction.attributes["gender"].value in ATTRS["gender"]


def test_manifest_round_trip_and_backwards_compatibility(exported, tmp_path):
    folder = exported["folders"]["int8"]
    manifest = read_manifest(folder / MANIFEST_FILE)
    assert manifest.attributes["colour"]["labels"] == ATTRS["colour"]
    write_manifest(manifest, tmp_path / "again.json")
    assert read_manifest(tmp_path / "again.json") == manifest
    old = json.loads((folder / MANIFEST_FILE).read_text())
    del old["attributes"]  # a manifest from before attribute heads
    assert Manifest.from_dict(old).attributes == {}
    for bad in (
        {"colour": {"labels": ["x"], "output": "attr_colour", "threshold": 0.5}},
        {"colour": {"labels": ["a", "b"], "output": "attr_colour", "threshold": 2}},
    ):
        with pytest.raises(ModelError, match="attribute 'colour'"):
            Manifest.from_dict({**old, "attributes": bad})


def test_model_without_the_named_output_is_refused(exported):
    from shared.classifier import Classifier

    folder = exported["folders"]["float32"]
    manifest = read_manifest(folder / MANIFEST_FILE)
    manifest.attributes["usage"] = {"labels": ["Casual", "Sports"], "output": "attr_usage", "threshold": 0.5}
    with pytest.raises(ModelError, match="attr_usage"):
        Classifier((folder / MODEL_FILE).read_bytes(), manifest)


def test_category_only_model_has_no_attributes(tiny_model_dir):
    from shared.classifier import Classifier

    classifier = Classifier.load(tiny_model_dir.int8_dir)
    prediction = classifier.classify_pixels(np.zeros((1, tiny_model_dir.size, tiny_model_dir.size, 3), np.uint8))[0]
    assert prediction.attributes == {} and "attributes" not in prediction.to_dict()


def test_multi_head_model_with_a_category_only_manifest_serves_the_category(exported, tmp_path):
    from shared.classifier import Classifier, inspect_model

    folder = exported["folders"]["float32"]
    manifest = read_manifest(folder / MANIFEST_FILE)
    manifest.attributes = {}
    classifier = Classifier((folder / MODEL_FILE).read_bytes(), manifest)
    pixels = _pixels(3)
    expected = exported["model"].predict(pixels.astype(np.float32), verbose=0)["probabilities"]
    np.testing.assert_allclose(classifier.predict_arrays(pixels), expected, atol=1e-4)
    assert classifier.classify_pixels(pixels[:1])[0].attributes == {}
    assert inspect_model(exported["bytes"]["int8"])["output"]["shape"] == [1, len(LABELS)]
