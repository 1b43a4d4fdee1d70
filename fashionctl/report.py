"""``fashionctl report``: the last N days of classification records as one
self-contained HTML report with charts, plus CSV and JSON exports, written to
a local folder and optionally to ``reports/<stamp>/`` in the processed bucket.
It links the current model's training report (``models/<version>/report.html``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from reporting import collect
from reporting.build import Report


def make_report(env: Mapping[str, str], db: Any, storage: Any, days: int, now: datetime | None = None) -> Report:
    return collect.make_report(
        db,
        storage,
        models_bucket=env["MODELS_BUCKET"],
        days=days,
        project=env.get("GOOGLE_CLOUD_PROJECT", ""),
        emulator_host=env.get("STORAGE_EMULATOR_HOST"),
        now=now,
    )


def write(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (content, _) in report.files().items():
        (out / name).write_text(content, encoding="utf-8")
        written.append(out / name)
    return written


def run(env: Mapping[str, str], days: int, out: Path, to_bucket: bool = False, stdout: TextIO | None = None) -> int:
    from fashionctl.results import firestore_client
    from fashionctl.sweep import storage_client

    stdout = stdout or sys.stdout
    storage = storage_client(env)
    report = make_report(env, firestore_client(env), storage, days)
    for path in write(report, out):
        print(path, file=stdout)
    if to_bucket:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for uri in collect.upload(report, storage, env["PROCESSED_BUCKET"], stamp):
            print(uri, file=stdout)
    print(f"{report.summary.total} records over {days} days", file=stdout)
    return 0
