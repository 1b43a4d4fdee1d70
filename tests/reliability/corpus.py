"""A corpus of bad, odd and borderline inputs, made by code (nothing downloaded).

Each :class:`Case` says what it is, the object name it is uploaded under, its
bytes and the outcome every surface must give:

- the classify function: ``sorted`` (status classified or needs_review, filed
  under ``<slug>/`` or ``review/<slug>/``) or ``rejected`` with ``reason``
  (filed under ``rejected/``), the original bytes kept either way;
- the predict API: 200, or ``http_status`` with the error code ``reason``.

Every item is deterministic and small (under 100 kB), so that the whole corpus
goes through both functions in seconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from shared.errors import ImageError
from tests.images import (
    NOT_IMAGES,
    encode,
    make_16bit_png,
    make_animated_gif,
    make_cmyk_jpeg,
    make_exif_rotated_jpeg,
    make_image,
    make_noise_image,
    make_palette_png,
    make_photo_like,
    make_png_bomb,
    patch_png_size,
    truncate,
)

Outcome = Literal["sorted", "rejected"]

#: The status the predict API must answer for each rejection reason (the
#: contract, written down here independently of functions/predict_api.py).
HTTP_STATUS: dict[str, int] = {
    ImageError.EMPTY: 400,
    ImageError.TOO_LARGE: 413,
    ImageError.NOT_AN_IMAGE: 415,
    ImageError.UNSUPPORTED_FORMAT: 415,
    ImageError.TOO_MANY_PIXELS: 422,
    ImageError.TRUNCATED: 422,
    ImageError.CORRUPT: 422,
    ImageError.TOO_SMALL: 422,
}

#: Google Cloud Storage's limit on an object name, in UTF-8 bytes.
GCS_NAME_LIMIT = 1024


@dataclass(frozen=True)
class Case:
    kind: str
    name: str  # object name in the incoming bucket (and multipart file name)
    data: bytes
    outcome: Outcome
    reason: str | None = None  # the ImageError reason of a rejection
    content_type: str = "image/jpeg"

    @property
    def http_status(self) -> int:
        return 200 if self.outcome == "sorted" else HTTP_STATUS[self.reason or ""]

    def __post_init__(self) -> None:
        if (self.outcome == "rejected") != (self.reason is not None):
            raise ValueError(f"{self.kind}: a rejection needs a reason, a sorted case none")


# -- builders -----------------------------------------------------------------


def _photo(seed: int = 0, fmt: str = "JPEG", size: tuple[int, int] = (64, 64)) -> bytes:
    return make_photo_like(size=size, seed=seed, fmt=fmt)


def gif_bomb(width: int = 65_535, height: int = 65_535) -> bytes:
    """A valid tiny GIF whose logical screen and image descriptor both claim
    ``width`` x ``height`` (4.3 gigapixels by default)."""
    gif = bytearray(make_image("GIF", "RGB", (8, 8), (0, 0, 0)))
    gif[6:10] = struct.pack("<HH", width, height)  # logical screen descriptor
    descriptor = gif.index(b"\x2c", 13)  # the first image descriptor (after the global colour table)
    gif[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(gif)


def jpeg_bomb(width: int = 65_000, height: int = 65_000) -> bytes:
    """A small real JPEG whose SOF0 header claims ``width`` x ``height``."""
    jpeg = bytearray(make_image("JPEG", "RGB", (16, 16), (10, 20, 30)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def png_bad_crc() -> bytes:
    """A PNG whose IHDR CRC does not match (a bit flipped in transit)."""
    data = bytearray(patch_png_size(make_image("PNG", "RGB", (40, 30), (1, 2, 3)), 40, 30))
    data[30] ^= 0xFF
    return bytes(data)


def jpeg_garbage_scan() -> bytes:
    """Valid JPEG headers followed by random scan data libjpeg cannot decode."""
    import numpy as np

    data = make_noise_image("JPEG", (200, 150))
    sos = data.index(b"\xff\xda")
    headers = data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")]
    garbage = bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    return headers + garbage + b"\xff\xd9"


def long_name(total_bytes: int, suffix: str = ".jpg") -> str:
    """An object name of exactly ``total_bytes`` UTF-8 bytes, with folders and
    multi-byte characters in it."""
    stem = "long/" + "é" * 200 + "/"  # 400 bytes of two-byte characters
    filler = total_bytes - len(stem.encode()) - len(suffix.encode())
    if filler < 1:
        raise ValueError("too short for a long name")
    name = stem + "x" * filler + suffix
    assert len(name.encode()) == total_bytes
    return name


#: The longest incoming name whose every destination fits GCS's limit with the
#: longest prefix the tiny test model can produce ("review/gamma-tops/", 18 bytes)
#: and the longest real category ("review/casual-shoes/", 20 bytes).
LONG_NAME_BYTES = GCS_NAME_LIMIT - len(b"review/sports-shoes/")


def build_corpus() -> list[Case]:
    """Every case, with a unique ``kind`` and a unique object name."""
    wide = Image.new("RGB", (10_000, 10), (180, 40, 90))
    cases = [
        # empty, tiny, cut off
        # (on the event path a zero-byte object is recorded `empty`, not rejected: issue 13.4)
        Case("empty", "empty.jpg", b"", "rejected", ImageError.EMPTY),
        Case("one_byte", "one-byte.jpg", b"\xff", "rejected", ImageError.NOT_AN_IMAGE),
        Case(
            "truncated_jpeg", "cut.jpg", truncate(make_noise_image("JPEG", (200, 150), seed=3)), "rejected", ImageError.TRUNCATED
        ),
        Case(
            "truncated_png",
            "cut.png",
            truncate(make_noise_image("PNG", (200, 150), seed=3)),
            "rejected",
            ImageError.TRUNCATED,
            "image/png",
        ),
        Case("jpeg_garbage_scan", "garbage-scan.jpg", jpeg_garbage_scan(), "rejected", ImageError.CORRUPT),
        Case("png_bad_crc", "bad-crc.png", png_bad_crc(), "rejected", ImageError.CORRUPT, "image/png"),
        # the extension lies
        Case("png_named_jpg", "really-a-png.jpg", _photo(1, "PNG"), "sorted"),
        Case("jpeg_named_png", "really-a-jpeg.png", _photo(2, "JPEG"), "sorted", content_type="image/png"),
        # not images at all, named .jpg
        *(
            Case(f"{kind}_named_jpg", f"{kind}.jpg", NOT_IMAGES[kind], "rejected", ImageError.NOT_AN_IMAGE)
            for kind in sorted(NOT_IMAGES)
        ),
        # decompression bombs: tiny files declaring gigapixels
        Case("png_bomb", "bomb.png", make_png_bomb(), "rejected", ImageError.TOO_MANY_PIXELS, "image/png"),
        Case("gif_bomb", "bomb.gif", gif_bomb(), "rejected", ImageError.TOO_MANY_PIXELS, "image/gif"),
        Case("jpeg_bomb", "bomb.jpg", jpeg_bomb(), "rejected", ImageError.TOO_MANY_PIXELS),
        # unusual but valid formats and modes
        Case("png_16bit", "sixteen-bit.png", make_16bit_png((48, 40), gradient=True), "sorted", content_type="image/png"),
        Case("cmyk_jpeg", "cmyk.jpg", make_cmyk_jpeg((48, 40)), "sorted"),
        Case("palette_png_transparent", "palette.png", make_palette_png((48, 40)), "sorted", content_type="image/png"),
        Case("animated_gif", "animated.gif", make_animated_gif((48, 40)), "sorted", content_type="image/gif"),
        Case("webp", "photo.webp", _photo(3, "WEBP"), "sorted", content_type="image/webp"),
        Case("progressive_jpeg", "progressive.jpg", make_noise_image("JPEG", (64, 48), progressive=True), "sorted"),
        Case("grey_jpeg", "grey.jpg", make_image("JPEG", "L", (48, 40), 128), "sorted"),
        Case("bmp", "photo.bmp", _photo(4, "BMP"), "sorted", content_type="image/bmp"),
        Case("exif_rotated_jpeg", "rotated.jpg", make_exif_rotated_jpeg(6), "sorted"),
        # extreme sizes
        Case("one_by_one", "one-pixel.png", make_image("PNG", "RGB", (1, 1), (9, 9, 9)), "rejected", ImageError.TOO_SMALL),
        Case("wide_10000x10", "wide.png", encode(wide, "PNG"), "sorted", content_type="image/png"),
        # object names
        Case("name_spaces", "summer sale/red  dress (1) .jpg", _photo(5), "sorted"),
        Case("name_unicode", "produits/été/チャイナ服 👗 ü.jpg", _photo(6), "sorted"),
        Case("name_dotdot", "a/../../escape/../x.jpg", _photo(7), "sorted"),
        Case("name_dotdot_rejected", "../../etc/passwd", NOT_IMAGES["text"], "rejected", ImageError.NOT_AN_IMAGE, "text/plain"),
        Case("name_leading_slash", "/leading-slash.jpg", _photo(8), "sorted"),
        Case("name_double_slash", "double//slash.jpg", _photo(9), "sorted"),
        Case("name_special_chars", "q?a=1&b=2#frag%20;,'\"[]{}<>|\\*~`!$.jpg", _photo(10), "sorted"),
        Case("name_long", long_name(LONG_NAME_BYTES), _photo(11), "sorted"),
    ]
    kinds = [case.kind for case in cases]
    names = [case.name for case in cases]
    assert len(set(kinds)) == len(kinds) and len(set(names)) == len(names), "kinds and names must be unique"
    return cases


CORPUS: list[Case] = build_corpus()
BY_KIND: dict[str, Case] = {case.kind: case for case in CORPUS}

#: Metadata-only changes of an object: scenarios the pipeline test plays out
#: (they are event sequences, not bytes): each must leave exactly one finished
#: record and one copy of the file.
METADATA_SCENARIOS: dict[str, str] = {
    "metadata_updated_after_finalize": "finalized, processed, then a metadataUpdated event for the same generation",
    "metadata_updated_before_finalize": "metadata patched before any event: metadataUpdated delivered first, then finalized",
    "finalized_resent_after_metadata_change": "metadata patched, finalized delivered with metageneration 2, then re-sent",
}
