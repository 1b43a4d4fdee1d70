"""The decode benchmark: what one upload costs the classify function to
decode, for camera-size JPEGs (12, 24, 48 and 100 megapixels, baseline and
one progressive), a 12-megapixel HEIC, and the costliest input the limits
accept by construction (an RGBA PNG at ``MAX_IMAGE_PIXELS``); against the
functions' memory setting in ``terraform/variables.tf``.

Each input is made at run time (smooth colour gradients with a little noise,
as a photo; nothing is read from the dataset) and decoded in a fresh Python
process by ``shared.preprocess.prepare_image``, the function's own path
(header checks, ``draft``, decode, resize to 224x224). That process reports
the decode's wall time (median of ``repeats``; the first call, which also
registers the HEIF opener, is a warm-up on a small image), and its peak
resident memory (``VmHWM``) above what it held before the first decode, and
in all.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.dev_paths import REPO_ROOT
from shared.imaging import DEFAULT_LIMITS, register_openers

MIB = 2**20
#: (name, width, height, format, save options)
CASES: tuple[tuple[str, int, int, str, dict[str, Any]], ...] = (
    ("JPEG 12 MP", 4000, 3000, "JPEG", {"quality": 90}),
    ("JPEG 24 MP", 6000, 4000, "JPEG", {"quality": 90}),
    ("JPEG 24 MP progressive", 6000, 4000, "JPEG", {"quality": 90, "progressive": True}),
    ("JPEG 48 MP", 8000, 6000, "JPEG", {"quality": 90}),
    ("JPEG 100 MP", 11648, 8736, "JPEG", {"quality": 90}),
    ("HEIC 12 MP", 4000, 3000, "HEIF", {"quality": 80}),
    ("RGBA PNG at the pixel limit", 4000, 4000, "PNG", {}),
)
#: ``--quick`` (the CI smoke run): the same kinds, small enough for seconds
QUICK_CASES: tuple[tuple[str, int, int, str, dict[str, Any]], ...] = (
    ("JPEG 12 MP", 4000, 3000, "JPEG", {"quality": 90}),
    ("JPEG 2 MP progressive", 1600, 1200, "JPEG", {"quality": 90, "progressive": True}),
    ("HEIC 1 MP", 1200, 900, "HEIF", {"quality": 80}),
    ("RGBA PNG 4 MP", 2000, 2000, "PNG", {}),
)

CHILD = """
import json, statistics, sys, time
from shared.errors import ImageError
from shared.preprocess import prepare_image
from shared.imaging import register_openers

def status(field):  # kB; this process's own figures (ru_maxrss would count the parent too)
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":"))

register_openers()
prepare_image(open(sys.argv[2], "rb").read(), 224)  # warm-up: imports, code paths
data = open(sys.argv[1], "rb").read()
repeats = int(sys.argv[3])
base = status("VmRSS")
seconds = []
outcome = None
for _ in range(repeats):
    started = time.perf_counter()
    try:
        outcome = list(prepare_image(data, 224).shape)
    except ImageError as exc:
        outcome = exc.reason
    seconds.append(time.perf_counter() - started)
print(json.dumps({"outcome": outcome, "seconds": seconds, "base_kb": base, "peak_kb": status("VmHWM")}))
"""


@dataclass(frozen=True)
class DecodeRow:
    name: str
    file_mib: float
    declared_mp: float
    outcome: str
    decode_ms: float
    peak_extra_mib: float
    process_peak_mib: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A synthetic photo: colour gradients across and down, noise on blue.
    Made a band at a time so that a 100-megapixel one needs no float copy."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    across = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    for top in range(0, height, 1024):
        bottom = min(height, top + 1024)
        down = np.linspace(top, bottom - 1, bottom - top)[:, None] * 255.0 / max(1, height - 1)
        pixels[top:bottom, :, 0] = across
        pixels[top:bottom, :, 1] = down.astype(np.uint8)
        pixels[top:bottom, :, 2] = rng.integers(96, 160, (bottom - top, width), dtype=np.uint8)
    return Image.fromarray(pixels)


def make_input(path: Path, width: int, height: int, fmt: str, options: dict[str, Any]) -> None:
    if fmt == "PNG":  # constant RGBA: a few kB that decode to the full 4 bytes a pixel and more
        Image.new("RGBA", (width, height), (10, 200, 30, 100)).save(path, "PNG")
        return
    register_openers()  # the HEIF encoder comes with pillow-heif
    image = photo(width, height)
    image.save(path, fmt, **options)


def function_memory_mib(variables: Path = REPO_ROOT / "terraform" / "variables.tf") -> int | None:
    """The default of ``function_memory`` in the Terraform variables, in MiB."""
    try:
        text = variables.read_text()
    except OSError:
        return None
    block = re.search(r'variable\s+"function_memory"\s*\{(.*?)\n\}', text, re.S)
    value = block and re.search(r'default\s*=\s*"(\d+)(Mi|Gi)"', block.group(1))
    if not value:
        return None
    return int(value.group(1)) * (1024 if value.group(2) == "Gi" else 1)


def decode_in_child(path: Path, warmup: Path, repeats: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(warmup), str(repeats)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(*, quick: bool = False, repeats: int | None = None, serving_mib: float | None = None) -> dict[str, Any]:
    """Make every input, decode each in a fresh process, and compare the
    costliest accepted one with the functions' memory setting. Sizes are MiB.

    ``serving_mib``: what a serving instance holds before any upload (the
    peak PSS of the HTTP section, when it ran), added to the costliest decode.
    """
    repeats = repeats or (1 if quick else 3)
    cases = QUICK_CASES if quick else CASES
    rows: list[DecodeRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        warmup = Path(tmp) / "warmup.jpg"
        photo(64, 48).save(warmup, "JPEG")
        for name, width, height, fmt, options in cases:
            path = Path(tmp) / f"input.{fmt.lower()}"
            make_input(path, width, height, fmt, options)
            child = decode_in_child(path, warmup, repeats)
            path_size = path.stat().st_size
            path.unlink()
            outcome = child["outcome"]
            rows.append(
                DecodeRow(
                    name=name,
                    file_mib=round(path_size / MIB, 2),
                    declared_mp=round(width * height / 1e6, 1),
                    outcome="classified input (224x224x3)" if outcome == [224, 224, 3] else f"refused: {outcome}",
                    decode_ms=round(statistics.median(child["seconds"]) * 1000, 1),
                    peak_extra_mib=round(max(0, child["peak_kb"] - child["base_kb"]) / 1024, 1),
                    process_peak_mib=round(child["peak_kb"] / 1024, 1),
                )
            )
            print(f"  {name}: {rows[-1].decode_ms} ms, +{rows[-1].peak_extra_mib} MiB", flush=True)
    accepted = [r for r in rows if r.outcome.startswith("classified")]
    costliest = max(accepted, key=lambda r: r.peak_extra_mib) if accepted else None
    memory = function_memory_mib()
    result: dict[str, Any] = {
        "rows": [r.to_dict() for r in rows],
        "repeats": repeats,
        "max_image_pixels": DEFAULT_LIMITS.max_pixels,
        "function_memory_mib": memory,
        "serving_mib": serving_mib,
    }
    if costliest and memory:
        # One decode over a megapixel at a time per instance (shared/preprocess.py),
        # so an instance holds serving + the costliest decode + small ones beside it.
        held = (serving_mib or 0.0) + costliest.peak_extra_mib
        result["costliest"] = {
            "input": costliest.name,
            "peak_extra_mib": costliest.peak_extra_mib,
            "held_mib": round(held, 1),
            "margin_mib": round(memory - held, 1),
        }
    return result
