"""The memory one decode costs is bounded by the pixel limit: small files
(under 200 kB) that declare many pixels are decoded in a fresh process each,
and its peak resident memory (VmHWM) above what it held before decoding stays
under a per-mode bound per declared pixel (``BYTES_PER_PIXEL``). By default at
4 megapixels; with ``--long`` at the default limit itself (16 megapixels, a
square of 4,000 pixels).

Measured here at 4 / 16 megapixels, bytes per pixel: RGB PNG 8.9 / 8.3,
16-bit grey PNG 9.4 / 9.1 (about 25 before its conversion used a lookup
table instead of float64 copies: about 1 GB for a 90 kB file at 40
megapixels), palette PNG with transparency 12.4 / 12.1, RGBA PNG 14.4 / 14.1
(17 and 20 before transparency was flattened in place), JPEG 0.8 / 0.3
(decoded at reduced size by ``draft``). At the 16-megapixel default limit an
RGBA PNG of 71 kB thus peaks at 215 MB; shared/preprocess.py lets one such
decode run at a time per process, so that a function instance stays within
its 512 MiB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.imaging import DEFAULT_LIMITS
from tests.images import encode

REPO = Path(__file__).resolve().parents[2]
#: the measurements above, with about 20% to spare
BYTES_PER_PIXEL = {"rgb_png": 11, "rgba_png": 17, "palette_transparent_png": 15, "grey16_png": 12, "jpeg": 2}
SLACK = 16 * 1024 * 1024
CHILD = """
import json, sys
from shared.errors import ImageError
from shared.preprocess import prepare_image

def status(field):  # kB; VmHWM is this program's peak (ru_maxrss would include the forking parent's)
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":"))

data = open(sys.argv[1], "rb").read()
base = status("VmRSS")
try:
    outcome = list(prepare_image(data, 224).shape)
except ImageError as exc:
    outcome = exc.reason
print(json.dumps({"outcome": outcome, "extra_bytes": max(0, status("VmHWM") - base) * 1024}))
"""


def images(size: tuple[int, int]) -> dict[str, bytes]:
    width, height = size
    return {
        "rgb_png": encode(Image.new("RGB", size, (10, 200, 30)), "PNG"),
        "rgba_png": encode(Image.new("RGBA", size, (10, 200, 30, 100)), "PNG"),
        "palette_transparent_png": encode(Image.new("P", size, 0), "PNG", transparency=0),
        "grey16_png": encode(Image.fromarray(np.full((height, width), 30000, dtype=np.uint16)), "PNG"),
        "jpeg": encode(Image.new("RGB", size, (10, 200, 30)), "JPEG"),
    }


def decode_in_child(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_peaks(tmp_path: Path, size: tuple[int, int]) -> None:
    pixels = size[0] * size[1]
    assert pixels <= DEFAULT_LIMITS.max_pixels
    for kind, data in images(size).items():
        path = tmp_path / kind
        path.write_bytes(data)
        result = decode_in_child(path)
        assert result["outcome"] == [224, 224, 3], (kind, result)
        per_pixel = result["extra_bytes"] / pixels
        print(f"{kind}: {len(data)} bytes, {result['extra_bytes'] / 2**20:.0f} MB peak, {per_pixel:.1f} bytes/pixel")
        assert result["extra_bytes"] <= BYTES_PER_PIXEL[kind] * pixels + SLACK, (kind, per_pixel)


def test_decode_memory_per_pixel_is_bounded(tmp_path: Path) -> None:
    check_peaks(tmp_path, (2000, 2000))


@pytest.mark.long
def test_decode_memory_at_the_pixel_limit_is_bounded(tmp_path: Path) -> None:
    side = int(DEFAULT_LIMITS.max_pixels**0.5)
    check_peaks(tmp_path, (side, side))
