"""The sweep function on the emulators: it finds uploads no event processed,
respects its budget and minimum age, never processes an object twice, and a
dry run changes nothing."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from shared.records import FINISHED
from tests.images import make_noise_image, make_photo_like
from tests.pipeline.conftest import PROCESSED, require_transaction_isolation
from tests.sweep.conftest import SweepStack


def _upload_many(stack: SweepStack, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}{k:02d}.jpg" for k in range(count)]
    for k, name in enumerate(names):
        stack.upload(name, make_photo_like(seed=k))
    return names


def _run_doc(stack: SweepStack, run_id: str) -> dict:
    return stack.firestore().collection("sweep_runs").document(run_id).get().to_dict() or {}


def test_objects_without_events_are_found_and_processed(swept: SweepStack) -> None:
    names = _upload_many(swept, "noevent-", 3)
    swept.upload("noevent-bad.jpg", b"not an image at all")
    result = swept.sweep()
    counts = result["counts"]
    assert counts["scanned"] == 4 and counts["processed"] == 4 and counts["failed"] == 0
    assert counts["rejected"] == 1
    assert counts["classified"] + counts["needs_review"] == 3 == sum(result["per_category"].values())
    assert result["cut_off_by_budget"] is False
    docs = swept.documents("noevent-")
    assert len(docs) == 4 and all(d["trigger"] == "sweep" and d["status"] in FINISHED for d in docs)
    assert swept.incoming() == []
    assert len(swept.processed("noevent-")) == 4 and "rejected/noevent-bad.jpg" in swept.processed("noevent-")
    stored = _run_doc(swept, result["run_id"])
    assert stored["status"] == "finished" and stored["counts"] == counts and stored["dry_run"] is False
    assert stored["finished_at"] >= stored["started_at"] and stored["duration_s"] >= 0
    assert {d["source"]["name"] for d in docs} == {*names, "noevent-bad.jpg"}


def test_young_objects_are_left_to_their_events(swept: SweepStack) -> None:
    _upload_many(swept, "young-", 2)
    result = swept.sweep(min_age=3600)
    assert result["counts"]["skipped_too_young"] == 2 and result["counts"]["processed"] == 0
    assert swept.documents("young-") == [] and len(swept.incoming()) == 2


def test_budget_cut_then_next_run_completes_without_duplicates(swept: SweepStack) -> None:
    names = _upload_many(swept, "budget-", 5)
    first = swept.sweep(budget=0.001)
    assert first["cut_off_by_budget"] is True
    assert first["counts"]["processed"] == 1 and first["counts"]["failed"] == 0
    assert len(swept.incoming()) == 4
    second = swept.sweep()
    assert second["cut_off_by_budget"] is False and second["counts"]["processed"] == 4
    docs = swept.documents("budget-")
    assert sorted(d["source"]["name"] for d in docs) == names
    assert all(d["attempts"] == 1 and d["status"] in FINISHED for d in docs)
    assert len(swept.processed("budget-")) == 5 and swept.incoming() == []


def test_concurrent_sweeps_process_no_object_twice(swept: SweepStack) -> None:
    require_transaction_isolation(swept.firestore_kind)
    names = _upload_many(swept, "overlap-", 8)
    results: list[dict] = [{}, {}]

    def run(k: int) -> None:
        results[k] = swept.sweep(instance=k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r["counts"]["processed"] for r in results) == 8
    assert all(r["counts"]["failed"] == 0 for r in results)
    docs = swept.documents("overlap-")
    assert sorted(d["source"]["name"] for d in docs) == names
    assert all(d["attempts"] == 1 for d in docs)
    assert Counter(swept.processed("overlap-")).most_common(1)[0][1] == 1 and len(swept.processed("overlap-")) == 8
    assert swept.incoming() == []


def test_dry_run_changes_nothing(swept: SweepStack) -> None:
    names = _upload_many(swept, "dry-", 2)
    swept.upload("dry-noise.png", make_noise_image("PNG"), "image/png")
    before = {b.name: b.generation for b in swept.storage().list_blobs("it-incoming")}
    result = swept.sweep(dry_run=True)
    assert result["dry_run"] is True and sorted(result["would_process"]) == sorted([*names, "dry-noise.png"])
    assert result["counts"]["processed"] == 0 and result["counts"]["eligible"] == 3
    assert swept.documents("dry-") == [] and swept.processed("dry-") == []
    assert {b.name: b.generation for b in swept.storage().list_blobs("it-incoming")} == before


def test_bad_requests_are_refused(swept: SweepStack) -> None:
    import requests

    assert requests.get(swept.urls[0], timeout=10).status_code == 405
    assert requests.post(swept.urls[0], json={"budget": -1}, timeout=10).status_code == 400
    assert requests.post(swept.urls[0], json={"bogus": 1}, timeout=10).status_code == 400
    assert requests.post(swept.urls[0], data="{not json", timeout=10).status_code == 400


def test_fashionctl_sweep_runs_the_core_on_the_stack(
    swept: SweepStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import localcloud
    from fashionctl import cli

    keys = ("GOOGLE_CLOUD_PROJECT", "INCOMING_BUCKET", "PROCESSED_BUCKET", "MODELS_BUCKET", "STORAGE_EMULATOR_HOST")
    localcloud.write_env_file(
        tmp_path / localcloud.ENV_FILE, {k: swept.env[k] for k in keys} | {"FIRESTORE_EMULATOR_HOST": swept.firestore_host}
    )
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SWEEP_URL", raising=False)
    _upload_many(swept, "cli-", 2)
    assert cli.main(["sweep", "--state-dir", str(tmp_path), "--dry-run", "--min-age", "0"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["counts"]["eligible"] == 2 and len(swept.incoming()) == 2
    assert cli.main(["sweep", "--state-dir", str(tmp_path), "--min-age", "0", "--budget", "60"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["counts"]["processed"] == 2 and swept.incoming() == []
    assert all(d["trigger"] == "sweep" for d in swept.documents("cli-"))


def test_a_sweep_can_publish_the_operations_report(swept: SweepStack) -> None:
    _upload_many(swept, "reported-", 2)
    result = swept.sweep(report_days=7)
    assert result["counts"]["processed"] == 2
    prefix = f"gs://{PROCESSED}/reports/{result['run_id']}/"
    assert sorted(result["report"]) == [prefix + name for name in ("records.csv", "records.json", "report.html")]
    html = swept.storage().bucket(PROCESSED).blob(f"reports/{result['run_id']}/report.html").download_as_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in html
    rows = swept.storage().bucket(PROCESSED).blob(f"reports/{result['run_id']}/records.csv").download_as_text()
    assert sum("reported-" in line for line in rows.splitlines()) == 2
    assert "report" not in swept.sweep(dry_run=True, report_days=7)  # a dry run writes nothing


def test_zero_byte_objects_and_folders_are_no_backlog(swept: SweepStack) -> None:
    """Issue 13.4 through the sweep: a folder placeholder is not listed; a
    zero-byte object whose event was lost is recorded ``empty`` once (not
    rejected, not copied) and stays in incoming; the next run skips it."""
    swept.upload("zero-folder/", b"")
    swept.upload("zero-folder/pending.jpg", b"")
    first = swept.sweep()["counts"]
    assert first["scanned"] == 1 and first["processed"] == 1 and first["empty"] == 1 and first["rejected"] == 0
    (doc,) = swept.documents("zero-folder/")
    assert doc["status"] == "empty" and doc["destination"] is None and doc["source"]["name"] == "zero-folder/pending.jpg"
    assert not [b.name for b in swept.storage().list_blobs(PROCESSED) if "zero-folder/" in b.name]
    assert sorted(swept.incoming()) == ["zero-folder/", "zero-folder/pending.jpg"]
    again = swept.sweep()["counts"]
    assert again["skipped_finished"] == 1 and again["processed"] == 0
