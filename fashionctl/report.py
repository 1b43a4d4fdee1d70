"""``fashionctl report``: the last N days of classification records as one
self-contained HTML report with charts, plus CSV and JSON exports, written to
a local folder and optionally to ``reports/<stamp>/`` in the processed bucket.
It links the current model's training report (``models/<version>/report.html``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from reporting.build import Report, build
from shared.model_layout import POINTER, parse_pointer, version_prefix

QUERY_TIMEOUT = 30.0


def records_between(db: Any, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every classification record created in [``since``, ``until``), oldest first."""
    from google.cloud import firestore

    query = db.collection("classifications").where(filter=firestore.FieldFilter("created_at", ">=", since))
    query = query.where(filter=firestore.FieldFilter("created_at", "<", until))
    snapshots = query.order_by("created_at").stream(timeout=QUERY_TIMEOUT)
    return [{"id": s.id, **(s.to_dict() or {})} for s in snapshots]


def current_model(storage: Any, models_bucket: str) -> str | None:
    """The version the pointer names, or None when there is no model."""
    blob = storage.bucket(models_bucket).get_blob(POINTER)
    return parse_pointer(blob.download_as_bytes()) if blob is not None else None


def object_url(env: Mapping[str, str], bucket: str, name: str) -> str:
    """A browser link to an object: fake-gcs-server's media URL locally, the console's otherwise."""
    if host := env.get("STORAGE_EMULATOR_HOST"):
        return f"{host.rstrip('/')}/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
    return f"https://storage.cloud.google.com/{bucket}/{quote(name)}"


def make_report(env: Mapping[str, str], db: Any, storage: Any, days: int, now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    version = current_model(storage, env["MODELS_BUCKET"])
    meta = {
        "days": days,
        "since": since.isoformat(timespec="seconds"),
        "generated_at": now.isoformat(timespec="seconds"),
        "project": env.get("GOOGLE_CLOUD_PROJECT", ""),
        "model_version": version,
        "model_report_url": object_url(env, env["MODELS_BUCKET"], version_prefix(version) + "report.html") if version else None,
    }
    return build(records_between(db, since, now), meta)


def write(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (content, _) in report.files().items():
        (out / name).write_text(content, encoding="utf-8")
        written.append(out / name)
    return written


def upload(report: Report, storage: Any, bucket: str, stamp: str) -> list[str]:
    """Into ``reports/<stamp>/`` of ``bucket``; returns the gs:// URIs."""
    uris = []
    for name, (content, content_type) in report.files().items():
        blob = storage.bucket(bucket).blob(f"reports/{stamp}/{name}")
        blob.upload_from_string(content.encode("utf-8"), content_type=content_type)
        uris.append(f"gs://{bucket}/{blob.name}")
    return uris


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
        for uri in upload(report, storage, env["PROCESSED_BUCKET"], stamp):
            print(uri, file=stdout)
    print(f"{report.summary.total} records over {days} days", file=stdout)
    return 0
