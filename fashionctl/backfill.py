"""``fashionctl backfill``/``reclassify``: run the Beam pipelines
(``backfill/``, ``python -m backfill``) with the stack's settings.

Apache Beam lives in its own venv (``.venv-beam``, ``make venv-beam``,
``requirements-beam.txt``): when this interpreter has no Beam, the pipeline
runs as a subprocess of that venv's python; its JSON log lines (progress:
objects done, images/s, ETA) stream to stderr as they come and its summary
(one JSON object) is the last line of stdout.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEAM_VENV = REPO / ".venv-beam"


class BeamMissing(RuntimeError):
    """No interpreter with Apache Beam: ``make venv-beam`` makes one."""


def beam_python(current: str = sys.executable) -> str:
    """This interpreter when it has Apache Beam, else the Beam venv's python. Raises BeamMissing."""
    if importlib.util.find_spec("apache_beam") is not None:
        return current
    candidate = BEAM_VENV / "bin" / "python"
    if candidate.is_file():
        return str(candidate)
    raise BeamMissing(f"no Apache Beam here and no {candidate}: run `make venv-beam` first")


def run(args: Sequence[str], env: Mapping[str, str]) -> tuple[int, dict | None]:
    """``python -m backfill ARGS`` with ``env``; returns the exit code and the summary (None when none came)."""
    completed = subprocess.run(
        [beam_python(), "-m", "backfill", *args],
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        summary = None
    return completed.returncode, summary


def backfill_args(
    source: str,
    *,
    dry_run: bool,
    limit: int | None,
    model: str | None,
    keep_source: bool,
    runner: str,
    beam_args: Sequence[str] = (),
) -> list[str]:
    """The ``python -m backfill backfill`` command line."""
    args = ["backfill", source, "--runner", runner]
    args += ["--dry-run"] * dry_run + ["--keep-source"] * keep_source
    args += ["--limit", str(limit)] if limit else []
    args += ["--model", model] if model else []
    return args + (["--", *beam_args] if beam_args else [])


def reclassify_args(
    model: str, report: str, *, prefix: str, limit: int | None, apply: bool, runner: str, beam_args: Sequence[str] = ()
) -> list[str]:
    """The ``python -m backfill reclassify`` command line."""
    args = ["reclassify", "--model", model, "--report", report, "--runner", runner, "--prefix", prefix]
    args += ["--apply"] * apply + (["--limit", str(limit)] if limit else [])
    return args + (["--", *beam_args] if beam_args else [])
