"""Training benchmark: the training job run as it runs in the cloud (one
process, every stage), its stage wall times and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.artifacts import Artifacts

#: A few-seconds training run for smoke tests: one epoch each, tiny calibration.
QUICK_ARGS = ("--head-epochs", "1", "--fine-tune-epochs", "1", "--representative-count", "16", "--min-accuracy", "0")


def run(artifacts: Artifacts, *, data: str | None, weights: str | None, quick: bool, extra: list[str]) -> dict[str, Any]:
    """Run ``python -m training run`` into ``artifacts`` and return its timings."""
    artifacts.work_dir.mkdir(parents=True, exist_ok=True)
    (artifacts.work_dir / "timings.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "training", "run", "--work-dir", str(artifacts.work_dir), "--out", str(artifacts.store)]
    argv += ["--force-publish"]  # the benchmark needs a current model whatever the gate says
    if data:
        argv += ["--data", data]
    if weights:
        argv += ["--weights", weights]
    if quick:
        argv += list(QUICK_ARGS)
    argv += extra
    print(f"training: {' '.join(argv[1:])}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent)  # its JSON log lines show the progress
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the training job failed with exit code {proc.returncode}")
    stages = json.loads((artifacts.work_dir / "timings.json").read_text())
    metrics = json.loads((artifacts.work_dir / "metrics.json").read_text())
    return {
        "command": " ".join(argv[1:]),
        "quick": quick,
        "wall_s": round(wall, 1),
        "stages_s": stages,
        "startup_and_other_s": round(wall - sum(stages.values()), 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "images": metrics.get("split_counts", {}),
        "test_accuracy": metrics.get("test_accuracy"),
        "served_variant": metrics.get("served_variant"),
    }
