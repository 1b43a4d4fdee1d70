"""shared.preprocess: the one path from image bytes to model input, and its
parity with training (training.data.prepare) and with the Keras model."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.errors import ImageError
from shared.imaging import DecodeLimits, load_image
from shared.preprocess import PREPROCESSING, prepare_image, to_model_input
from tests.datasets import HEADER
from tests.images import BLUE, RED, encode, make_image, make_large_jpeg, make_noise_image, make_photo_like

SHARED_DATA = Path(os.environ.get("FASHION_SHARED_DATA", "/work/shared/data/fashion-product-images-small"))


# -- to_model_input / prepare_image ------------------------------------------


@pytest.mark.parametrize("size", [32, 96, 224])
def test_to_model_input_shape_dtype_and_range(size: int) -> None:
    image = Image.open(io.BytesIO(make_noise_image("PNG", (80, 60))))
    pixels = to_model_input(image, size)
    assert pixels.shape == (size, size, 3)
    assert pixels.dtype == np.uint8
    assert pixels.min() >= 0 and pixels.max() <= 255
    assert pixels.max() - pixels.min() > 100, "noise keeps its contrast"


def test_to_model_input_converts_other_modes() -> None:
    pixels = to_model_input(Image.new("L", (40, 40), 90), 32)
    assert pixels.shape == (32, 32, 3)
    assert np.all(pixels == 90)


def test_to_model_input_is_a_plain_bilinear_stretch() -> None:
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    expected = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(to_model_input(image, 32), expected)
    assert PREPROCESSING["name"] == "stretch-bilinear-uint8"


def test_exact_size_image_is_passed_through_unchanged() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_model_input(Image.fromarray(pixels), 32), pixels)
    np.testing.assert_array_equal(prepare_image(encode(Image.fromarray(pixels), "PNG"), 32), pixels)


def _halves(size: tuple[int, int], vertical_split: bool) -> bytes:
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    if vertical_split:
        pixels[:, : width // 2], pixels[:, width // 2 :] = RED, BLUE
    else:
        pixels[: height // 2], pixels[height // 2 :] = RED, BLUE
    return encode(Image.fromarray(pixels), "PNG")


def test_wide_image_is_stretched_not_cropped_or_padded() -> None:
    pixels = prepare_image(_halves((128, 32), vertical_split=True), 32)
    assert pixels.shape == (32, 32, 3)
    # Every row, top to bottom, holds the full content: red left, blue right.
    assert np.all(pixels[:, :14] == RED)
    assert np.all(pixels[:, 18:] == BLUE)


def test_tall_image_is_stretched_not_cropped_or_padded() -> None:
    pixels = prepare_image(_halves((32, 128), vertical_split=False), 32)
    assert np.all(pixels[:14] == RED)
    assert np.all(pixels[18:] == BLUE)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_prepare_image_accepts_every_format(fmt: str) -> None:
    pixels = prepare_image(make_image(fmt, "RGB", (60, 40), (30, 140, 220)), 32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - (30, 140, 220)).max() <= 8


def test_prepare_image_equals_load_then_to_model_input() -> None:
    data = make_photo_like((90, 120), seed=4)
    expected = to_model_input(load_image(data, draft_size=32), 32)
    np.testing.assert_array_equal(prepare_image(data, 32), expected)


def test_prepare_image_on_a_large_jpeg() -> None:
    pixels = prepare_image(make_large_jpeg((3000, 2000)), 224)
    assert pixels.shape == (224, 224, 3)
    # The synthetic photo runs dark to bright, left to right (red channel).
    assert pixels[:, :10, 0].mean() < 40 and pixels[:, -10:, 0].mean() > 215


def test_prepare_image_raises_image_errors() -> None:
    with pytest.raises(ImageError) as info:
        prepare_image(b"not an image at all", 32)
    assert info.value.reason == ImageError.NOT_AN_IMAGE
    with pytest.raises(ImageError) as info:
        prepare_image(make_image("PNG", "RGB", (40, 30)), 32, limits=DecodeLimits(max_pixels=100))
    assert info.value.reason == ImageError.TOO_MANY_PIXELS


def test_prepare_image_is_deterministic() -> None:
    data = make_photo_like((64, 64), seed=9)
    np.testing.assert_array_equal(prepare_image(data, 48), prepare_image(data, 48))


# -- parity with training -----------------------------------------------------


def _write_dataset(root: Path, images: dict[str, tuple[str, bytes]]) -> Path:
    """``images`` maps id -> (articleType, JPEG bytes)."""
    (root / "images").mkdir(parents=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for image_id, (label, data) in images.items():
        (root / "images" / f"{image_id}.jpg").write_bytes(data)
        writer.writerow([image_id, "Men", "Apparel", "Topwear", label, "Red", "Fall", "2012", "Casual", f"Item {image_id}"])
    (root / "styles.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return root


def _assert_training_parity(root: Path, size: int) -> int:
    from training.data import SPLITS, prepare
    from training.storage import LocalStore

    dataset = prepare(LocalStore(root), size=size, top_n=3, seed=0, val=0.25, test=0.25)
    checked = 0
    for split in SPLITS:
        for (image_id, _label), pixels in zip(dataset.split.items[split], dataset.pixels[split], strict=True):
            served = prepare_image((root / "images" / f"{image_id}.jpg").read_bytes(), size)
            np.testing.assert_array_equal(pixels, served, err_msg=f"image {image_id} ({split})")
            checked += 1
    return checked


def test_training_prepare_matches_serving_on_synthetic_images(tmp_path: Path) -> None:
    labels = ["Shirts", "Watches", "Heels"]
    images = {str(1000 + k): (labels[k % 3], make_photo_like((60 + 7 * k, 80 - 3 * k), seed=k)) for k in range(12)}
    images["2000"] = (labels[0], make_large_jpeg((1200, 900), seed=1))  # exercises draft()
    root = _write_dataset(tmp_path / "synthetic", images)
    assert _assert_training_parity(root, 32) == len(images)
    assert _assert_training_parity(root, 224) == len(images)


def _real_sample(per_class: int = 3, classes: int = 3) -> dict[str, tuple[str, Path]]:
    rows = list(csv.DictReader(io.StringIO((SHARED_DATA / "styles.csv").read_text(encoding="utf-8-sig"))))
    picked: dict[str, tuple[str, Path]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        label, path = row.get("articleType", ""), SHARED_DATA / "images" / f"{row.get('id', '')}.jpg"
        if not path.is_file() or counts.get(label, 0) >= per_class:
            continue
        if label not in counts and len(counts) >= classes:
            continue
        counts[label] = counts.get(label, 0) + 1
        picked[row["id"]] = (label, path)
    return picked


@pytest.mark.skipif(
    not (SHARED_DATA / "styles.csv").is_file(), reason=f"dev dataset not found at {SHARED_DATA} (set FASHION_SHARED_DATA)"
)
@pytest.mark.parametrize("size", [32, 224])
def test_training_prepare_matches_serving_on_real_images(tmp_path: Path, size: int) -> None:
    sample = _real_sample()
    assert len(sample) >= 6, f"too few images under {SHARED_DATA}"
    root = _write_dataset(tmp_path / "real", {image_id: (label, path.read_bytes()) for image_id, (label, path) in sample.items()})
    assert _assert_training_parity(root, size) == len(sample)


# -- parity with the Keras model ----------------------------------------------


def test_keras_model_and_float32_tflite_agree_on_the_same_pixels(tiny_model_dir) -> None:
    from shared.classifier import Classifier

    classifier = Classifier.load(tiny_model_dir.float32_dir)
    pixels = np.stack([prepare_image(make_photo_like((50, 70), seed=s), tiny_model_dir.size) for s in range(16)])
    assert pixels.dtype == np.uint8
    keras_scores = np.asarray(tiny_model_dir.keras_model(pixels.astype(np.float32), training=False))
    tflite_scores = classifier.predict_arrays(pixels)
    np.testing.assert_allclose(tflite_scores, keras_scores, atol=1e-4)
    assert np.array_equal(tflite_scores.argmax(axis=1), keras_scores.argmax(axis=1))


def test_full_size_decodes_of_large_images_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decodes that hold every pixel of a large image run one at a time per
    process (bounded memory); small images and drafted JPEGs do not wait."""
    import threading
    import time

    from shared import preprocess

    active = {"heavy": 0, "all": 0}
    peaks = {"heavy": 0, "all": 0}
    lock = threading.Lock()
    real = preprocess.decode_rgb

    def tracking(image, **kwargs):
        heavy = image.width * image.height > preprocess.HEAVY_PIXELS and image.format == "PNG"
        with lock:
            active["all"] += 1
            active["heavy"] += heavy
            peaks["all"] = max(peaks["all"], active["all"])
            peaks["heavy"] = max(peaks["heavy"], active["heavy"])
        time.sleep(0.05)
        try:
            return real(image, **kwargs)
        finally:
            with lock:
                active["all"] -= 1
                active["heavy"] -= heavy

    monkeypatch.setattr(preprocess, "decode_rgb", tracking)
    big_png = encode(Image.new("RGB", (1500, 1000), (10, 20, 30)), "PNG")  # 1.5 MP, a few kB
    big_jpeg = encode(Image.new("RGB", (1500, 1000), (10, 20, 30)), "JPEG")  # drafted: not heavy
    small = encode(Image.new("RGB", (64, 48), (10, 20, 30)), "PNG")
    inputs = [big_png] * 3 + [big_jpeg] * 2 + [small] * 3
    threads = [threading.Thread(target=prepare_image, args=(data, 32)) for data in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peaks["heavy"] == 1
    assert peaks["all"] > 1  # the others ran beside it
