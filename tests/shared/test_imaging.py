"""shared.imaging.load_image: every format and mode to 8-bit RGB, EXIF
orientation, draft decoding, and typed errors for everything unusable."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from shared.errors import ImageError
from shared.imaging import DEFAULT_LIMITS, SUPPORTED_FORMATS, DecodeLimits, load_image, register_openers
from tests.images import (
    BLUE,
    FORMAT_MAGICS,
    GREEN,
    NOT_IMAGES,
    RED,
    WHITE,
    encode,
    make_16bit_png,
    make_animated_gif,
    make_cmyk_jpeg,
    make_exif_rotated_jpeg,
    make_float_tiff,
    make_half_transparent_png,
    make_image,
    make_int32_tiff,
    make_large_jpeg,
    make_noise_image,
    make_palette_png,
    make_png_bomb,
    make_rgba_png,
    patch_png_size,
    truncate,
)

COLOUR = (200, 100, 50)


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tolerance, f"{actual} != {expected} ± {tolerance}"


def assert_rgb8(image: Image.Image, size: tuple[int, int]) -> None:
    assert image.mode == "RGB"
    assert image.size == size
    assert np.asarray(image).dtype == np.uint8


def reason_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(ImageError) as info:
        load_image(data, **kwargs)  # type: ignore[arg-type]
    assert info.value.message, "an ImageError must explain itself"
    return info.value.reason


# -- formats ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "save_args", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 4),
        ("PNG", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 8),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
    ],
    ids=["jpeg", "png", "webp-lossless", "webp-lossy", "gif", "bmp", "tiff"],
)
def test_every_supported_format_decodes_to_rgb(fmt: str, save_args: dict, tolerance: int) -> None:
    image = load_image(make_image(fmt, "RGB", (40, 30), COLOUR, **save_args))
    assert_rgb8(image, (40, 30))
    assert_close(pixel(image, (20, 15)), COLOUR, tolerance)


def test_supported_formats_are_all_openable_by_pillow() -> None:
    # Regression: "MPO" in the list made Image.open raise KeyError for every
    # file that was not a JPEG, so PNG, WebP, GIF, BMP and TIFF were all rejected.
    Image.init()
    register_openers()  # HEIF's opener (pillow-heif) is registered before the first open, not at import
    assert set(SUPPORTED_FORMATS) <= set(Image.OPEN)


def test_animated_gif_uses_first_frame() -> None:
    image = load_image(make_animated_gif(first=RED, second=BLUE))
    assert_rgb8(image, (40, 30))
    assert pixel(image, (5, 5)) == RED


def test_rgba_webp_is_composited_on_white() -> None:
    image = load_image(encode(Image.new("RGBA", (40, 30), (0, 0, 255, 0)), "WEBP", lossless=True))
    assert pixel(image, (10, 10)) == WHITE


@pytest.mark.parametrize("fmt", ["PPM", "PCX", "TGA", "ICO", "IM", "SGI"])
def test_formats_outside_the_allow_list_are_not_images(fmt: str) -> None:
    assert reason_of(make_image(fmt, "RGB", (32, 32), COLOUR)) == ImageError.NOT_AN_IMAGE


# -- modes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "fill", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, WHITE),
        ("1", 0, (0, 0, 0)),
        ("LA", (100, 255), (100, 100, 100)),
        ("LA", (100, 0), WHITE),
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("RGBA", (255, 0, 0, 0), WHITE),
        ("I;16", 65535, WHITE),
        ("I;16", 0, (0, 0, 0)),
        ("I;16", 32896, (128, 128, 128)),
    ],
)
def test_png_modes_end_as_rgb(mode: str, fill: object, expected: tuple[int, int, int]) -> None:
    data = make_image("PNG", mode, (40, 30), fill)
    assert Image.open(io.BytesIO(data)).mode == mode
    image = load_image(data)
    assert_rgb8(image, (40, 30))
    assert pixel(image, (20, 15)) == expected


def test_semi_transparent_rgba_is_blended_with_white() -> None:
    image = load_image(make_rgba_png(rgba=(255, 0, 0, 128)))
    assert_close(pixel(image, (5, 5)), (255, 127, 127), 1)


def test_transparent_half_becomes_white() -> None:
    image = load_image(make_half_transparent_png((40, 30)))
    assert pixel(image, (5, 5)) == BLUE
    assert pixel(image, (35, 5)) == WHITE


def test_palette_png_without_transparency_keeps_colours() -> None:
    data = make_palette_png(transparent=False)
    assert Image.open(io.BytesIO(data)).mode == "P"
    image = load_image(data)
    assert_rgb8(image, (40, 30))
    assert pixel(image, (3, 3)) == GREEN
    assert pixel(image, (30, 20)) == RED


def test_palette_png_transparency_is_composited_on_white() -> None:
    data = make_palette_png(transparent=True)
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == "P" and "transparency" in opened.info
    image = load_image(data)
    assert pixel(image, (3, 3)) == GREEN  # opaque palette entry
    assert pixel(image, (30, 20)) == WHITE  # transparent palette entry, not red


@pytest.mark.parametrize(
    ("mode", "key", "opaque", "opaque_rgb"),
    [("RGB", (0, 0, 0), (10, 200, 30), (10, 200, 30)), ("L", 0, 120, (120, 120, 120)), ("1", 0, 1, WHITE)],
)
def test_png_colour_key_transparency_is_composited_on_white(
    mode: str, key: object, opaque: object, opaque_rgb: tuple[int, int, int]
) -> None:
    # Regression: a tRNS colour key on an RGB, L or 1-bit PNG was ignored, so
    # its transparent pixels came out in the key colour (black) instead of white.
    image = Image.new(mode, (40, 30), key)
    image.paste(opaque, (0, 0, 10, 10))
    data = encode(image, "PNG", transparency=key)
    assert Image.open(io.BytesIO(data)).info.get("transparency") == key
    decoded = load_image(data)
    assert_rgb8(decoded, (40, 30))
    assert pixel(decoded, (30, 20)) == WHITE  # the key colour is transparent
    assert pixel(decoded, (3, 3)) == opaque_rgb


def test_gif_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (40, 30), 0)
    image.putpalette([0, 0, 0, *RED] + [0] * (256 * 3 - 6))
    image.paste(1, (0, 0, 10, 10))
    decoded = load_image(encode(image, "GIF", transparency=0))
    assert pixel(decoded, (30, 20)) == WHITE
    assert pixel(decoded, (3, 3)) == RED


def test_cmyk_jpeg_converts_to_rgb() -> None:
    data = make_cmyk_jpeg(cmyk=(0, 255, 255, 0))
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = load_image(data)
    assert_rgb8(image, (40, 30))
    assert_close(pixel(image, (20, 15)), RED, 6)


def test_sixteen_bit_png_scales_to_eight_bits() -> None:
    image = load_image(make_16bit_png((64, 8), gradient=True))
    assert_rgb8(image, (64, 8))
    row = np.asarray(image)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0), "a 16-bit gradient must stay monotonic"
    assert np.all(np.asarray(image)[0, :, 0] == np.asarray(image)[0, :, 2])  # grey


@pytest.mark.parametrize(("value", "expected"), [(255, 1), (256, 1), (1000, 4), (65535, 255)])
def test_dark_sixteen_bit_png_stays_dark(value: int, expected: int) -> None:
    # Regression: values <= 255 used to be taken for 8-bit data, so a nearly
    # black 16-bit image (255/65535) came out white while 256 came out black.
    assert pixel(load_image(make_16bit_png(value=value)), (0, 0)) == (expected,) * 3


@pytest.mark.parametrize(("value", "expected"), [(65535, 255), (200, 200), (0, 0)])
def test_int32_tiff_mode_i(value: int, expected: int) -> None:
    data = make_int32_tiff(value=value)
    assert Image.open(io.BytesIO(data)).mode == "I"
    image = load_image(data)
    assert_rgb8(image, (40, 30))
    assert pixel(image, (0, 0)) == (expected,) * 3


@pytest.mark.parametrize(("value", "expected"), [(1.0, 255), (0.5, 128), (0.0, 0), (200.0, 200), (65535.0, 255)])
def test_float_tiff_mode_f(value: float, expected: int) -> None:
    data = make_float_tiff(value=value)
    assert Image.open(io.BytesIO(data)).mode == "F"
    image = load_image(data)
    assert_rgb8(image, (40, 30))
    assert pixel(image, (0, 0)) == (expected,) * 3


def test_float_tiff_with_nan_and_inf_does_not_fail() -> None:
    pixels = np.full((30, 40), 0.5, dtype=np.float32)
    pixels[0, 0], pixels[0, 1], pixels[0, 2] = np.nan, np.inf, -np.inf
    image = load_image(encode(Image.fromarray(pixels), "TIFF"))
    assert_rgb8(image, (40, 30))


# -- EXIF orientation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(6, "top-right"), (8, "bottom-left")],
)
def test_exif_orientation_is_applied(orientation: int, red_corner: str) -> None:
    data = make_exif_rotated_jpeg(orientation, size=(60, 40))
    image = load_image(data)
    assert_rgb8(image, (40, 60))  # sides swapped
    corners = {"top-left": (3, 3), "top-right": (36, 3), "bottom-left": (3, 56), "bottom-right": (36, 56)}
    assert_close(pixel(image, corners[red_corner]), RED, 12)
    for name, xy in corners.items():
        if name != red_corner:
            assert pixel(image, xy)[0] < 100 or pixel(image, xy)[1] > 150, f"{name} should not be red"


def test_without_orientation_the_stored_layout_is_kept() -> None:
    image = load_image(make_exif_rotated_jpeg(1, size=(60, 40)))
    assert image.size == (60, 40)
    assert_close(pixel(image, (3, 3)), RED, 12)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF block
def test_broken_exif_does_not_lose_the_image() -> None:
    data = make_image("JPEG", "RGB", (40, 30), COLOUR, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x01")
    image = load_image(data)
    assert_rgb8(image, (40, 30))


# -- draft --------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    return make_large_jpeg((3000, 2000))


@pytest.mark.parametrize("draft_size", [32, 224, 1000])
def test_draft_decodes_a_large_jpeg_smaller_but_big_enough(large_jpeg: bytes, draft_size: int) -> None:
    image = load_image(large_jpeg, draft_size=draft_size)
    assert image.mode == "RGB"
    width, height = image.size
    assert width < 3000 and height < 2000
    assert min(width, height) >= draft_size
    assert abs(width / height - 1.5) < 0.01  # draft scales both sides alike


def test_without_draft_the_full_size_is_decoded(large_jpeg: bytes) -> None:
    assert load_image(large_jpeg).size == (3000, 2000)


def test_draft_keeps_colours(large_jpeg: bytes) -> None:
    full = np.asarray(load_image(large_jpeg).resize((60, 40), Image.Resampling.BOX), dtype=float)
    small = np.asarray(load_image(large_jpeg, draft_size=224).resize((60, 40), Image.Resampling.BOX), dtype=float)
    assert np.abs(full - small).mean() < 4


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_draft_works_for_grey_and_cmyk_jpegs(mode: str) -> None:
    fill = 90 if mode == "L" else (0, 255, 255, 0)
    image = load_image(make_image("JPEG", mode, (1600, 1200), fill), draft_size=200)
    assert image.mode == "RGB"
    assert min(image.size) >= 200 and image.size[0] < 1600
    expected = (90, 90, 90) if mode == "L" else RED
    assert_close(pixel(image, (50, 50)), expected, 6)


def test_draft_applies_to_jpeg_only() -> None:
    png = make_image("PNG", "RGB", (800, 600), COLOUR)
    assert load_image(png, draft_size=32).size == (800, 600)


def test_draft_with_exif_rotation_keeps_both_sides_big_enough() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (1200, 800), COLOUR), "JPEG", exif=exif.tobytes())
    image = load_image(data, draft_size=100)
    assert image.size[0] < image.size[1]  # rotated: portrait now
    assert min(image.size) >= 100 and max(image.size) < 1200


# -- typed errors -------------------------------------------------------------


def test_empty() -> None:
    assert reason_of(b"") == ImageError.EMPTY


def test_too_large_by_bytes() -> None:
    data = make_noise_image("PNG", (64, 64))
    assert reason_of(data, limits=DecodeLimits(max_bytes=len(data) - 1)) == ImageError.TOO_LARGE
    assert load_image(data, limits=DecodeLimits(max_bytes=len(data))).size == (64, 64)


def test_too_large_is_checked_before_decoding() -> None:
    # Not even a valid image: the size check alone decides.
    assert reason_of(b"x" * 101, limits=DecodeLimits(max_bytes=100)) == ImageError.TOO_LARGE


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (20_000, 20_000), (8_000, 8_000), (40_000, 1_001)])
def test_decompression_bomb_png_is_refused(width: int, height: int) -> None:
    data = make_png_bomb(width, height)
    assert len(data) < 200
    assert reason_of(data) == ImageError.TOO_MANY_PIXELS


def test_png_bomb_header_is_valid() -> None:
    # The patched IHDR (with its fixed CRC) really declares the big size,
    # so the refusals above come from the size checks, not from a bad header.
    assert Image.open(io.BytesIO(make_png_bomb(8_000, 8_000))).size == (8_000, 8_000)


def test_pixel_limit_is_configurable() -> None:
    data = make_image("PNG", "RGB", (40, 30), COLOUR)
    assert reason_of(data, limits=DecodeLimits(max_pixels=40 * 30 - 1)) == ImageError.TOO_MANY_PIXELS
    assert load_image(data, limits=DecodeLimits(max_pixels=40 * 30)).size == (40, 30)


def test_pixel_limit_applies_to_jpeg_declared_size() -> None:
    data = make_image("JPEG", "RGB", (300, 200), COLOUR)
    assert reason_of(data, limits=DecodeLimits(max_pixels=50_000)) == ImageError.TOO_MANY_PIXELS


@pytest.mark.parametrize("size", [(7, 100), (100, 7), (1, 1)])
def test_too_small(size: tuple[int, int]) -> None:
    assert reason_of(make_image("PNG", "RGB", size, COLOUR)) == ImageError.TOO_SMALL


def test_min_side_is_inclusive_and_configurable() -> None:
    assert load_image(make_image("PNG", "RGB", (8, 8), COLOUR)).size == (8, 8)
    assert DEFAULT_LIMITS.min_side == 8
    assert reason_of(make_image("PNG", "RGB", (40, 30), COLOUR), limits=DecodeLimits(min_side=31)) == ImageError.TOO_SMALL


@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_not_an_image(kind: str) -> None:
    assert reason_of(NOT_IMAGES[kind]) == ImageError.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt: str) -> None:
    data = make_noise_image(fmt, (200, 150), seed=3)
    assert reason_of(truncate(data, 0.5)) == ImageError.TRUNCATED


def test_truncated_reason_survives_to_dict() -> None:
    with pytest.raises(ImageError) as info:
        load_image(truncate(make_noise_image("JPEG", (200, 150)), 0.5))
    assert info.value.to_dict() == {"reason": "truncated", "message": info.value.message}
    assert isinstance(info.value, ValueError)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def test_corrupt_png_data_after_a_valid_header() -> None:
    rng = np.random.default_rng(7)
    header = make_image("PNG", "RGB", (40, 30), COLOUR)[:33]  # signature + IHDR
    garbage = bytes(rng.integers(0, 256, 4000, dtype=np.uint8))
    data = header + _png_chunk(b"IDAT", garbage) + _png_chunk(b"IEND", b"")
    assert reason_of(data) == ImageError.CORRUPT


def test_corrupt_png_random_bytes_after_the_header() -> None:
    rng = np.random.default_rng(11)
    data = make_noise_image("PNG", (64, 48))[:100] + bytes(rng.integers(0, 256, 5000, dtype=np.uint8))
    assert reason_of(data) in (ImageError.CORRUPT, ImageError.TRUNCATED)


def _jpeg_headers(data: bytes) -> bytes:
    """Everything up to the start of the entropy-coded scan data."""
    sos = data.index(b"\xff\xda")
    return data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")]


def test_corrupt_jpeg_scan_data_after_valid_headers() -> None:
    rng = np.random.default_rng(0)  # this seed's garbage is one libjpeg cannot decode
    garbage = bytes(rng.integers(0, 256, 3000, dtype=np.uint8))
    data = _jpeg_headers(make_noise_image("JPEG", (200, 150))) + garbage + b"\xff\xd9"
    assert reason_of(data) == ImageError.CORRUPT


def test_jpeg_cut_inside_its_headers_is_refused() -> None:
    headers = _jpeg_headers(make_noise_image("JPEG", (200, 150)))
    assert reason_of(headers[:-5]) in (ImageError.CORRUPT, ImageError.TRUNCATED)


def test_jpeg_with_garbage_in_its_headers_is_refused() -> None:
    rng = np.random.default_rng(5)
    data = make_noise_image("JPEG", (200, 150))[:600] + bytes(rng.integers(0, 256, 5000, dtype=np.uint8))
    # Pillow cannot tell a broken marker segment from a non-JPEG.
    assert reason_of(data) in (ImageError.CORRUPT, ImageError.TRUNCATED, ImageError.NOT_AN_IMAGE)


def test_corrupt_gif_with_huge_declared_size_and_no_data() -> None:
    header = make_image("GIF", "RGB", (40, 30), COLOUR)
    patched = header[:6] + struct.pack("<HH", 60_000, 60_000) + header[10:]
    assert reason_of(patched) in (ImageError.TOO_MANY_PIXELS, ImageError.CORRUPT, ImageError.TRUNCATED)


def test_patched_png_without_crc_fix_is_rejected() -> None:
    good = make_image("PNG", "RGB", (40, 30), COLOUR)
    broken = bytearray(patch_png_size(good, 50, 30))
    broken[30] ^= 0xFF  # break the IHDR CRC
    with pytest.raises(ImageError):
        load_image(bytes(broken))


# -- mini fuzz ----------------------------------------------------------------


def _decodes_or_image_error(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> str:
    try:
        image = load_image(data, limits=limits, draft_size=32)
    except ImageError as exc:
        assert exc.reason in ImageError.REASONS
        return exc.reason
    assert image.mode == "RGB"
    assert min(image.size) >= 1
    return "ok"


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about broken EXIF/TIFF tags
def test_fuzz_random_bytes_never_escape_as_other_errors() -> None:
    rng = np.random.default_rng(20261125)
    limits = DecodeLimits(max_pixels=4_000_000)  # keep any lucky decode cheap
    outcomes: dict[str, int] = {}
    for _ in range(300):
        magic = FORMAT_MAGICS[int(rng.integers(len(FORMAT_MAGICS)))]
        body = bytes(rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8))
        outcome = _decodes_or_image_error(magic + body, limits)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("ok", 0) < 300


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_fuzz_single_byte_mutations_never_escape_as_other_errors(fmt: str) -> None:
    original = make_noise_image(fmt, (24, 16), seed=1) if fmt != "GIF" else make_animated_gif((24, 16))
    rng = np.random.default_rng(len(original))
    limits = DecodeLimits(max_pixels=4_000_000)
    count = 300 if fmt in ("JPEG", "PNG") else 60
    outcomes: dict[str, int] = {}
    for _ in range(count):
        mutated = bytearray(original)
        position = int(rng.integers(len(mutated)))
        mutated[position] = (mutated[position] + int(rng.integers(1, 256))) % 256
        outcome = _decodes_or_image_error(bytes(mutated), limits)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("ok", 0) > 0, "most single-byte changes in pixel data still decode"
