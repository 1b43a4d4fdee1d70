"""``python -m bench.models A B [--data D] [--images N] [--rounds R] [--core C]``:
the ``predict`` latency of two served models side by side (such as the
single-head model and the one with attribute heads, issue 19).

``A`` and ``B`` are model version folders or model stores (what
``Classifier.load`` takes: ``manifest.json`` + the model file, or a store's
current version). Each round classifies one real JPEG (cycling through the
first ``--images`` of ``--data``'s ``images/``) with both models, in turn,
the order reversed every other round (``bench.measure.time_interleaved``),
on one pinned core with one interpreter thread: the shared Classifier's
``classify`` (decode, preprocess, one invoke, top-k and, for a model with
attribute heads, every attribute with its threshold), as the predict
function serves it. Load from other processes falls on both alike, so the
ratio holds on a busy machine. Prints one JSON line: fastest, median and
95th percentile of each, the ratios B/A of the fastest calls, of the medians
and the median of the per-round ratios. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import time_interleaved
from shared.classifier import Classifier
from shared.dev_paths import default_data


def jpegs(data_dir: str | None, count: int) -> list[bytes]:
    """The first ``count`` JPEGs (sorted by name) of ``data_dir``/images;
    SystemExit when there are none."""
    paths = sorted((Path(data_dir) / "images").glob("*.jpg"))[:count] if data_dir else []
    if not paths:
        raise SystemExit(f"no images under {data_dir}/images: pass --data (a dataset in the Kaggle layout)")
    return [path.read_bytes() for path in paths]


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "min": round(1000 * min(samples), 3),
        "median": round(1000 * statistics.median(samples), 3),
        "p95": round(1000 * float(np.percentile(samples, 95)), 3),
    }


def compare(a: Classifier, b: Classifier, images: list[bytes], *, rounds: int, warmup: int = 30) -> dict[str, Any]:
    """Time ``classify`` of both classifiers on ``images`` (one per round,
    cycling), interleaved; returns the figures :func:`main` prints."""
    state = {"k": 0}

    def next_image() -> bytes:
        return images[state["k"] % len(images)]

    def call_a() -> None:
        a.classify(next_image())

    def call_b() -> None:
        b.classify(next_image())
        state["k"] += 1  # both models see the same image in a round

    samples = time_interleaved({"a": call_a, "b": call_b}, rounds, warmup)
    first, second = samples["a"], samples["b"]
    return {
        "a_ms": _ms(first),
        "b_ms": _ms(second),
        "min_ratio": round(min(second) / min(first), 3),
        "median_ratio": round(statistics.median(second) / statistics.median(first), 3),
        "paired_median_ratio": round(statistics.median(y / x for x, y in zip(first, second, strict=True)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 (2 for bad arguments, from argparse)."""
    p = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__)
    p.add_argument("a", type=Path, help="the reference model (folder or store)")
    p.add_argument("b", type=Path, help="the model compared with it")
    p.add_argument("--data", default=default_data(), help="dataset whose images/ are sent (default: the small set)")
    p.add_argument("--images", type=int, default=50, help="distinct JPEGs to cycle through (default 50)")
    p.add_argument("--rounds", type=int, default=1000, help="measured rounds (default 1000, after 30 unmeasured)")
    p.add_argument("--core", type=int, default=None, help="core to pin to (default: this process's first)")
    args = p.parse_args(argv)
    core = min(os.sched_getaffinity(0)) if args.core is None else args.core
    os.sched_setaffinity(0, {core})
    a, b = Classifier.load(args.a, num_threads=1), Classifier.load(args.b, num_threads=1)
    images = jpegs(args.data, args.images)
    result = {
        "a": {"model": str(args.a), "version": a.version, "variant": a.manifest.quantization.get("variant")},
        "b": {"model": str(args.b), "version": b.version, "variant": b.manifest.quantization.get("variant")},
        "b_attributes": list(b.manifest.attributes),
        "path": "Classifier.classify: JPEG bytes -> decode, preprocess, one invoke, top-3 (+ attributes)",
        "images": len(images),
        "rounds": args.rounds,
        "core": core,
        "load_average_1min_before": round(os.getloadavg()[0], 1),
        **compare(a, b, images, rounds=args.rounds),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
