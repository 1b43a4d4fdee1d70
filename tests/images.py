"""Test images made in memory, returned as encoded bytes.

Every helper is deterministic (fixed colours or a seeded RNG), so tests can
assert exact or near-exact pixel values after decoding. Colours are RGB
tuples; sizes are ``(width, height)`` as Pillow uses them.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

#: EXIF tag number of "Orientation".
EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **save_args: Any) -> bytes:
    """Save ``image`` in ``fmt`` (a Pillow format name) and return the bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def make_image(
    fmt: str = "PNG",
    mode: str = "RGB",
    size: tuple[int, int] = (40, 30),
    colour: Any = (200, 100, 50),
    **save_args: Any,
) -> bytes:
    """A flat image of one ``colour`` (a value valid for ``mode``) in ``fmt``."""
    return encode(Image.new(mode, size, colour), fmt, **save_args)


def noise_array(size: tuple[int, int] = (64, 48), seed: int = 0) -> np.ndarray:
    """Random RGB pixels, ``(height, width, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    width, height = size
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_noise_image(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), seed: int = 0, **save_args: Any) -> bytes:
    """Random RGB noise in ``fmt``: large files that compress badly, good for
    truncation and mutation tests."""
    return encode(Image.fromarray(noise_array(size, seed)), fmt, **save_args)


def make_photo_like(size: tuple[int, int] = (64, 64), seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A random flat colour with mild noise: images that differ from each
    other in ways a tiny convolutional model notices (whole-image colour)."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    save_args = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    return encode(Image.fromarray(pixels), fmt, **save_args)


def make_quadrants(size: tuple[int, int] = (60, 40)) -> Image.Image:
    """An RGB image whose quadrants are red (top-left), green (top-right),
    blue (bottom-left) and white (bottom-right)."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = WHITE
    return Image.fromarray(pixels)


def make_exif_rotated_jpeg(orientation: int = 6, size: tuple[int, int] = (60, 40)) -> bytes:
    """A non-square quadrant JPEG (see :func:`make_quadrants`) stored as is,
    with an EXIF Orientation tag telling viewers to rotate it.

    Orientation 6: display rotated 90° clockwise, so the stored top-left (red)
    ends top-right and the displayed size is ``(height, width)``.
    Orientation 8: display rotated 90° counter-clockwise, so red ends bottom-left.
    """
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(make_quadrants(size), "JPEG", quality=95, exif=exif.tobytes())


def make_cmyk_jpeg(size: tuple[int, int] = (40, 30), cmyk: tuple[int, int, int, int] = (0, 255, 255, 0)) -> bytes:
    """A CMYK JPEG; the default ink (no cyan, full magenta and yellow) is red."""
    return encode(Image.new("CMYK", size, cmyk), "JPEG", quality=95)


def make_palette_png(
    size: tuple[int, int] = (40, 30), *, transparent: bool = True, fill_index: int = 0, mark_index: int = 1
) -> bytes:
    """A palette ("P") PNG: index 0 is red, index 1 green. The image is filled
    with ``fill_index`` and its top-left 10x10 square with ``mark_index``;
    with ``transparent``, index 0 is fully transparent (tRNS chunk)."""
    image = Image.new("P", size, fill_index)
    image.putpalette([*RED, *GREEN] + [0] * (256 * 3 - 6))
    image.paste(mark_index, (0, 0, 10, 10))
    return encode(image, "PNG", transparency=0) if transparent else encode(image, "PNG")


def make_rgba_png(size: tuple[int, int] = (40, 30), rgba: tuple[int, int, int, int] = (255, 0, 0, 0)) -> bytes:
    """An RGBA PNG of one colour; the default is fully transparent red."""
    return encode(Image.new("RGBA", size, rgba), "PNG")


