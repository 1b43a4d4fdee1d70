"""Decode untrusted image bytes into an RGB Pillow image, or raise ImageError.

Every supported format and mode ends as 8-bit RGB with EXIF orientation
applied; anything that is not a usable image raises :class:`ImageError` with a
machine-readable reason. Nothing in here may crash on hostile input.
"""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import ImageError

#: Formats we accept, whatever a file is called: the bytes decide. Restricting
#: ``Image.open`` keeps Pillow from trying exotic decoders (EPS through
#: Ghostscript, for one) on untrusted bytes. Multi-picture JPEGs (format
#: "MPO", from cameras) come through the JPEG opener; "MPO" has no opener of
#: its own and must not be listed here (Pillow raises KeyError for it, which
#: rejected every non-JPEG file). "HEIF" (HEIC, the iPhone default) is
#: pillow-heif's opener, registered by :func:`register_openers`; "AVIF" is
#: Pillow's own (its wheels bundle libavif).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

#: What people are told we accept (messages only).
SUPPORTED_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF"

#: ISO base media file major brands (bytes 8-12, after "ftyp") of HEIF and
#: AVIF images -> (format, MIME type).
_FTYP_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"), ("HEIF", "image/heic")),
    **dict.fromkeys((b"mif1", b"msf1"), ("HEIF", "image/heif")),
    **dict.fromkeys((b"avif", b"avis"), ("AVIF", "image/avif")),
}

#: Leading bytes -> (format, MIME type), for :func:`sniff`.
_MAGIC = (
    (b"\xff\xd8\xff", ("JPEG", "image/jpeg")),
    (b"\x89PNG\r\n\x1a\n", ("PNG", "image/png")),
    (b"GIF87a", ("GIF", "image/gif")),
    (b"GIF89a", ("GIF", "image/gif")),
    (b"II*\x00", ("TIFF", "image/tiff")),
    (b"MM\x00*", ("TIFF", "image/tiff")),
    (b"BM", ("BMP", "image/bmp")),
)

#: How many leading bytes :func:`sniff` needs.
SNIFF_BYTES = 16

#: JPEG formats as Pillow names them: ``draft`` can decode these shrunk.
_JPEG_FORMATS = ("JPEG", "MPO")

#: Bytes a full decode holds at its peak per declared pixel, at most (RGBA
#: PNG; measured in tests/reliability/test_decode_memory.py). Used to express
#: a progressive JPEG's coefficient buffers as pixels of that budget.
FULL_DECODE_BYTES_PER_PIXEL = 15

#: PNG chunks that only carry metadata we never use (text, XMP, ICC profile).
#: Pillow refuses some of them past internal size limits, which must not make a
#: valid picture "corrupt", so they are dropped before Pillow sees the file.
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_EOI = b"\xff\xd9"
#: A library's internal name in an exception message, e.g. "PngImagePlugin.MAX_TEXT_CHUNK".
_INTERNAL_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")

_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied before any pixel is decoded.

    ``max_pixels`` bounds what a decode holds in memory, counted in pixels of
    the decoded image (:func:`decode_cost`): the declared size for every
    format but a JPEG that ``draft`` decodes shrunk, which costs its shrunk
    size (plus, when progressive, its coefficient buffers). So 18 to 100
    megapixel camera JPEGs pass while a PNG, GIF, WebP, TIFF or HEIF over it
    is refused. ``max_declared_pixels`` bounds the decoder's work (time) on
    any declared size, shrunk or not: a JPEG declaring 65000x65000 is
    refused unread.
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16_000_000  # 4000x4000; see shared/preprocess.py for the memory it bounds
    min_side: int = 8
    max_declared_pixels: int = 128_000_000  # above the largest camera sensors (100-102 MP medium format)


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
    image = open_checked(data, limits=limits, draft_size=draft_size)
    return decode_rgb(image, draft_size=draft_size, data=data)


