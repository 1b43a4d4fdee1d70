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

#: File signatures of the supported formats. Bytes that start with one but
#: that Pillow cannot open are a damaged image ("corrupt"), not something that
#: is not an image at all (a PNG with a bad IHDR CRC, a JPEG cut inside its
#: headers). "BM" (BMP) is left out: two letters are too weak a signature.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")

_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied before any pixel is decoded."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16_000_000  # 4000x4000; see shared/preprocess.py for the memory it bounds
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
    return decode_rgb(open_checked(data, limits=limits), draft_size=draft_size)


def open_checked(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> Image.Image:
    """Read the header of ``data`` and check it against ``limits``; no pixel
    is decoded yet."""
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
    return image


def decodes_at_full_size(image: Image.Image, draft_size: int | None) -> bool:
    """Whether decoding ``image`` (opened, not decoded) holds all its declared
    pixels in memory: everything but a JPEG that ``draft`` may shrink."""
    return not (draft_size and image.format in ("JPEG", "MPO"))


def decode_rgb(image: Image.Image, *, draft_size: int | None = None) -> Image.Image:
    """Decode an image from :func:`open_checked` to 8-bit RGB, oriented."""
    if not decodes_at_full_size(image, draft_size):
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
        if _has_image_signature(data):
            raise ImageError(ImageError.CORRUPT, "the image header is damaged (the file starts like an image)") from exc
        raise ImageError(
            ImageError.NOT_AN_IMAGE,
            "not a supported image (JPEG, PNG, WebP, GIF, BMP or TIFF)",
        ) from exc
    except Exception as exc:
        raise ImageError(ImageError.CORRUPT, f"unreadable image header: {exc}") from exc


def _has_image_signature(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


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
            # White painted in place where the alpha channel is not opaque:
            # about 14 bytes a pixel at the peak with the PNG decoder's own,
            # where compositing onto an RGBA background and converting the
            # result took about 20 (a 40-megapixel RGBA PNG of 170 kB peaked
            # at 765 MB).
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            rgb = rgba.convert("RGB")
            rgb.paste((255, 255, 255), mask=ImageOps.invert(rgba.getchannel("A")))
            return rgb
        return image.convert("RGB")
    except Exception as exc:
        raise ImageError(ImageError.UNSUPPORTED_FORMAT, f"cannot convert pixel mode {mode} to RGB") from exc


#: 16-bit value -> 8-bit value, rounded as ``_to_uint8``'s float path rounds.
_SIXTEEN_TO_EIGHT = np.rint(np.arange(65536, dtype=np.float64) * (255.0 / 65535.0)).astype(np.uint8)


def _to_uint8(pixels: np.ndarray, *, sixteen_bit: bool = False) -> np.ndarray:
    """Map 16-bit or float grayscale to 8 bits.

    ``"I;16*"`` modes are 16-bit by definition, so they always scale from
    0..65535 (guessing from the values made a dark 16-bit image with every
    value <= 255 come out white). For 32-bit ``"I"`` and ``"F"`` the range is
    guessed from the values: [0, 1], [0, 255] or [0, 65535].
    """
    if sixteen_bit and pixels.dtype.kind == "u" and pixels.dtype.itemsize <= 2:
        # A lookup table gives the same values as the float path below without
        # its float64 copies (8 bytes a pixel each): a 40-megapixel 16-bit PNG of
        # 90 kB peaked at about 1 GB, twice the functions' default memory.
        return _SIXTEEN_TO_EIGHT[pixels]
    pixels = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
    peak = 65535.0 if sixteen_bit or not pixels.size else float(pixels.max())
    top = 1.0 if peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
    return np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8)
