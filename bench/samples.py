"""The images the benchmarks send: a small product JPEG from the dataset and
a 2-megapixel photo (both made once, deterministically)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

PHOTO_SIZE = (1632, 1224)  # 2.0 megapixels, 4:3 like a phone photo


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    width: int
    height: int

    def describe(self) -> str:
        return f"{self.width}x{self.height} JPEG, {len(self.data) / 1024:.0f} KB"


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _dataset_paths(data_dir: str | None) -> list[Path]:
    """The dataset's images (Kaggle layout), sorted; none without a dataset."""
    return sorted((Path(data_dir) / "images").glob("*.jpg")) if data_dir else []


def _synthetic_product(seed: int = 7, size: tuple[int, int] = (60, 80)) -> Image.Image:
    """A flat product-like picture the size of the Kaggle 'small' images."""
    rng = np.random.default_rng(seed)
    pixels = np.full((size[1], size[0], 3), 245, np.uint8)
    pixels[15:65, 12:48] = rng.integers(40, 200, 3)
    return Image.fromarray(pixels)


def product_jpeg(data_dir: str | None) -> Sample:
    """The first image of the dataset (224x224 in the development copy), or a
    synthetic 60x80 one (the size of the Kaggle 'small' images) without one."""
    paths = _dataset_paths(data_dir)
    data = paths[0].read_bytes() if paths else _jpeg(_synthetic_product(), 90)
    with Image.open(io.BytesIO(data)) as image:
        return Sample("product", data, *image.size)


def product_image(data_dir: str | None) -> Image.Image:
    with Image.open(io.BytesIO(product_jpeg(data_dir).data)) as image:
        return image.convert("RGB")


def photo_jpeg(data_dir: str | None) -> Sample:
    """A 2-MP photo: the product enlarged, with sensor-like noise so that it
    compresses like a camera picture rather than a flat drawing."""
    base = product_image(data_dir).resize(PHOTO_SIZE, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))
    rng = np.random.default_rng(11)
    noisy = np.asarray(base, np.int16) + rng.normal(0, 6, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3)).astype(np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return Sample("photo-2mp", _jpeg(image, 90), *PHOTO_SIZE)


def dataset_images(data_dir: str | None, count: int) -> list[tuple[str, bytes]]:
    """``count`` (name, bytes) pairs from the dataset, cycling through it, or
    synthetic product JPEGs when there is no dataset."""
    paths = _dataset_paths(data_dir)
    if not paths:
        return [(f"synthetic-{k:05d}.jpg", _jpeg(_synthetic_product(seed=k), 90)) for k in range(count)]
    return [(f"{k:05d}-{paths[k % len(paths)].name}", paths[k % len(paths)].read_bytes()) for k in range(count)]
