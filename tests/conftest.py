"""Shared fixtures. TensorFlow is imported only inside the fixtures that need
it, so tests that do not use a model never pay for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the long variants of the reliability tests (marker 'long') and the full-size load and fuzz runs",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``long`` are deselected (not skipped) unless --long is given."""
    if config.getoption("--long"):
        return
    kept = [item for item in items if item.get_closest_marker("long") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("long") is not None])
        items[:] = kept


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True under --long: tests scale their sizes (uploads, fuzz examples) up."""
    return bool(request.config.getoption("--long"))


TINY_LABELS = ["Alpha Shoes", "Beta Bags", "Gamma Tops"]
TINY_SIZE = 32
TINY_SEED = 1231  # a seed whose random model spreads test images over all three classes


@dataclass(frozen=True)
class TinyModels:
    """A tiny classifier exported both ways, as model-store version folders."""

    int8_dir: Path  # model.tflite (uint8 in, uint8 out) + manifest.json
    float32_dir: Path  # model.tflite (float32 in, float32 out) + manifest.json
    keras_model: Any  # the keras.Model both were exported from
    labels: list[str]
    size: int

    def __getitem__(self, key: str) -> Any:  # dict-style access too: models["int8_dir"]
        return getattr(self, key)


def _build_tiny_keras_model(size: int, classes: int, seed: int) -> Any:
    """Shaped like training/model.py's network: uint8-range pixels in, in-model
    scaling to [-1, 1], conv features, global average pooling, softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # Larger-than-default weights so that the probabilities are well spread
    # (a near-uniform softmax would make top-1 comparisons meaningless).
    dense_init = keras.initializers.RandomNormal(stddev=2.0, seed=seed)
    outputs = keras.layers.Dense(classes, activation="softmax", kernel_initializer=dense_init, name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny_fashion")


def _representative(size: int, seed: int, count: int = 48) -> np.ndarray:
    """Calibration pixels covering the full 0..255 range: flat colours with
    noise (like the test images) plus pure noise, black and white."""
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 256, (count, 1, 1, 3)) + rng.normal(0, 12, (count, size, size, 3))
    noise = rng.integers(0, 256, (8, size, size, 3))
    extremes = np.stack([np.zeros((size, size, 3)), np.full((size, size, 3), 255.0)])
    return np.clip(np.concatenate([flat, noise, extremes]), 0, 255).astype(np.float32)


def _write_variant(directory: Path, model_bytes: bytes, variant: str, labels: list[str], size: int) -> Path:
    from shared.classifier import inspect_model
    from shared.manifest import Manifest, sha256_bytes, write_manifest
    from shared.model_layout import MANIFEST_FILE, MODEL_FILE

    directory.mkdir(parents=True)
    (directory / MODEL_FILE).write_bytes(model_bytes)
    details = inspect_model(model_bytes)
    manifest = Manifest(
        version=f"tiny-{variant}",
        labels=list(labels),
        input_size=size,
        input_dtype=details["input"]["dtype"],
        quantization={"type": variant, "input": details["input"], "output": details["output"]},
        model_sha256=sha256_bytes(model_bytes),
        base_network={"name": "tiny-test-convnet"},
        created_at="2026-01-01T00:00:00+00:00",
    )
    write_manifest(manifest, directory / MANIFEST_FILE)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Build, export (int8 and float32 TFLite) and write a tiny 3-class model.

    Returns a :class:`TinyModels` with ``int8_dir``, ``float32_dir`` (each a
    version folder with ``model.tflite`` + ``manifest.json``), ``keras_model``,
    ``labels`` and ``size``.
    """
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the tiny test model")
    from training.export import to_float32, to_int8

    model = _build_tiny_keras_model(TINY_SIZE, len(TINY_LABELS), TINY_SEED)
    root = tmp_path_factory.mktemp("tiny-model")
    int8_dir = _write_variant(
        root / "int8", to_int8(model, _representative(TINY_SIZE, TINY_SEED)), "int8", TINY_LABELS, TINY_SIZE
    )
    float32_dir = _write_variant(root / "float32", to_float32(model), "float32", TINY_LABELS, TINY_SIZE)
    return TinyModels(int8_dir=int8_dir, float32_dir=float32_dir, keras_model=model, labels=list(TINY_LABELS), size=TINY_SIZE)


#: the attribute heads of the tiny multi-head model (names of shared/attributes.py) and
#: their thresholds: 0.0 = always given, 1.0 = never reached (always left empty), so
#: which attributes a record gets and which it leaves empty does not depend on the weights
TINY_ATTRIBUTES = {
    "gender": (["Men", "Women", "Unisex"], 0.0),
    "colour": (["black", "white", "blue", "red"], 1.0),
    "usage": (["Casual", "Formal", "Sports"], 0.0),
    "season": (["Summer", "Winter", "Fall", "Spring"], 1.0),
}


@dataclass(frozen=True)
class TinyMultiHead:
    """A tiny model with attribute heads (issue 19), float32, as a model-store
    version folder. ``int8_dir`` names the same folder, so that helpers written
    for :class:`TinyModels` take it."""

    int8_dir: Path
    labels: list[str]
    attributes: dict[str, list[str]]
    thresholds: dict[str, float]
    size: int

    @property
    def version(self) -> str:
        return self.int8_dir.name


@pytest.fixture(scope="session")
def tiny_multihead_model_dir(tmp_path_factory: pytest.TempPathFactory) -> TinyMultiHead:
    """Build and export (float32 TFLite, one signature naming every head) a
    tiny 3-class model with the four attribute heads of :data:`TINY_ATTRIBUTES`,
    with a manifest listing each head's labels, output and threshold."""
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the tiny test model")
    import keras

    from shared.classifier import inspect_model
    from shared.manifest import Manifest, sha256_bytes, write_manifest
    from shared.model_layout import MANIFEST_FILE, MODEL_FILE
    from training.export import to_float32
    from training.model import ModelSpec, attribute_output, heads, with_flip_averaging

    keras.utils.set_random_seed(TINY_SEED)
    spec = ModelSpec(
        num_classes=len(TINY_LABELS),
        size=TINY_SIZE,
        weights=None,
        attributes={name: len(labels) for name, (labels, _) in TINY_ATTRIBUTES.items()},
    )
    inputs = keras.Input(shape=(TINY_SIZE, TINY_SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = with_flip_averaging(keras.Model(inputs, heads(x, spec), name="tiny_multi"))
    data = to_float32(model)
    folder = tmp_path_factory.mktemp("tiny-multihead") / "tiny-attrs-float32"
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(data)
    details = inspect_model(data)
    manifest = Manifest(
        version=folder.name,
        labels=list(TINY_LABELS),
        input_size=TINY_SIZE,
        input_dtype=details["input"]["dtype"],
        quantization={"type": "float32", "input": details["input"], "output": details["output"]},
        model_sha256=sha256_bytes(data),
        base_network={"name": "tiny-test-convnet"},
        created_at="2026-01-01T00:00:00+00:00",
        attributes={
            name: {"labels": list(labels), "output": attribute_output(name), "threshold": threshold}
            for name, (labels, threshold) in TINY_ATTRIBUTES.items()
        },
    )
    write_manifest(manifest, folder / MANIFEST_FILE)
    return TinyMultiHead(
        int8_dir=folder,
        labels=list(TINY_LABELS),
        attributes={name: list(labels) for name, (labels, _) in TINY_ATTRIBUTES.items()},
        thresholds={name: threshold for name, (_, threshold) in TINY_ATTRIBUTES.items()},
        size=TINY_SIZE,
    )
