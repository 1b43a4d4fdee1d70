"""shared.classifier: loading and checking a model, classifying single images
and batches, int8/float32 agreement and thread safety."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.classifier import Classifier, Prediction, inspect_model
from shared.errors import ImageError, ModelError
from shared.manifest import read_manifest, sha256_bytes, write_manifest
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, pointer_payload, version_prefix
from shared.preprocess import prepare_image
from tests.images import NOT_IMAGES, make_image, make_noise_image, make_photo_like, truncate

VARIANTS = ["int8", "float32"]


@pytest.fixture(scope="module")
def classifiers(tiny_model_dir) -> dict[str, Classifier]:
    return {
        "int8": Classifier.load(tiny_model_dir.int8_dir),
        "float32": Classifier.load(tiny_model_dir.float32_dir),
    }


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """20 varied images of different sizes and formats."""
    return [make_photo_like((40 + 5 * k, 64 - k), seed=k, fmt="JPEG" if k % 3 else "PNG") for k in range(20)]


def copy_version(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def rewrite_manifest(directory: Path, **changes: object) -> None:
    manifest = read_manifest(directory / MANIFEST_FILE)
    write_manifest(replace(manifest, **changes), directory / MANIFEST_FILE)


# -- loading ------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_load_a_version_folder(tiny_model_dir, variant: str) -> None:
    classifier = Classifier.load(tiny_model_dir[f"{variant}_dir"])
    assert classifier.version == f"tiny-{variant}"
    assert classifier.labels == tiny_model_dir.labels
    assert classifier.size == 32
    assert classifier.manifest.input_dtype == {"int8": "uint8", "float32": "float32"}[variant]
    assert classifier.manifest.quantization["type"] == variant


def test_load_accepts_a_string_path_and_num_threads(tiny_model_dir) -> None:
    classifier = Classifier.load(str(tiny_model_dir.int8_dir), num_threads=1)
    assert classifier.classify(make_photo_like()).label in tiny_model_dir.labels


def test_load_a_store_root_through_the_current_pointer(tiny_model_dir, tmp_path: Path) -> None:
    root = tmp_path / "store"
    copy_version(tiny_model_dir.int8_dir, root / version_prefix("tiny-int8"))
    copy_version(tiny_model_dir.float32_dir, root / version_prefix("tiny-float32"))
    (root / POINTER).write_text(pointer_payload("tiny-float32"), encoding="utf-8")
    assert Classifier.load(root).version == "tiny-float32"
    (root / POINTER).write_text(pointer_payload("tiny-int8"), encoding="utf-8")
    assert Classifier.load(root).version == "tiny-int8"


def test_pointer_to_a_missing_version_is_refused(tiny_model_dir, tmp_path: Path) -> None:
    root = tmp_path / "store"
    copy_version(tiny_model_dir.int8_dir, root / version_prefix("tiny-int8"))
    (root / POINTER).write_text(pointer_payload("gone"), encoding="utf-8")
    with pytest.raises(ModelError, match="no manifest"):
        Classifier.load(root)


@pytest.mark.parametrize("pointer", ["not json", "{}", '{"version": ""}', '{"version": 3}', "[]"])
def test_unreadable_pointer_is_refused(tmp_path: Path, pointer: str) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / POINTER).write_text(pointer, encoding="utf-8")
    with pytest.raises(ModelError, match="pointer"):
        Classifier.load(tmp_path)


@pytest.mark.parametrize("version", ["..", "../..", "a/b", "/etc", ".", "x" * 129, "v 1", "\u00e9t\u00e9"])
def test_pointer_naming_a_path_is_refused(tmp_path: Path, version: str) -> None:
    """The models bucket names a version folder, never a path: a pointer
    such as ../.. cannot lead a model cache outside its folder."""
    from shared.model_layout import parse_pointer

    (tmp_path / "models").mkdir()
    (tmp_path / POINTER).write_text(json.dumps({"version": version}), encoding="utf-8")
    with pytest.raises(ModelError, match="not a model version name"):
        Classifier.load(tmp_path)
    with pytest.raises(ModelError):
        parse_pointer(json.dumps({"version": version}))
    with pytest.raises(ModelError):
        pointer_payload(version)


def test_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="holds no model"):
        Classifier.load(tmp_path)


def test_missing_model_file_is_refused(tiny_model_dir, tmp_path: Path) -> None:
    directory = copy_version(tiny_model_dir.int8_dir, tmp_path / "v")
    (directory / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match="no model file"):
        Classifier.load(directory)


def test_sha256_mismatch_is_refused(tiny_model_dir, tmp_path: Path) -> None:
    directory = copy_version(tiny_model_dir.int8_dir, tmp_path / "v")
    model = directory / MODEL_FILE
    model.write_bytes(model.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="sha256"):
        Classifier.load(directory)


def test_model_from_another_version_is_refused(tiny_model_dir, tmp_path: Path) -> None:
    directory = copy_version(tiny_model_dir.int8_dir, tmp_path / "v")
    shutil.copyfile(tiny_model_dir.float32_dir / MODEL_FILE, directory / MODEL_FILE)
    with pytest.raises(ModelError, match="does not match"):
        Classifier.load(directory)


def test_invalid_model_bytes_with_a_matching_hash_are_refused(tiny_model_dir) -> None:
    manifest = read_manifest(tiny_model_dir.int8_dir / MANIFEST_FILE)
    garbage = b"this is not a flatbuffer" * 10
    with pytest.raises(ModelError, match="LiteRT cannot load"):
        Classifier(garbage, replace(manifest, model_sha256=sha256_bytes(garbage)))


@pytest.mark.parametrize("labels", [["A", "B"], ["A", "B", "C", "D"]])
def test_label_count_must_match_the_outputs(tiny_model_dir, tmp_path: Path, labels: list[str]) -> None:
    directory = copy_version(tiny_model_dir.int8_dir, tmp_path / "v")
    rewrite_manifest(directory, labels=labels)
    with pytest.raises(ModelError, match=f"3 outputs but the manifest lists {len(labels)} labels"):
        Classifier.load(directory)


def test_input_size_must_match_the_model(tiny_model_dir, tmp_path: Path) -> None:
    directory = copy_version(tiny_model_dir.float32_dir, tmp_path / "v")
    rewrite_manifest(directory, input_size=64)
    with pytest.raises(ModelError, match="input shape"):
        Classifier.load(directory)


@pytest.mark.parametrize(("variant", "wrong_dtype"), [("int8", "float32"), ("float32", "uint8"), ("int8", "int8")])
def test_input_dtype_must_match_the_model(tiny_model_dir, tmp_path: Path, variant: str, wrong_dtype: str) -> None:
    directory = copy_version(tiny_model_dir[f"{variant}_dir"], tmp_path / "v")
    rewrite_manifest(directory, input_dtype=wrong_dtype)
    with pytest.raises(ModelError, match="dtype"):
        Classifier.load(directory)


def test_invalid_manifest_is_refused(tiny_model_dir, tmp_path: Path) -> None:
    directory = copy_version(tiny_model_dir.int8_dir, tmp_path / "v")
    data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    data["preprocessing"] = {"name": "center-crop-float"}
    (directory / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="preprocessing"):
        Classifier.load(directory)


def test_inspect_model_reports_quantization(tiny_model_dir) -> None:
    int8 = inspect_model((tiny_model_dir.int8_dir / MODEL_FILE).read_bytes())
    assert int8["input"]["shape"] == [1, 32, 32, 3]
    assert int8["input"]["dtype"] == "uint8" and int8["output"]["dtype"] == "uint8"
    assert int8["output"]["shape"] == [1, 3]
    assert int8["output"]["scale"] > 0
    float32 = inspect_model((tiny_model_dir.float32_dir / MODEL_FILE).read_bytes())
    assert float32["input"]["dtype"] == "float32" and float32["output"]["dtype"] == "float32"


# -- classify -----------------------------------------------------------------


def assert_well_formed(prediction: Prediction, labels: list[str], k: int = 3) -> None:
    assert prediction.label in labels
    assert len(prediction.top_k) == k
    assert prediction.top_k[0] == (prediction.label, prediction.confidence)
    scores = [score for _, score in prediction.top_k]
    assert scores == sorted(scores, reverse=True)
    assert len({label for label, _ in prediction.top_k}) == k
    assert set(prediction.probabilities) == set(labels)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in prediction.probabilities.values())
    assert prediction.confidence == max(prediction.probabilities.values())
    for label, score in prediction.top_k:
        assert prediction.probabilities[label] == score


@pytest.mark.parametrize("variant", VARIANTS)
def test_classify_returns_a_well_formed_prediction(classifiers, photos, variant: str) -> None:
    classifier = classifiers[variant]
    for data in photos[:5]:
        assert_well_formed(classifier.classify(data), classifier.labels)


@pytest.mark.parametrize("variant", VARIANTS)
def test_top_k_is_clipped_to_the_classes(classifiers, photos, variant: str) -> None:
    classifier = classifiers[variant]
    assert len(classifier.classify(photos[0], top_k=10).top_k) == 3
    assert len(classifier.classify(photos[0], top_k=1).top_k) == 1
    assert len(classifier.classify(photos[0], top_k=0).top_k) == 1  # at least the winner
    assert_well_formed(classifier.classify(photos[0], top_k=2), classifier.labels, k=2)


def test_prediction_to_dict(classifiers, photos) -> None:
    prediction = classifiers["int8"].classify(photos[1], top_k=2)
    data = prediction.to_dict()
    assert data == {
        "label": prediction.label,
        "confidence": prediction.confidence,
        "top_k": [{"label": label, "score": score} for label, score in prediction.top_k],
    }
    json.dumps(data)  # plain JSON types


def test_classify_raises_image_errors(classifiers) -> None:
    with pytest.raises(ImageError) as info:
        classifiers["int8"].classify(NOT_IMAGES["pdf"])
    assert info.value.reason == ImageError.NOT_AN_IMAGE


def test_the_model_is_not_constant(classifiers, photos) -> None:
    labels = {classifiers["float32"].classify(data).label for data in photos}
    assert len(labels) >= 2, "the tiny model should separate the test photos"


def test_predict_arrays_accepts_a_single_image_and_checks_shapes(classifiers, photos) -> None:
    classifier = classifiers["float32"]
    pixels = prepare_image(photos[0], 32)
    single = classifier.predict_arrays(pixels)
    assert single.shape == (1, 3)
    np.testing.assert_allclose(single[0], classifier.predict_arrays(pixels[None])[0])
    with pytest.raises(ValueError, match="expected"):
        classifier.predict_arrays(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="expected"):
        classifier.predict_arrays(np.zeros((1, 32, 32, 4), np.uint8))


# -- batches ------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_classify_batch_keeps_errors_in_their_slots(classifiers, photos, variant: str) -> None:
    classifier = classifiers[variant]
    items = [
        photos[0],
        b"",
        photos[1],
        NOT_IMAGES["html"],
        truncate(make_noise_image("JPEG", (200, 150)), 0.5),
        photos[2],
        make_image("PNG", "RGB", (4, 4)),
        photos[3],
    ]
    results = classifier.classify_batch(items)
    assert len(results) == len(items)
    expected_errors = {1: "empty", 3: "not_an_image", 4: "truncated", 6: "too_small"}
    for slot, result in enumerate(results):
        if slot in expected_errors:
            assert isinstance(result, ImageError), slot
            assert result.reason == expected_errors[slot]
        else:
            assert isinstance(result, Prediction), slot
            single = classifier.classify(items[slot])
            assert result.label == single.label
            for label, score in single.probabilities.items():
                assert result.probabilities[label] == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_results_equal_single_results(classifiers, photos, variant: str) -> None:
    classifier = classifiers[variant]
    batch = classifier.classify_batch(photos, top_k=2)
    for data, result in zip(photos, batch, strict=True):
        assert isinstance(result, Prediction)
        single = classifier.classify(data, top_k=2)
        assert [label for label, _ in result.top_k] == [label for label, _ in single.top_k] or (
            abs(single.top_k[0][1] - single.top_k[1][1]) < 1e-5
        )
        assert result.label == single.label
        np.testing.assert_allclose(
            [result.probabilities[label] for label in classifier.labels],
            [single.probabilities[label] for label in classifier.labels],
            atol=1e-5,
        )


def test_classify_batch_edge_cases(classifiers, photos) -> None:
    classifier = classifiers["int8"]
    assert classifier.classify_batch([]) == []
    errors = classifier.classify_batch([b"", NOT_IMAGES["zip"]])
    assert [e.reason for e in errors if isinstance(e, ImageError)] == ["empty", "not_an_image"]
    # Batch sizes change the interpreter's input shape; single images still work after.
    assert len(classifier.classify_batch(photos[:7])) == 7
    assert_well_formed(classifier.classify(photos[0]), classifier.labels)
    assert len(classifier.classify_batch(photos[:2])) == 2


# -- int8 vs float32 ----------------------------------------------------------


def test_int8_and_float32_agree(classifiers) -> None:
    images = [make_photo_like((48, 48), seed=100 + k) for k in range(20)]
    int8 = np.array(
        [[p.probabilities[lab] for lab in classifiers["int8"].labels] for p in map(classifiers["int8"].classify, images)]
    )
    float32 = np.array(
        [[p.probabilities[lab] for lab in classifiers["float32"].labels] for p in map(classifiers["float32"].classify, images)]
    )
    difference = np.abs(int8 - float32).max(axis=1)  # per image, worst class
    # Quantization error is small for typical images; an activation outside
    # the calibration range may cost one image a few points more.
    assert int(np.sum(difference <= 0.05)) >= 18, np.round(difference, 3)
    assert difference.max() <= 0.15 and difference.mean() <= 0.02, np.round(difference, 3)
    agree = int(np.sum(int8.argmax(axis=1) == float32.argmax(axis=1)))
    assert agree >= 17, f"int8 and float32 agree on top-1 for only {agree}/20 images"


# -- threads ------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_concurrent_classification_matches_sequential(classifiers, photos, variant: str) -> None:
    classifier = classifiers[variant]
    work = [(k, photos[k % len(photos)]) for k in range(64)]
    sequential = {k: classifier.classify(data).probabilities for k, data in work}
    batches = {k: [photos[(k + j) % len(photos)] for j in range(1 + k % 5)] for k in range(16)}
    sequential_batches = {k: [r.probabilities for r in classifier.classify_batch(items)] for k, items in batches.items()}

    def single(job: tuple[int, bytes]) -> tuple[int, dict[str, float]]:
        return job[0], classifier.classify(job[1]).probabilities

    def batch(k: int) -> tuple[int, list[dict[str, float]]]:
        return k, [r.probabilities for r in classifier.classify_batch(batches[k])]

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Singles and batches of different sizes interleave, so the shared
        # interpreter is resized while other threads use it.
        single_futures = [pool.submit(single, job) for job in work]
        batch_futures = [pool.submit(batch, k) for k in batches]
        concurrent = dict(f.result() for f in single_futures)
        concurrent_batches = dict(f.result() for f in batch_futures)

    for k in sequential:
        assert concurrent[k] == pytest.approx(sequential[k], abs=1e-5), k
    for k in sequential_batches:
        for got, want in zip(concurrent_batches[k], sequential_batches[k], strict=True):
            assert got == pytest.approx(want, abs=1e-5), k


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_arrays_gives_the_bare_interpreters_scores(tiny_model_dir, variant: str) -> None:
    """The Classifier writes the pixels straight into the interpreter's
    input buffer: the scores are those of the bare interpreter fed the same
    pixels through set_tensor, whatever batch size came before."""
    from ai_edge_litert.interpreter import Interpreter

    folder = getattr(tiny_model_dir, f"{variant}_dir")
    manifest = read_manifest(folder / MANIFEST_FILE)
    model_bytes = (folder / manifest.model_file).read_bytes()
    classifier = Classifier(model_bytes, manifest)
    bare = Interpreter(model_content=model_bytes)
    bare.allocate_tensors()
    inp, out = bare.get_input_details()[0], bare.get_output_details()[0]
    size = manifest.input_size
    rng = np.random.default_rng(5)
    for batch in (1, 3, 1):
        pixels = rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8)
        scores = classifier.predict_arrays(pixels)
        for k in range(batch):
            bare.set_tensor(inp["index"], pixels[k : k + 1].astype(inp["dtype"]))
            bare.invoke()
            raw = bare.get_tensor(out["index"]).astype(np.float32)
            if out["dtype"] != np.float32:
                scale, zero_point = out["quantization"]
                raw = (raw - zero_point) * scale
            expected = np.clip(raw, 0, None) / np.clip(raw, 0, None).sum()
            np.testing.assert_allclose(scores[k], expected[0], atol=1e-6)
