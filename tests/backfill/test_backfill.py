"""A backfill over 200 catalogue photos on the emulators: one finished
record and one destination per object version, the event path's finished
objects skipped, a rerun does nothing, and the processing core's Firestore
writes per object counted (backfill path against event path)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.backfill.conftest import CATALOGUE, BackfillStack, catalogue_images
from tests.pipeline.conftest import PROCESSED

FINISHED = {"classified", "needs_review", "rejected"}


class WriteCounter:
    """Counts the documents written through Firestore's commit RPC (every
    create, update, set and transaction commit goes through it), by
    collection: what the core costs per object, measured on the real client."""

    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from google.cloud.firestore_v1.services.firestore import FirestoreClient

        original = FirestoreClient.commit
        counter = self

        def commit(self: Any, request: Any = None, **kwargs: Any) -> Any:
            writes = request["writes"] if isinstance(request, dict) else request.writes
            for write in writes:
                name = write.update.name if hasattr(write, "update") else write["update"]["name"]
                counter.writes[name.split("/documents/", 1)[-1].split("/", 1)[0]] += 1
            return original(self, request=request, **kwargs)

        monkeypatch.setattr(FirestoreClient, "commit", commit)


def backfill(stack: BackfillStack, prefix: str, **options: Any) -> dict:
    from backfill.pipeline import BackfillOptions, run
    from backfill.source import Source

    return run(stack.settings(), BackfillOptions(source=Source(CATALOGUE, prefix), **options))


def test_backfill_of_200_objects_then_rerun_does_nothing(stack: BackfillStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions import wiring
    from shared import records as rec

    uploaded = stack.upload("cat/", catalogue_images(200))
    bucket = stack.storage().bucket(CATALOGUE)
    zeros = {}
    for k in range(3):  # zero-byte objects: the event path finishes them as "empty" and leaves them in place
        blob = bucket.blob(f"cat/zero-{k}.jpg")
        blob.upload_from_string(b"", content_type="image/jpeg")
        zeros[blob.name] = int(blob.generation)
    before_total = stack.counted_total()

    # 10 photos and the 3 empty objects finished by the event path first (the same core, trigger "event"):
    # the photos leave the source, the empty ones stay listed and the backfill skips them (finished records)
    event_counter = WriteCounter()
    with monkeypatch.context() as mp:
        event_counter.install(mp)
        components = wiring.build(stack.settings(INCOMING_BUCKET=CATALOGUE))
        for name in sorted(uploaded)[:10]:
            outcome = components.processor.process(rec.ObjectRef(CATALOGUE, name, uploaded[name]), trigger="event")
            assert outcome.status in FINISHED
        event_photo_writes = dict(event_counter.writes)
        for name, generation in zeros.items():
            assert components.processor.process(rec.ObjectRef(CATALOGUE, name, generation, 0), trigger="event").status == "empty"
    # the event path: claim, decision, copy, final (+ one counter shard) per photo
    assert event_photo_writes == {"classifications": 10 * 4, "stats": 10}

    counter = WriteCounter()
    with monkeypatch.context() as mp:
        counter.install(mp)
        summary = backfill(stack, "cat/")
    counts = summary["counts"]
    assert summary["status"] == "succeeded"
    assert counts["listed"] == 193 and counts["skipped_finished"] == 3 and counts["to_process"] == 190
    assert sum(n for k, n in counts.items() if k.startswith("status_")) == 190
    assert counts.get("retried", 0) == 0
    # the backfill path: claim, decision with the copy, final (+ the run document's two writes)
    assert counter.writes["classifications"] == 190 * 3
    assert counter.writes["stats"] == 190
    assert counter.writes["backfill_runs"] == 2

    records = {
        r["source"]["name"]: r
        for r in stack.records().values()
        if r["source"]["bucket"] == CATALOGUE and r["source"]["name"] in uploaded
    }
    assert set(records) == set(uploaded)
    assert all(r["status"] in FINISHED for r in records.values())
    assert Counter(r["trigger"] for r in records.values()) == {"backfill": 190, "event": 10}
    assert {r["model_version"] for r in records.values()} == {stack.model_version}
    # one destination per object version, each a distinct object in the processed bucket
    destinations = [r["destination"]["name"] for r in records.values()]
    assert len(set(destinations)) == 200
    processed = stack.processed()
    assert set(destinations) <= set(processed)
    assert len([n for n in processed if n.rsplit("/", 1)[-1] in {u.split("/")[-1] for u in uploaded}]) == 200
    assert sorted(stack.listed(CATALOGUE, "cat/")) == sorted(zeros)  # the photos moved, the empty ones left
    assert stack.counted_total() - before_total == 203  # each finish counted once
    run_doc = stack.firestore().collection("backfill_runs").document(summary["run_id"]).get().to_dict()
    assert run_doc["status"] == "succeeded" and run_doc["counts"]["to_process"] == 190
    assert run_doc["images_per_second"] > 0 and run_doc["model_version"] == stack.model_version

    # a rerun finds nothing to do and writes nothing but its run document
    again = WriteCounter()
    with monkeypatch.context() as mp:
        again.install(mp)
        rerun = backfill(stack, "cat/")
    assert rerun["counts"].get("to_process", 0) == 0
    assert dict(again.writes) == {"backfill_runs": 2}
    assert stack.processed() == processed


def test_keep_source_dry_run_and_limit(stack: BackfillStack) -> None:
    uploaded = stack.upload("keep/", catalogue_images(230)[200:230])
    dry = backfill(stack, "keep/", dry_run=True)
    assert dry["status"] == "dry_run" and dry["counts"]["to_process"] == 30
    assert dry["estimate"]["objects"] == 30 and dry["estimate"]["cost_usd"]["total"] >= 0
    assert sorted(stack.listed(CATALOGUE, "keep/")) == sorted(uploaded)
    assert not [r for r in stack.records().values() if r["source"]["name"].startswith("keep/")]

    limited = backfill(stack, "keep/", limit=5, keep_source=True)
    assert limited["counts"]["to_process"] == 5
    done = [r for r in stack.records().values() if r["source"]["name"].startswith("keep/")]
    assert sorted(r["source"]["name"] for r in done) == sorted(uploaded)[:5]  # the first 5 by name
    assert sorted(stack.listed(CATALOGUE, "keep/")) == sorted(uploaded)  # --keep-source: nothing deleted


def test_cli_prints_the_summary_and_rejects_a_bad_source(stack: BackfillStack) -> None:
    bad = stack.run_cli("backfill", "s3://nope")
    assert bad.returncode == 2 and "gs://BUCKET" in bad.stderr
    dry = stack.run_cli("backfill", f"gs://{CATALOGUE}/nothing-here/", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    summary = json.loads(dry.stdout.strip().splitlines()[-1])
    assert summary["status"] == "dry_run" and summary["counts"].get("to_process", 0) == 0
    # progress and the rest are structured JSON logs with a severity
    lines = [json.loads(line) for line in dry.stderr.splitlines() if line.startswith("{")]
    assert lines and all("severity" in line for line in lines)
    assert PROCESSED  # the processed bucket the stack files into


def test_fashionctl_backfill_runs_the_pipeline_in_the_beam_venv(stack: BackfillStack, tmp_path: Any) -> None:
    """``fashionctl backfill`` from the main venv (no Beam there): the pipeline runs in ``.venv-beam``."""
    import os
    import subprocess
    import sys

    from tests.backfill.conftest import REPO

    main_python = REPO / ".venv" / "bin" / "python"
    python = str(main_python) if main_python.is_file() else sys.executable
    uploaded = stack.upload("fc/", catalogue_images(300)[290:293])
    command = [python, "-m", "fashionctl", "backfill", f"gs://{CATALOGUE}/fc/", "--state-dir", str(tmp_path)]
    env = {**os.environ, **stack.env}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded" and summary["counts"]["to_process"] == 3
    assert any(json.loads(line).get("images_per_second") is not None for line in done.stderr.splitlines() if line.startswith("{"))
    assert stack.listed(CATALOGUE, "fc/") == [] and len(uploaded) == 3
    refused = subprocess.run([*command[:4], "s3://x", *command[5:]], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "gs://BUCKET" in refused.stderr
