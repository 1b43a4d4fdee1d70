"""``make bench``'s backfill section, a short run: the pipeline and the plain
loop each finish every object on their own local stack; the inference stage
is timed both ways (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.backfill.conftest import REPO, SMALL


def test_backfill_bench_section_short_run() -> None:
    command = [sys.executable, "-m", "bench.backfill", "--store", str(REPO / "default-model"), "--count", "6"]
    command += ["--data", str(SMALL)] if SMALL.is_dir() else []
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["objects"] == 6
    assert result["pipeline"]["finished"] == 6 and result["pipeline"]["images_per_second"] > 0
    assert sum(result["plain_loop"]["statuses"].values()) == 6
    rates = {key: value for key, value in result["inference"].items() if key.endswith("per_second") and "stage" not in key}
    assert len(rates) == 3 and all(value > 0 for value in rates.values())  # bare one by one, bare batched, RunInference
