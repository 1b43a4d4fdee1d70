"""``python -m bench decode --quick``: the decode benchmark works and its
results hold what docs/benchmarks.md reports (timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.decode import function_memory_mib

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench


def test_decode_section_quick(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "decode", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sections"] == ["decode"] and "training" not in results  # no model needed
    decode = results["decode"]
    rows = {row["name"]: row for row in decode["rows"]}
    assert set(rows) == {"JPEG 12 MP", "JPEG 2 MP progressive", "HEIC 1 MP", "RGBA PNG 4 MP"}
    for row in rows.values():
        assert row["outcome"] == "classified input (224x224x3)", row
        assert row["decode_ms"] > 0 and row["process_peak_mib"] > row["peak_extra_mib"] >= 0 and row["file_mib"] > 0
    # A drafted 12 MP JPEG holds far less than a 4 MP RGBA PNG decoded whole.
    assert rows["JPEG 12 MP"]["peak_extra_mib"] < rows["RGBA PNG 4 MP"]["peak_extra_mib"]
    assert decode["function_memory_mib"] == function_memory_mib() == 512
    assert decode["costliest"]["margin_mib"] == round(512 - decode["costliest"]["held_mib"], 1)
    markdown = (tmp_path / "results.md").read_text()
    assert "### Decode" in markdown and "Costliest accepted input" in markdown
    assert "HEIC 1 MP" in done.stdout
