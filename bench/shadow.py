"""Shadow mode's cost: the classify path with the current model only
(baseline) and with the candidate scored too (shadow), in one process, on
the same photos, alternating, plus the resident memory the candidate adds.

``python -m bench.shadow [--model DIR] [--candidate DIR] [--rounds N] [--photos DIR]``

Defaults: the embedded model (default-model/) as the current model and a
second instance of it as the candidate (a retrained candidate has the same
architecture and size), the 30 photos of samples/. What the classify
function does per upload is ``Classifier.classify`` (decode, preprocess,
invoke) for the current model, and the same once more for the candidate
(``functions/processing.py``, ``Processor._shadow``): that is what is timed.
Prints a small table; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from shared.classifier import Classifier
from shared.dev_paths import REPO_ROOT
from shared.errors import ImageError


def rss_mib() -> float:
    """This process's resident memory (VmRSS), MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shadow", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO_ROOT / "default-model")
    p.add_argument("--candidate", type=Path, default=None, help="default: a second instance of --model")
    p.add_argument("--photos", type=Path, default=REPO_ROOT / "samples")
    p.add_argument("--rounds", type=int, default=5, help="passes over the photos")
    args = p.parse_args(argv)
    current = Classifier.load(args.model)
    photos = []
    for path in sorted(args.photos.glob("*.jpg")):
        try:  # also the warm-up
            current.classify(path.read_bytes())
        except ImageError:
            continue  # samples/ holds one file that is not a photo
        photos.append(path.read_bytes())
    before = rss_mib()
    candidate = Classifier.load(args.candidate or args.model)
    for data in photos[:3]:
        candidate.classify(data)
    added_mib = rss_mib() - before
    baseline, shadow, shadow_part = [], [], []
    for _ in range(args.rounds):
        for data in photos:
            start = time.perf_counter()
            current.classify(data)
            baseline.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            current.classify(data)
            middle = time.perf_counter()
            candidate.classify(data)
            end = time.perf_counter()
            shadow.append((end - start) * 1000)
            shadow_part.append((end - middle) * 1000)

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))]

    print(f"{len(photos)} photos x {args.rounds} rounds; current {current.version}, candidate {candidate.version}")
    print(f"{'path':<28}{'median ms':>10}{'p95 ms':>10}")
    print(f"{'baseline (current only)':<28}{statistics.median(baseline):>10.2f}{pct(baseline, 0.95):>10.2f}")
    print(f"{'shadow (current+candidate)':<28}{statistics.median(shadow):>10.2f}{pct(shadow, 0.95):>10.2f}")
    print(f"{'  of which the candidate':<28}{statistics.median(shadow_part):>10.2f}{pct(shadow_part, 0.95):>10.2f}")
    print(f"resident memory: {before:.1f} MiB with the current model, +{added_mib:.1f} MiB with the candidate loaded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
