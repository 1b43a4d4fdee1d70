"""``python -m bench.overhead [--variant V] [--core N] [--rounds R]``: the
shared Classifier against the bare LiteRT interpreter for one exported
variant of the last ``make bench`` model (``--out``, default build/bench),
the two called in turn in one loop on one core, as the inference section
does, but for one variant and more rounds: a quicker, steadier look at the
"Classifier within 1.1x" target on a busy machine. Prints one JSON line:
fastest and median call of each, the ratio of the fastest calls, of the
medians, and the median of the per-round ratios."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from bench.artifacts import Artifacts
from bench.inference import _bare_interpreter, _bare_invoke
from bench.measure import time_interleaved
from shared.classifier import Classifier
from shared.dev_paths import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 (2 for bad arguments, from argparse)."""
    p = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench", help="the benchmark folder (its train-work/)")
    p.add_argument("--variant", default=None, help="exported variant (default: the served one)")
    p.add_argument("--core", type=int, default=None, help="core to pin to (default: this process's first)")
    p.add_argument("--rounds", type=int, default=500, help="measured rounds (default 500, after 30 unmeasured)")
    args = p.parse_args(argv)
    artifacts = Artifacts.at(args.out.resolve())
    variant = args.variant or artifacts.served_variant()[0] or "float32"
    core = min(os.sched_getaffinity(0)) if args.core is None else args.core
    os.sched_setaffinity(0, {core})
    model_bytes, manifest = artifacts.variant(variant)
    classifier = Classifier(model_bytes, manifest)
    pixels = np.random.default_rng(0).integers(0, 256, (manifest.input_size, manifest.input_size, 3)).astype(np.uint8)
    pair = {"bare": _bare_invoke(_bare_interpreter(model_bytes), pixels), "classifier": lambda: classifier.predict_arrays(pixels)}
    samples = time_interleaved(pair, args.rounds, 30)
    bare, wrapped = samples["bare"], samples["classifier"]
    result = {
        "variant": variant,
        "core": core,
        "rounds": args.rounds,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "bare_ms": {"min": round(1000 * min(bare), 3), "median": round(1000 * statistics.median(bare), 3)},
        "classifier_ms": {"min": round(1000 * min(wrapped), 3), "median": round(1000 * statistics.median(wrapped), 3)},
        "min_ratio": round(min(wrapped) / min(bare), 3),
        "median_ratio": round(statistics.median(wrapped) / statistics.median(bare), 3),
        "paired_median_ratio": round(statistics.median(w / b for b, w in zip(bare, wrapped, strict=True)), 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
