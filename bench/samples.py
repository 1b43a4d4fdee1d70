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


def _synthetic_product(size: tuple[int, int] = (60, 80)) -> Image.Image:
    rng = np.random.default_rng(7)
    pixels = np.full((size[1], size[0], 3), 245, np.uint8)
    pixels[15:65, 12:48] = rng.integers(40, 200, 3)
    return Image.fromarray(pixels)


def product_image(data_dir: str | None) -> Image.Image:
    """The first image of the dataset (the Kaggle 'small' images are about
    60x80), or a synthetic one of that size when there is no dataset."""
    if data_dir:
        images = sorted((Path(data_dir) / "images").glob("*.jpg"))
        if images:
            with Image.open(images[0]) as image:
                return image.convert("RGB")
    return _synthetic_product()


def product_jpeg(data_dir: str | None) -> Sample:
    path = sorted((Path(data_dir) / "images").glob("*.jpg"))[0] if data_dir and (Path(data_dir) / "images").is_dir() else None
    if path is not None:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            return Sample("product", data, *image.size)
    image = _synthetic_product()
    return Sample("product", _jpeg(image, 90), *image.size)


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
    paths = sorted((Path(data_dir) / "images").glob("*.jpg")) if data_dir else []
    if not paths:
        rng = np.random.default_rng(3)
        out = []
        for k in range(count):
            pixels = np.full((80, 60, 3), 245, np.uint8)
            pixels[10:70, 8:52] = rng.integers(30, 220, 3)
            out.append((f"synthetic-{k:05d}.jpg", _jpeg(Image.fromarray(pixels), 90)))
        return out
    return [(f"{k:05d}-{paths[k % len(paths)].name}", paths[k % len(paths)].read_bytes()) for k in range(count)]