def make_half_transparent_png(size: tuple[int, int] = (40, 30)) -> bytes:
    """RGBA PNG: left half opaque blue, right half fully transparent black."""
    width, height = size
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[:, : width // 2] = (0, 0, 255, 255)
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


def make_16bit_png(size: tuple[int, int] = (40, 30), value: int = 65535, gradient: bool = False) -> bytes:
    """A 16-bit grayscale PNG (opens as mode "I;16"). With ``gradient`` the
    columns run from 0 to 65535, otherwise every pixel is ``value``."""
    width, height = size
    if gradient:
        row = np.linspace(0, 65535, width).round().astype(np.uint16)
        pixels = np.tile(row, (height, 1))
    else:
        pixels = np.full((height, width), value, dtype=np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode == "I;16", image.mode
    return encode(image, "PNG")


def make_int32_tiff(size: tuple[int, int] = (40, 30), value: int = 65535) -> bytes:
    """A 32-bit integer grayscale TIFF (opens as mode "I")."""
    return encode(Image.new("I", size, value), "TIFF")


def make_float_tiff(size: tuple[int, int] = (40, 30), value: float = 1.0) -> bytes:
    """A 32-bit float grayscale TIFF (opens as mode "F")."""
    return encode(Image.new("F", size, value), "TIFF")


def make_animated_gif(
    size: tuple[int, int] = (40, 30), first: tuple[int, int, int] = RED, second: tuple[int, int, int] = BLUE
) -> bytes:
    """A two-frame GIF; the first frame is ``first``, the second ``second``."""
    frames = [Image.new("RGB", size, first), Image.new("RGB", size, second)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def make_large_jpeg(size: tuple[int, int] = (3000, 2000), seed: int = 0) -> bytes:
    """A large JPEG (3000x2000 by default): smooth colour gradients with a
    little noise, quick to encode but a real multi-megapixel decode."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.broadcast_to(x, (height, width))
    pixels[..., 1] = np.broadcast_to(y, (height, width))
    pixels[..., 2] = rng.integers(0, 256, (height, width), dtype=np.uint8) // 4 + 96
    return encode(Image.fromarray(pixels), "JPEG", quality=85)


def make_heic(image: Image.Image, quality: int = 90) -> bytes:
    """``image`` encoded as HEIC (HEVC in HEIF, what iPhones save) by
    pillow-heif's encoder (x265, bundled in its wheels)."""
    from shared.imaging import register_openers

    register_openers()
    return encode(image, "HEIF", quality=quality)


def make_jpeg_header_only(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A small real JPEG whose SOF header claims ``width`` x ``height``: its
    header is read as a camera file's would be, its scan data is a 16x16 one."""
    jpeg = bytearray(encode(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG", progressive=progressive))
    sof = jpeg.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def patch_png_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width and height of a real PNG and fix the chunk's CRC,
    so the header is valid but declares a size the data does not hold."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG starting with an IHDR chunk")
    patched = bytearray(png)
    patched[16:24] = struct.pack(">II", width, height)
    patched[29:33] = struct.pack(">I", zlib.crc32(bytes(patched[12:29])) & 0xFFFFFFFF)
    return bytes(patched)


def make_png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A decompression bomb: a few hundred bytes of valid PNG whose IHDR
    claims ``width`` x ``height`` pixels (10 gigapixels by default)."""
    return patch_png_size(make_image("PNG", "RGB", (8, 8), BLACK), width, height)


def truncate(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of ``data``: a file cut off mid-transfer."""
    return data[: int(len(data) * fraction)]


#: Byte strings that are certainly not images (with what they are).
NOT_IMAGES: dict[str, bytes] = {
    "text": b"hello, this is plain text and not a picture at all\n" * 4,
    "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><img src='a.jpg'></body></html>\n",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<<>>\n%%EOF\n",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(20) + b"image.jpg" + bytes(40) + b"PK\x05\x06" + bytes(18),
    "elf": b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(100),
    "json": b'{"image": "not really", "width": 100, "height": 100}',
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>',
}


#: Leading bytes of each format, to put in front of random bytes.
FORMAT_MAGICS = [
    b"",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\xff\xd8\xff\xdb",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"RIFF\x00\x10\x00\x00WEBPVP8L",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypmif1",
    b"\x00\x00\x00\x1cftypavif",
]