def open_checked(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS, draft_size: int | None = None) -> Image.Image:
    """Read the header of ``data`` and check it against ``limits``; no pixel
    is decoded yet.

    ``draft_size``: the one :func:`decode_rgb` will be given, so that
    ``limits.max_pixels`` bounds what the decode will really hold
    (:func:`decode_cost`: a JPEG's shrunk size), not the declared size.
    Raises :class:`ImageError` (``empty``, ``too_large``, ``not_an_image``,
    ``corrupt``, ``too_many_pixels``, ``too_small``).
    """
    if not data:
        raise ImageError(ImageError.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ImageError.TOO_LARGE,
            f"the file is {len(data)} bytes; the limit is {limits.max_bytes}",
        )
    image = _open(data, limits)
    width, height = image.size
    if width * height > limits.max_declared_pixels:
        raise ImageError(
            ImageError.TOO_MANY_PIXELS,
            f"the image declares {width}x{height} pixels; the limit is {limits.max_declared_pixels} pixels",
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            ImageError.TOO_SMALL,
            f"the image is {width}x{height}; each side must be at least {limits.min_side} pixels",
        )
    cost = decode_cost(image, draft_size)
    if cost > limits.max_pixels:
        decoded = decoded_size(image, draft_size)
        shrunk = f", {decoded[0]}x{decoded[1]} once decoded shrunk" if decoded != (width, height) else ""
        raise ImageError(
            ImageError.TOO_MANY_PIXELS,
            f"the image declares {width}x{height} pixels{shrunk}; decoding it would hold about {cost} pixels "
            f"and the limit is {limits.max_pixels} pixels",
        )
    return image


def decoded_size(image: Image.Image, draft_size: int | None) -> tuple[int, int]:
    """The size ``image`` (opened, not decoded) decodes to: a JPEG with
    ``draft_size`` shrinks by the largest of 1/2, 1/4 or 1/8 that keeps both
    sides at least ``draft_size`` (libjpeg's DCT scaling, as Pillow's
    ``JpegImageFile.draft`` chooses it); everything else decodes whole."""
    width, height = image.size
    if not draft_size or image.format not in _JPEG_FORMATS:
        return width, height
    scale = min(width // draft_size, height // draft_size)
    shrink = next(s for s in (8, 4, 2, 1) if scale >= s or s == 1)
    return (width + shrink - 1) // shrink, (height + shrink - 1) // shrink


def decode_cost(image: Image.Image, draft_size: int | None = None) -> int:
    """What decoding ``image`` (opened, not decoded) holds in memory, in pixels
    of the full-decode budget (``FULL_DECODE_BYTES_PER_PIXEL`` bytes each): the
    pixels it decodes to (:func:`decoded_size`), plus, for a progressive
    JPEG, libjpeg's coefficient buffers, which cover the whole declared image
    whatever the shrink (``jdcoefct.c`` keeps whole-image block arrays for
    multi-scan files: 64 coefficients of 2 bytes per 8x8 block and component).
    """
    width, height = decoded_size(image, draft_size)
    cost = width * height
    if image.format in _JPEG_FORMATS and image.info.get("progressive"):
        cost += math.ceil(_jpeg_coefficient_bytes(image) / FULL_DECODE_BYTES_PER_PIXEL)
    return cost


def _jpeg_coefficient_bytes(image: Image.Image) -> int:
    """Bytes of a JPEG's whole-image coefficient arrays: for each component,
    its 8x8 blocks (after chroma subsampling) x 64 coefficients x 2 bytes."""
    width, height = image.size
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)]
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    blocks = 0
    for _, h, v, _ in layers:
        blocks += math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
    return blocks * 64 * 2


def decode_rgb(image: Image.Image, *, draft_size: int | None = None, data: bytes | None = None) -> Image.Image:
    """Decode an image from :func:`open_checked` to 8-bit RGB, oriented.

    ``data``: the bytes ``image`` was opened from. With them, a JPEG whose
    every pixel is present but whose end is missing (the end-of-image marker,
    or bytes after its last scan) decodes instead of raising ``truncated``.
    Raises :class:`ImageError` (``truncated``, ``corrupt``, ``unsupported_format``).
    """
    if draft_size and image.format in _JPEG_FORMATS:
        image.draft("RGB", (draft_size, draft_size))
    try:
        _decode(image)
    except ImageError as exc:
        complete = None
        if exc.reason == ImageError.TRUNCATED and data is not None and image.format in _JPEG_FORMATS:
            complete = _jpeg_missing_only_its_end(data, draft_size)
        if complete is None:
            raise
        image = complete
    image = _apply_orientation(image)
    return _to_rgb(image)


