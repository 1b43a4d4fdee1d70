"""``fashionctl results``: the query on a real Firestore emulator through the
real client, the table and JSON renderings, and the command as a user runs
it (reading the stack's env file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fashionctl import results
from fashionctl.context import merged_env
from tests.emulators import PROJECT, firestore_emulator
from tests.pipeline.conftest import FIRESTORE_PREFERENCE, REPO

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def record(name: str, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    """A finished record shaped like shared/records.py writes them."""
    created = NOW - timedelta(minutes=minutes_ago)
    base = {
        "source": {"bucket": "in", "name": name, "generation": "1", "size": 10, "content_type": "image/jpeg"},
        "status": "classified",
        "label": "Watches",
        "confidence": 0.9234,
        "top_k": [{"label": "Watches", "score": 0.9234}],
        "model_version": "v1",
        "destination": {"bucket": "out", "name": f"watches/{name}"},
        "error": None,
        "created_at": created,
        "updated_at": created,
        "finished_at": created,
        "trigger": "event",
        "attempts": 1,
        "lease_owner": None,
        "lease_until": None,
        "decision": {"status": "classified"},
    }
    return base | fields


# --------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("1w", NOW - timedelta(weeks=1)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("0.5h", NOW - timedelta(minutes=30)),
        ("2026-11-25T14:00:00", datetime(2026, 11, 25, 14, tzinfo=UTC)),
        ("2026-11-25T14:00:00+01:00", datetime(2026, 11, 25, 13, tzinfo=UTC)),
        ("2026-11-24", datetime(2026, 11, 24, tzinfo=UTC)),
    ],
)
def test_since_takes_durations_and_iso_times(text: str, expected: datetime):
    assert results.parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "15", "15x", "m15", "2026-13-01"])
def test_since_rejects_anything_else(text: str):
    with pytest.raises(ValueError, match="expected a duration"):
        results.parse_since(text, now=NOW)


def test_rows_show_category_confidence_status_with_reason_destination_and_model():
    classified = results.to_row(record("a.jpg", 1))
    assert (classified.file, classified.category, classified.confidence) == ("a.jpg", "Watches", "92.3%")
    assert (classified.status, classified.destination, classified.model) == ("classified", "watches/a.jpg", "v1")
    assert classified.time == "11-25 14:59:00"
    rejected = results.to_row(
        record(
            "b.jpg",
            2,
            status="rejected",
            label=None,
            confidence=None,
            destination={"bucket": "out", "name": "rejected/b.jpg"},
            error={"reason": "not_an_image", "message": "not an image"},
        )
    )
    assert (rejected.category, rejected.confidence, rejected.status) == ("-", "-", "rejected: not_an_image")
    in_flight = results.to_row({"id": "abc", "status": "processing"})
    assert (in_flight.file, in_flight.destination, in_flight.model, in_flight.time) == ("abc", "-", "-", "-")


def test_the_table_is_aligned_with_confidence_on_the_right():
    rows = [results.to_row(record("a-long-name.jpg", 1)), results.to_row(record("b.jpg", 2, confidence=0.5))]
    lines = results.table(rows).splitlines()
    assert lines[0].split() == ["time", "file", "category", "confidence", "status", "destination", "model"]
    for column in ("file", "category", "status", "destination", "model"):
        assert len({line.index(value) for line, value in zip(lines[1:], _column(rows, column), strict=True)}) == 1
    ends = {line.index(value) + len(value) for line, value in zip(lines, ["confidence", "92.3%", "50.0%"], strict=True)}
    assert len(ends) == 1  # right-aligned under its header


def _column(rows: list[results.Row], name: str) -> list[str]:
    return [getattr(row, name) for row in rows]


def test_json_lines_leave_out_the_bookkeeping_and_write_iso_times():
    line = results.to_json({"id": "x"} | record("a.jpg", 1))
    data = json.loads(line)
    assert "\n" not in line
    assert data["id"] == "x" and data["source"]["name"] == "a.jpg"
    assert data["created_at"] == "2026-11-25T14:59:00+00:00"
    assert not {"lease_owner", "lease_until", "decision"} & set(data)


def test_the_environment_overrides_the_stack_env_file(tmp_path: Path):
    env_file = tmp_path / "env"
    env_file.write_text("GOOGLE_CLOUD_PROJECT=demo-fashion\nFIRESTORE_EMULATOR_HOST=127.0.0.1:1\nINCOMING_BUCKET=x\n")
    merged = merged_env({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:2", "HOME": "/root"}, env_file)
    assert merged["FIRESTORE_EMULATOR_HOST"] == "127.0.0.1:2"
    assert merged["GOOGLE_CLOUD_PROJECT"] == "demo-fashion"
    assert "HOME" not in merged
    assert merged_env({}, tmp_path / "absent") == {}


# --------------------------------------------------------------------------
# On the Firestore emulator


@pytest.fixture(scope="module")
def firestore_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Firestore emulator holding five records created 1 to 5 minutes before now."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    now = datetime.now(UTC)
    with (
        pytest.MonkeyPatch.context() as mp,
        firestore_emulator(tmp_path_factory.mktemp("results"), kind=FIRESTORE_PREFERENCE) as host,
    ):
        mp.setenv("FIRESTORE_EMULATOR_HOST", host)
        db = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
        for minutes in range(1, 6):
            item = record(f"{minutes}.jpg", 0) | {"created_at": now - timedelta(minutes=minutes)}
            db.collection(results.COLLECTION).document(f"doc-{minutes}").set(item)
        db.collection("stats").document("2026-11-25").set({"total": 5})  # other collections are not listed
        yield host


def _client(host: str) -> Any:
    return results.firestore_client({"FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": PROJECT})


def test_latest_lists_newest_first_with_ids(firestore_host: str):
    found = results.latest(_client(firestore_host))
    assert [r["id"] for r in found] == [f"doc-{m}" for m in range(1, 6)]
    assert [r["source"]["name"] for r in found] == [f"{m}.jpg" for m in range(1, 6)]


def test_latest_honours_since_and_limit(firestore_host: str):
    db = _client(firestore_host)
    since = datetime.now(UTC) - timedelta(minutes=3, seconds=30)
    assert [r["id"] for r in results.latest(db, since=since)] == ["doc-1", "doc-2", "doc-3"]
    assert [r["id"] for r in results.latest(db, limit=2)] == ["doc-1", "doc-2"]
    assert results.latest(db, since=datetime.now(UTC) + timedelta(minutes=1)) == []


def fashionctl(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in results.FIRESTORE_VARIABLES}
    command = [sys.executable, "-m", "fashionctl.cli", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_the_command_reads_the_stack_env_file(firestore_host: str, tmp_path: Path):
    (tmp_path / "env").write_text(f"GOOGLE_CLOUD_PROJECT={PROJECT}\nFIRESTORE_EMULATOR_HOST={firestore_host}\n")
    table = fashionctl("results", "--state-dir", str(tmp_path), "--since", "3m30s")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["time", "file", "category", "confidence"]
    assert [line.split()[2] for line in lines[1:]] == ["1.jpg", "2.jpg", "3.jpg"]
    assert "92.3%" in lines[1] and "watches/1.jpg" in lines[1]

    as_json = fashionctl("results", "--state-dir", str(tmp_path), "--json", "--limit", "2")
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == ["doc-1", "doc-2"]

    empty = fashionctl("results", "--state-dir", str(tmp_path), "--since", "2099-01-01")
    assert empty.returncode == 0 and empty.stdout.startswith("no classification records since 2099-01-01")


def test_the_command_refuses_a_bad_since_or_limit(tmp_path: Path):
    bad_since = fashionctl("results", "--state-dir", str(tmp_path), "--since", "soon")
    assert bad_since.returncode == 2 and "expected a duration" in bad_since.stderr
    bad_limit = fashionctl("results", "--state-dir", str(tmp_path), "--limit", "0")
    assert bad_limit.returncode == 2 and "must be at least 1" in bad_limit.stderr
