"""``fashionctl report`` from seeded records: the expected figures, valid
inline PNG charts, CSV rows matching the records, the model report linked."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fashionctl import report
from tests.sweep.conftest import SweepStack

NOW = datetime(2020, 1, 8, 12, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(k: int, status: str, label: str | None, confidence: float | None, day: int, reason: str | None = None) -> dict:
    return {
        "source": {"bucket": "it-incoming", "name": f"seed-{k:02d}.jpg", "generation": str(1000 + k)},
        "status": status,
        "label": label,
        "confidence": confidence,
        "model_version": "tiny-int8",
        "destination": {"bucket": "it-processed", "name": f"x/seed-{k:02d}.jpg"},
        "error": {"reason": reason, "message": "m"} if reason else None,
        "timings_ms": {"download": 1.0 + k, "classify": 2.0 * (k + 1), "total": 10.0 * (k + 1)},
        "trigger": "event",
        "created_at": datetime(2020, 1, day, 10, k, tzinfo=UTC),
        "finished_at": datetime(2020, 1, day, 10, k, 1, tzinfo=UTC),
    }


SEEDED = [
    _record(0, "classified", "Alpha Shoes", 0.9, 5),
    _record(1, "classified", "Alpha Shoes", 0.8, 5),
    _record(2, "classified", "Beta Bags", 0.95, 6),
    _record(3, "needs_review", "Gamma Tops", 0.4, 6),
    _record(4, "needs_review", "Beta Bags", 0.3, 7),
    _record(5, "rejected", None, None, 7, "not_an_image"),
    _record(6, "failed", None, None, 7),
]
OLD = _record(9, "classified", "Alpha Shoes", 0.99, 1)  # before the 7-day window (2020-01-01 < 2020-01-01T12:00)


@pytest.fixture(scope="module")
def seeded(sweep_stack: SweepStack) -> SweepStack:
    db = sweep_stack.firestore()
    for k, record in enumerate([*SEEDED, OLD]):
        db.collection("classifications").document(f"seed{k:02d}").set(record)
    return sweep_stack


def test_report_holds_the_expected_figures(seeded: SweepStack) -> None:
    built = report.make_report(seeded.env, seeded.firestore(), seeded.storage(), days=7, now=NOW)
    summary = built.summary
    assert summary.total == 7
    assert summary.per_day == {"2020-01-05": 2, "2020-01-06": 2, "2020-01-07": 3}
    assert summary.statuses == {"classified": 3, "needs_review": 2, "rejected": 1, "failed": 1}
    assert summary.categories == {"Alpha Shoes": 2, "Beta Bags": 2, "Gamma Tops": 1}
    assert summary.rejections == {"not_an_image": 1} and summary.review_queue == 2
    assert summary.latency_ms["total"] == {"p50": 40.0, "p90": 64.0, "p99": 69.4}
    assert "models%2Ftiny-int8%2Freport.html" in built.html and "model tiny-int8 training report" in built.html
    images = re.findall(r"src='data:image/png;base64,([^']+)'", built.html)
    assert len(images) == 6 and all(base64.b64decode(data).startswith(PNG_SIGNATURE) for data in images)
    exported = json.loads(built.json)
    assert exported["summary"]["total"] == 7 and len(exported["records"]) == 7
    assert exported["meta"]["model_version"] == "tiny-int8"


def test_csv_rows_match_the_records(seeded: SweepStack) -> None:
    built = report.make_report(seeded.env, seeded.firestore(), seeded.storage(), days=7, now=NOW)
    rows = list(csv.DictReader(io.StringIO(built.csv)))
    assert [row["object"] for row in rows] == [r["source"]["name"] for r in SEEDED]
    for row, record in zip(rows, SEEDED, strict=True):
        assert row["status"] == record["status"] and row["label"] == (record["label"] or "")
        assert row["confidence"] == ("" if record["confidence"] is None else str(record["confidence"]))
        assert float(row["total_ms"]) == record["timings_ms"]["total"]
        assert row["error_reason"] == ((record["error"] or {}).get("reason") or "")


def test_fashionctl_report_writes_and_uploads(
    seeded: SweepStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import localcloud
    from fashionctl import cli

    keys = ("GOOGLE_CLOUD_PROJECT", "INCOMING_BUCKET", "PROCESSED_BUCKET", "MODELS_BUCKET", "STORAGE_EMULATOR_HOST")
    localcloud.write_env_file(tmp_path / localcloud.ENV_FILE, {k: seeded.env[k] for k in keys})
    out = tmp_path / "out"
    assert cli.main(["report", "--state-dir", str(tmp_path), "--days", "30000", "--out", str(out), "--upload"]) == 0
    assert {p.name for p in out.iterdir()} == {"report.html", "records.csv", "records.json"}
    assert "<img" in (out / "report.html").read_text()
    uploaded = [b.name for b in seeded.storage().list_blobs("it-processed", prefix="reports/")]
    assert len(uploaded) == 3 and "records over 30000 days" in capsys.readouterr().out
