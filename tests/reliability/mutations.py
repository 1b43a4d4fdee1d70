"""Hypothesis strategies that damage valid images the way transfers, buggy
encoders and attackers do: bit flips, truncations, inserted and deleted
bytes, overwritten headers, and header fields edited to declare other (often
enormous, zero or negative) dimensions, for JPEG, PNG, GIF, WebP, BMP and TIFF.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st
from PIL import Image

from tests.images import (
    FORMAT_MAGICS,
    encode,
    make_16bit_png,
    make_animated_gif,
    make_cmyk_jpeg,
    make_exif_rotated_jpeg,
    make_noise_image,
    make_palette_png,
    patch_png_size,
)

#: Small valid images of every supported format (and some awkward modes).
VALID: dict[str, bytes] = {
    "jpeg": make_noise_image("JPEG", (48, 32), seed=1),
    "jpeg_progressive": make_noise_image("JPEG", (48, 32), seed=2, progressive=True),
    "jpeg_cmyk": make_cmyk_jpeg((24, 16)),
    "jpeg_exif": make_exif_rotated_jpeg(6, (24, 16)),
    "png": make_noise_image("PNG", (24, 16), seed=3),
    "png_palette": make_palette_png((24, 16)),
    "png_16bit": make_16bit_png((24, 16), gradient=True),
    "gif": make_animated_gif((24, 16)),
    "webp_lossy": make_noise_image("WEBP", (24, 16), seed=4, quality=50),
    "webp_lossless": make_noise_image("WEBP", (24, 16), seed=5, lossless=True),
    "webp_alpha": encode(Image.new("RGBA", (24, 16), (0, 0, 255, 128)), "WEBP"),
    "bmp": make_noise_image("BMP", (24, 16), seed=6),
    "tiff": make_noise_image("TIFF", (24, 16), seed=7),
}


_side = st.one_of(st.integers(0, 64), st.integers(0, 70_000), st.sampled_from([1, 8, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF]))


def set_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the declared size in a format's header, where it is found;
    values are wrapped into each field's range."""
    out = bytearray(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return patch_png_size(data, width % 2**32, height % 2**32)
    if data.startswith(b"GIF") and len(out) >= 10:
        out[6:10] = struct.pack("<HH", width % 2**16, height % 2**16)
    elif data.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at >= 0 and at + 9 <= len(out):
                out[at + 5 : at + 9] = struct.pack(">HH", height % 2**16, width % 2**16)
                break
    elif data.startswith(b"BM") and len(out) >= 26:
        out[18:26] = struct.pack("<ii", width % 2**31, -(height % 2**31) if width % 2 else height % 2**31)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(out) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            out[24:30] = ((width - 1) % 2**24).to_bytes(3, "little") + ((height - 1) % 2**24).to_bytes(3, "little")
        elif chunk == b"VP8 ":
            out[26:30] = struct.pack("<HH", width % 2**16, height % 2**16)
        elif chunk == b"VP8L" and len(out) >= 25:
            bits = ((width - 1) % 2**14) | (((height - 1) % 2**14) << 14) | (int.from_bytes(out[21:25], "little") & ~(2**28 - 1))
            out[21:25] = bits.to_bytes(4, "little")
    return bytes(out)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image with one to four mutations applied."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)), label="base")])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        operation = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "delete", "header", "dimensions"]))
        at = draw(st.integers(0, len(data) - 1))
        if operation == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[at:]
        elif operation == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif operation == "header":  # anywhere in the first 64 bytes: signatures, sizes, chunk lengths
            at = draw(st.integers(0, min(63, len(data) - 1)))
            data[at] = draw(st.integers(0, 255))
        else:
            data = bytearray(set_dimensions(bytes(data), draw(_side), draw(_side)))
    return bytes(data)


def random_files() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, half of them behind a format's signature."""
    return st.builds(lambda magic, body: magic + body, st.sampled_from(FORMAT_MAGICS), st.binary(max_size=2048))
