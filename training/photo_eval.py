"""An "outside the studio" proxy of a test split: each image passed through
a fixed, seeded set of photo-like changes, so that the effect of training
choices on photos not taken against a white studio backdrop can be measured
without such photos (``python -m training.experiments`` scores every variant
on it beside the plain test split).

The changes, in order, every one applied to every image with parameters
drawn from ``numpy.random.default_rng([seed, index])`` (so image ``k`` gets
the same changes in every run and whatever the other images are):

1. perspective: each corner moved by up to 8% of the side (white fill, as
   the backdrop);
2. crop: a window of 80-95% of the side at a random place, scaled back up;
3. background: the near-white backdrop (every channel above 235) replaced
   by a two-colour gradient with smooth noise (a wall, a bed, a floor);
4. lighting: brightness x0.7-1.2, contrast x0.75-1.1, each channel's gain
   x0.9-1.1 (another light source's white balance);
5. blur: Gaussian, radius 0.3-1.2 px;
6. JPEG: encoded and decoded again at quality 30-75.

It is a proxy, not a measurement on real photos: it says which way a
training choice moves accuracy under these changes, not what accuracy real
photos would get. Pure NumPy and Pillow (no TensorFlow).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["DEFAULT_SEED", "photo_like", "photo_like_image"]

#: The proxy's seed: fixed so that every experiment sees the same images.
DEFAULT_SEED = 2026
_BACKDROP = 235


def _perspective_coefficients(source: list[tuple[float, float]], target: list[tuple[float, float]]) -> list[float]:
    """The 8 coefficients PIL's PERSPECTIVE transform takes to map each
    output point ``target[k]`` to the input point ``source[k]``."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    rhs = np.array([c for point in source for c in point], dtype=np.float64)
    return np.linalg.solve(np.array(rows, dtype=np.float64), rhs).tolist()


def _perspective(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    moved = [(x + rng.uniform(-0.08, 0.08) * w, y + rng.uniform(-0.08, 0.08) * h) for x, y in corners]
    coefficients = _perspective_coefficients(moved, corners)
    return image.transform(
        (w, h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR, fillcolor=(255, 255, 255)
    )


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    side = rng.uniform(0.80, 0.95)
    cw, ch = round(w * side), round(h * side)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BILINEAR)


def _background(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = pixels.shape
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = (np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)) / np.sqrt(2) + 0.5
    coarse = rng.normal(0.0, 18.0, (max(h // 16, 2), max(w // 16, 2)))
    smooth = np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BICUBIC))
    background = start + (end - start) * np.clip(ramp, 0, 1)[..., None] + smooth[..., None]
    mask = np.all(pixels > _BACKDROP, axis=-1, keepdims=True)
    return np.where(mask, np.clip(background, 0, 255), pixels)


def _lighting(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = pixels.astype(np.float64)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.75, 1.1) + mean
    x = x * rng.uniform(0.7, 1.2) * rng.uniform(0.9, 1.1, 3)
    return np.clip(x, 0, 255)


def photo_like_image(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uint8 RGB image (H, W, 3) through the six changes of the module
    docstring, with parameters from ``rng``; returns uint8 (H, W, 3)."""
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"expected one RGB image (H, W, 3), got shape {pixels.shape}")
    image = _crop(_perspective(Image.fromarray(np.asarray(pixels, np.uint8)), rng), rng)
    x = _lighting(_background(np.asarray(image), rng), rng)
    image = Image.fromarray(x.round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(30, 76)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def photo_like(pixels: np.ndarray, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The proxy of a batch: uint8 (N, H, W, 3) in, uint8 (N, H, W, 3) out,
    image ``k`` changed with ``default_rng([seed, k])``. Deterministic for a
    given seed, Pillow and NumPy version. ValueError for another shape."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {pixels.shape}")
    out = np.empty_like(pixels, dtype=np.uint8)
    for k in range(len(pixels)):
        out[k] = photo_like_image(pixels[k], np.random.default_rng([seed, k]))
    return out
