"""``reclassify`` on the emulators: the processed bucket scored with a
candidate model (the same network with its labels rotated, so most answers
change); without --apply nothing moves and no record changes; with --apply
the changed files move, their records keep the old decision in
``previous``, and a second --apply finds nothing left to change."""

from __future__ import annotations

import json
from pathlib import Path

from tests.backfill.conftest import BackfillStack, catalogue_images


def test_reclassify_reports_without_moving_then_applies(stack: BackfillStack, tmp_path: Path) -> None:
    stack.upload("re/", catalogue_images(290)[260:290])
    done = stack.run_cli("backfill", "gs://it-catalogue/re/")
    assert done.returncode == 0, done.stderr[-3000:]
    candidate = stack.model_version + "-rotated"
    processed, records = stack.processed(), stack.records()

    report = stack.run_cli("reclassify", "--model", candidate, "--report", str(tmp_path / "dry"))
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads(report.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["apply"] is False
    assert stack.processed() == processed  # nothing moved
    assert stack.records() == records  # no record changed
    written = json.loads((tmp_path / "dry" / "report.json").read_text())
    decided = [r for r in records.values() if r.get("status") in ("classified", "needs_review")]
    assert written["scored"] == len(decided) >= 30
    assert written["changed"] == summary["counts"]["changed"] > 0
    assert written["candidate"] == candidate and written["by_class"]
    page = (tmp_path / "dry" / "report.html").read_text()
    assert page.count('<img src="data:image/jpeg;base64,') == written["changed"]

    applied = stack.run_cli("reclassify", "--model", candidate, "--report", str(tmp_path / "apply"), "--apply")
    assert applied.returncode == 0, applied.stderr[-3000:]
    moved = json.loads((tmp_path / "apply" / "report.json").read_text())["changes"]
    assert len(moved) == written["changed"]
    after, now = stack.processed(), stack.records()
    assert len(after) == len(processed)  # moved, not copied: one file per record still
    for change in moved:
        record = now[change["id"]]
        assert record["label"] == change["new"]["label"] and record["model_version"] == candidate
        assert record["destination"]["name"] == change["moved_to"] in after
        assert change["file"] not in after
        assert record["previous"][-1]["label"] == change["old"]["label"]
        assert record["previous"][-1]["destination"]["name"] == change["file"]

    again = stack.run_cli("reclassify", "--model", candidate, "--report", str(tmp_path / "again"), "--apply")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again" / "report.json").read_text())["changed"] == 0
    assert stack.processed() == after
