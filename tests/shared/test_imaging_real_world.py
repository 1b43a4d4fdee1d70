"""Issue 13, kinds 1-3, in the decoder: formats that devices and browsers
produce (HEIC/HEIF, AVIF, WebP) decided by content; limits that bound what
a decode really costs (camera JPEGs of 18-100 megapixels pass, bombs in any
format do not, large metadata is never "corrupt"); and files whose every
pixel is present but whose end is missing. The inputs of
``../shared/cases/real-world`` are checked when that folder is there."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.errors import ImageError
from shared.imaging import DEFAULT_LIMITS, DecodeLimits, decode_cost, load_image, open_checked, sniff
from shared.preprocess import prepare_image
from tests.images import encode, make_heic, make_jpeg_header_only, make_large_jpeg, make_noise_image, make_photo_like
from tests.reliability.corpus import gif_bomb, jpeg_bomb

CASES = Path(__file__).resolve().parents[3] / "shared" / "cases" / "real-world"
#: An internal name of a library in a message ("PngImagePlugin.MAX_TEXT_CHUNK"), or Pillow's own limit.
INTERNAL = re.compile(r"MAX_|DecompressionBomb|PngImagePlugin|89478485|178956970")


def reason_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(ImageError) as info:
        load_image(data, **kwargs)  # type: ignore[arg-type]
    assert not INTERNAL.search(info.value.message), info.value.message
    return info.value.reason


def quadrants() -> Image.Image:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    image.paste((30, 30, 200), (32, 0, 64, 24))
    image.paste((30, 200, 30), (0, 24, 32, 48))
    return image


# -- kind 1: formats, by content ---------------------------------------------------


def test_heic_decodes_like_the_picture_it_holds() -> None:
    data = make_heic(quadrants())
    assert sniff(data[:16]) == ("HEIF", "image/heic")
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (64, 48)
    pixels = np.asarray(image).astype(int)
    expected = np.asarray(quadrants()).astype(int)
    assert np.abs(pixels[4:20, 4:28] - expected[4:20, 4:28]).max() < 24  # lossy HEVC, away from the edges
    assert np.abs(pixels[28:44, 36:60] - expected[28:44, 36:60]).max() < 24


@pytest.mark.parametrize(("fmt", "mime"), [("AVIF", "image/avif"), ("WEBP", "image/webp")])
def test_modern_browser_formats_decode(fmt: str, mime: str) -> None:
    data = encode(quadrants(), fmt, quality=90)
    assert sniff(data[:16]) == (fmt, mime)
    assert load_image(data).size == (64, 48)


def test_heic_pixels_over_the_limit_are_refused_before_decoding() -> None:
    data = make_heic(Image.new("RGB", (200, 100), (1, 2, 3)))
    assert reason_of(data, limits=DecodeLimits(max_pixels=200 * 100 - 1)) == ImageError.TOO_MANY_PIXELS


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_heic_cut_short_is_refused_not_crashed(cut: float) -> None:
    data = make_heic(Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)))
    assert reason_of(data[: int(len(data) * cut)]) in (ImageError.TRUNCATED, ImageError.CORRUPT)


def test_heif_signature_that_does_not_open_is_corrupt_not_not_an_image() -> None:
    assert reason_of(b"\x00\x00\x00\x18ftypheic" + bytes(200)) == ImageError.CORRUPT


# -- kind 2: limits that bound the real cost ------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"), [(5184, 3456), (6000, 4000), (8000, 6000), (11648, 8736)], ids=["18MP", "24MP", "48MP", "100MP"]
)
def test_camera_jpeg_headers_pass_when_decoded_shrunk(width: int, height: int) -> None:
    image = open_checked(make_jpeg_header_only(width, height), draft_size=224)
    cost = decode_cost(image, 224)
    assert cost <= ((width + 7) // 8) * ((height + 7) // 8) <= DEFAULT_LIMITS.max_pixels
    with pytest.raises(ImageError) as info:  # decoded whole, the same file is over the limit
        open_checked(make_jpeg_header_only(width, height))
    assert info.value.reason == ImageError.TOO_MANY_PIXELS


def test_decode_cost_is_the_size_the_jpeg_really_decodes_to() -> None:
    data = make_large_jpeg((3000, 2000))
    predicted = decode_cost(open_checked(data, draft_size=224), 224)
    assert load_image(data, draft_size=224).size == (375, 250) and predicted == 375 * 250


def test_a_24_megapixel_jpeg_is_classified_input() -> None:
    pixels = prepare_image(make_large_jpeg((6000, 4000)), 224)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


def test_progressive_jpeg_pays_for_its_coefficients() -> None:
    # libjpeg keeps whole-image coefficient buffers for a progressive file: at
    # 100 MP (4:2:0) about 300 MB, over the budget, whatever the draft.
    big = open_checked(make_jpeg_header_only(6000, 4000, progressive=True), draft_size=224)
    assert decode_cost(big, 224) > 750 * 500
    with pytest.raises(ImageError) as info:
        open_checked(make_jpeg_header_only(11648, 8736, progressive=True), draft_size=224)
    assert info.value.reason == ImageError.TOO_MANY_PIXELS
    small = encode(Image.new("RGB", (1200, 900), (9, 99, 199)), "JPEG", progressive=True)
    assert load_image(small, draft_size=224).size == (300, 225)


@pytest.mark.parametrize(
    "bomb",
    [jpeg_bomb(), jpeg_bomb(30_000, 30_000), gif_bomb(), make_jpeg_header_only(20_000, 20_000, progressive=True)],
    ids=["jpeg-65000", "jpeg-30000", "gif-65535", "progressive-20000"],
)
def test_bombs_are_still_refused_with_a_message_of_ours(bomb: bytes) -> None:
    assert reason_of(bomb, draft_size=224) == ImageError.TOO_MANY_PIXELS


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _with_chunks(png: bytes, *chunks: bytes, after_data: bool = False) -> bytes:
    """``png`` with chunks inserted after IHDR (or before IEND)."""
    at = png.index(b"IEND") - 4 if after_data else 8 + 25
    return png[:at] + b"".join(chunks) + png[at:]


@pytest.mark.parametrize("after_data", [False, True])
def test_large_png_metadata_never_makes_a_picture_corrupt(after_data: bool) -> None:
    png = encode(Image.new("RGB", (40, 30), (5, 150, 250)), "PNG")
    big_text = b"x" * (3 * 1024 * 1024)
    chunks = [
        _png_chunk(b"tEXt", b"Comment\x00" + big_text),
        _png_chunk(b"zTXt", b"Description\x00\x00" + zlib.compress(big_text)),  # 3 MB once inflated
        _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(big_text)),
    ]
    if not after_data:
        chunks.append(_png_chunk(b"iCCP", b"big profile\x00\x00" + zlib.compress(big_text)))
    data = _with_chunks(png, *chunks, after_data=after_data)
    image = load_image(data)
    assert image.size == (40, 30) and image.getpixel((20, 15)) == (5, 150, 250)


def test_large_jpeg_metadata_never_makes_a_picture_corrupt() -> None:
    base = Image.new("RGB", (64, 48), (40, 80, 160))
    exif = Image.Exif()
    exif[0x010E] = "d" * 60_000  # ImageDescription: an APP1 segment of about 60 kB
    icc = bytes(range(256)) * 4096  # a 1 MiB "profile", split over 17 APP2 segments
    xmp = b"<x:xmpmeta>" + b" " * 60_000 + b"</x:xmpmeta>"
    data = encode(base, "JPEG", exif=exif.tobytes(), icc_profile=icc, xmp=xmp, quality=95)
    assert len(data) > 1_000_000
    image = load_image(data)
    assert image.size == (64, 48)
    assert max(abs(a - b) for a, b in zip(image.getpixel((30, 20)), (40, 80, 160), strict=True)) <= 3


# -- kind 3: every pixel present, the end missing -------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("missing", [1, 2])
def test_jpeg_missing_only_its_end_marker_decodes_to_the_same_pixels(progressive: bool, missing: int) -> None:
    whole = make_noise_image("JPEG", (200, 150), seed=5, progressive=progressive)
    assert whole.endswith(b"\xff\xd9")
    np.testing.assert_array_equal(np.asarray(load_image(whole[:-missing])), np.asarray(load_image(whole)))
    np.testing.assert_array_equal(prepare_image(whole[:-missing], 64), prepare_image(whole, 64))


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("missing", [3, 10, 100, 2000])
def test_jpeg_really_cut_short_stays_truncated(progressive: bool, missing: int) -> None:
    whole = make_noise_image("JPEG", (200, 150), seed=5, progressive=progressive)
    assert reason_of(whole[:-missing]) == ImageError.TRUNCATED
    assert reason_of(whole[:-missing], draft_size=64) == ImageError.TRUNCATED


def test_smooth_photo_cut_short_stays_truncated() -> None:
    whole = make_photo_like((300, 200), seed=2)
    assert reason_of(whole[: len(whole) - 40]) == ImageError.TRUNCATED


def test_png_missing_its_end_chunk_decodes() -> None:
    whole = make_noise_image("PNG", (60, 40), seed=2)
    assert whole.endswith(b"IEND\xaeB`\x82")
    np.testing.assert_array_equal(np.asarray(load_image(whole[:-12])), np.asarray(load_image(whole)))


# -- the real-world inputs ------------------------------------------------------------------

needs_cases = pytest.mark.skipif(not CASES.is_dir(), reason="../shared/cases/real-world is not in this checkout")


@needs_cases
def test_real_world_inputs_decode_like_their_controls() -> None:
    control = np.asarray(load_image((CASES / "control_handbag.jpg").read_bytes(), draft_size=224))
    trunc = np.asarray(load_image((CASES / "trunc_noeoi_handbag.jpg").read_bytes(), draft_size=224))
    np.testing.assert_array_equal(trunc, control)
    heic = np.asarray(load_image((CASES / "iphone_handbag.heic").read_bytes(), draft_size=224))
    assert heic.shape == control.shape and np.abs(heic.astype(int) - control).mean() < 8
    dslr = load_image((CASES / "dslr_24mp_watch.jpg").read_bytes(), draft_size=224)
    assert dslr.size == (750, 500)
    for name in ("download_handbag.jfif", "photo_handbag.jpe"):
        assert sniff((CASES / name).read_bytes()[:16]) == ("JPEG", "image/jpeg")


def test_no_image_error_message_names_a_library_constant() -> None:
    # Pillow refuses these itself (its own bomb check, its own limit); the
    # messages must give our limit, not its constants.
    for data in (jpeg_bomb(), gif_bomb(), make_jpeg_header_only(15_000, 15_000)):
        assert reason_of(data) == ImageError.TOO_MANY_PIXELS
