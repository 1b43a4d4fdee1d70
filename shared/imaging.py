"""Decode untrusted image bytes into an RGB Pillow image, or raise ImageError.

Every supported format and mode ends as 8-bit RGB with EXIF orientation
applied; anything that is not a usable image raises :class:`ImageError` with a
machine-readable reason. Nothing in here may crash on hostile input.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import ImageError

#: Formats we accept. Restricting ``Image.open`` keeps Pillow from trying
#: exotic decoders (EPS through Ghostscript, for one) on untrusted bytes.
#: Multi-picture JPEGs (format "MPO", from cameras) come through the JPEG
#: opener; "MPO" has no opener of its own and must not be listed here (Pillow
#: raises KeyError for it, which rejected every non-JPEG file).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied before any pixel is decoded."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 8


DEFAULT_LIMITS = DecodeLimits()


def load_image(
    data: bytes,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode ``data`` into an 8-bit RGB image with EXIF orientation applied.

    ``draft_size``: for JPEGs, let the decoder downscale by a power of two
    while keeping both sides at least this large (Pillow's ``draft``), which
    makes large photos several times cheaper to decode.
    """
    if not data:
        raise ImageError(ImageError.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ImageError.TOO_LARGE,
            f"the file is {len(data)} bytes; the limit is {limits.max_bytes}",
        )
    image = _open(data)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            ImageError.TOO_MANY_PIXELS,
            f"the image declares {width}x{height} pixels; the limit is {limits.max_pixels} pixels",
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            ImageError.TOO_SMALL,
            f"the image is {width}x{height}; each side must be at least {limits.min_side} pixels",
        )
    if draft_size and image.format in ("JPEG", "MPO"):
        image.draft("RGB", (draft_size, draft_size))
    _decode(image)
    image = _apply_orientation(image)
    return _to_rgb(image)


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ImageError.TOO_MANY_PIXELS, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            ImageError.NOT_AN_IMAGE,
            "not a supported image (JPEG, PNG, WebP, GIF, BMP or TIFF)",
        ) from exc
    except Exception as exc:
        raise ImageError(ImageError.CORRUPT, f"unreadable image header: {exc}") from exc


def _decode(image: Image.Image) -> None:
    try:
        image.seek(0)  # first frame of animated GIF/WebP, first page of TIFF
        image.load()
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(ImageError.TRUNCATED, "the image data is truncated") from exc
        raise ImageError(ImageError.CORRUPT, f"the image data is corrupt: {exc}") from exc
    except Exception as exc:
        raise ImageError(ImageError.CORRUPT, f"the image data is corrupt: {exc}") from exc


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    # Alpha channel, or a transparent palette index / colour key (PNG tRNS,
    # GIF): either way transparent pixels end white, whatever the mode.
    transparent = mode in _ALPHA_MODES or "transparency" in image.info
    if mode == "RGB" and not transparent:
        return image
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        grey = _to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        return Image.fromarray(grey, mode="L").convert("RGB")
    try:
        if transparent:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except Exception as exc:
        raise ImageError(ImageError.UNSUPPORTED_FORMAT, f"cannot convert pixel mode {mode} to RGB") from exc


def _to_uint8(pixels: np.ndarray, *, sixteen_bit: bool = False) -> np.ndarray:
    """Map 16-bit or float grayscale to 8 bits.

    ``"I;16*"`` modes are 16-bit by definition, so they always scale from
    0..65535 (guessing from the values made a dark 16-bit image with every
    value <= 255 come out white). For 32-bit ``"I"`` and ``"F"`` the range is
    guessed from the values: [0, 1], [0, 255] or [0, 65535].
    """
    pixels = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
    peak = 65535.0 if sixteen_bit or not pixels.size else float(pixels.max())
    top = 1.0 if peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
    return np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8)
