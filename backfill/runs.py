"""The run document ``backfill_runs/<id>`` (``shared.records.BACKFILL_RUNS``):
what was asked, the counts, the throughput and the status of one run.

Fields: ``run_id``, ``kind`` ("backfill" | "reclassify"), ``status``
("running" | "succeeded" | "failed" | "dry_run" | "submitted"), ``source``
(gs:// URI), ``model_version``, ``options`` (map), ``counts`` (map of
counter -> int: listed, skipped_finished, to_process, and one per outcome
status, retried, failed_after_retry), ``seconds``, ``images_per_second``,
``estimate`` (dry run), ``error`` (string), ``started_at``, ``finished_at``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared import records as rec


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<6 hex>``: sortable and unique."""
    return f"{(now or rec.utcnow()).strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def start(db: Any, run_id: str, kind: str, source: str, model_version: str | None, options: dict) -> None:
    """Create the run document with status ``running``."""
    db.collection(rec.BACKFILL_RUNS).document(run_id).set(
        {
            "run_id": run_id,
            "kind": kind,
            "status": "running",
            "source": source,
            "model_version": model_version,
            "options": options,
            "started_at": rec.utcnow(),
        }
    )


def finish(db: Any, run_id: str, status: str, **fields: Any) -> None:
    """Record the end of a run (``fields``: counts, seconds, images_per_second, estimate, error)."""
    db.collection(rec.BACKFILL_RUNS).document(run_id).set({"status": status, "finished_at": rec.utcnow(), **fields}, merge=True)


def read(db: Any, run_id: str) -> dict | None:
    """The run document, or None."""
    snapshot = db.collection(rec.BACKFILL_RUNS).document(run_id).get()
    return snapshot.to_dict() if snapshot.exists else None