def _jpeg_missing_only_its_end(data: bytes, draft_size: int | None) -> Image.Image | None:
    """The decoded image if ``data`` (a JPEG that ran out before its end) holds
    every pixel, else None.

    Decodes it twice, ended once by the end-of-image marker straight away and
    once by 256 bytes of 0x55 then the marker. When every scan is complete,
    the extra bytes are skipped as padding before the marker and both decodes
    agree. When scan data is missing, libjpeg decodes zero bits in its place
    in the first (what it does on meeting a marker early) and the 0x55 bits in
    the second, so the missing blocks differ. A trailing 0xFF (a marker cut
    after its first byte; scan data never ends in one) is dropped first.
    """
    base = data.rstrip(b"\xff")
    decoded = []
    for ending in (_JPEG_EOI, b"\x55" * 256 + _JPEG_EOI):
        try:
            image = _open(base + ending, DEFAULT_LIMITS)
            if draft_size:
                image.draft("RGB", (draft_size, draft_size))
            _decode(image)
        except ImageError:
            return None
        decoded.append(image)
    first, second = decoded
    return first if first.tobytes() == second.tobytes() else None


_openers_lock = threading.Lock()
_openers_registered = False


def register_openers() -> None:
    """Register the openers of formats that Pillow lacks (HEIF/HEIC, through
    pillow-heif) once per process; called before the first file is opened, so
    importing this module stays light. Thumbnails, depth and auxiliary images
    are left out: only the primary image is ever decoded."""
    global _openers_registered
    if _openers_registered:
        return
    with _openers_lock:
        if not _openers_registered:
            import pillow_heif

            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _openers_registered = True


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    register_openers()
    if data.startswith(_PNG_SIGNATURE):
        data = _without_png_metadata(data)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check uses its constants, not ours: the declared
            # size is checked against ``limits`` right after opening.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            ImageError.TOO_MANY_PIXELS,
            f"the image declares more pixels than the limit of {limits.max_declared_pixels}",
        ) from exc
    except UnidentifiedImageError as exc:
        if _has_image_signature(data):
            raise ImageError(ImageError.CORRUPT, "the image header is damaged (the file starts like an image)") from exc
        raise ImageError(ImageError.NOT_AN_IMAGE, f"not a supported image ({SUPPORTED_NAMES})") from exc
    except Exception as exc:
        raise ImageError(ImageError.CORRUPT, f"unreadable image header: {_describe(exc)}") from exc


def sniff(head: bytes) -> tuple[str, str] | None:
    """(format, MIME type) of a supported image from its first
    :data:`SNIFF_BYTES` bytes, by their signature only (nothing is decoded,
    and a file's name plays no part), or None. A match says what the file
    claims to be, not that it decodes: :func:`load_image` decides that."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    return None


def _has_image_signature(data: bytes) -> bool:
    # "BM" (BMP) is too weak a signature to call a file that fails to open a damaged image.
    return sniff(data[:SNIFF_BYTES]) not in (None, ("BMP", "image/bmp"))


def _without_png_metadata(data: bytes) -> bytes:
    """``data`` (a PNG) without its text, XMP and ICC chunks; the rest byte for
    byte. Chunks are walked by their declared lengths only (nothing is
    decompressed); a damaged chunk structure leaves the rest as it is, for
    Pillow to judge."""
    position, kept, dropped = len(_PNG_SIGNATURE), [], False
    start = 0
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if end > len(data) or kind == b"IEND":
            break
        if kind in _PNG_METADATA_CHUNKS:
            kept.append(data[start:position])
            start, dropped = end, True
        position = end
    if not dropped:
        return data
    kept.append(data[start:])
    return b"".join(kept)


def _describe(exc: Exception) -> str:
    """An exception's message without the library's internal names."""
    return _INTERNAL_NAME.sub("a decoder limit", str(exc)) or type(exc).__name__


def _decode(image: Image.Image) -> None:
    try:
        image.seek(0)  # first frame of animated GIF/WebP, first page of TIFF
        image.load()
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(ImageError.TRUNCATED, "the image data is truncated") from exc
        raise ImageError(ImageError.CORRUPT, f"the image data is corrupt: {_describe(exc)}") from exc
    except Exception as exc:
        raise ImageError(ImageError.CORRUPT, f"the image data is corrupt: {_describe(exc)}") from exc


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
