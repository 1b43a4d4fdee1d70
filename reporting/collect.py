"""Gather a report's inputs from Firestore and Cloud Storage, and publish it.

Used by ``fashionctl report`` and by the sweep function's ``report_days``
option alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from reporting.build import Report, build
from shared import records as rec
from shared.model_layout import current_version, version_prefix

QUERY_TIMEOUT = 30.0


def records_between(db: Any, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every classification record created in [``since``, ``until``), oldest first."""
    from google.cloud import firestore

    created = rec.Field.CREATED_AT
    query = db.collection(rec.COLLECTION).where(filter=firestore.FieldFilter(created, ">=", since))
    query = query.where(filter=firestore.FieldFilter(created, "<", until))
    snapshots = query.order_by(created).stream(timeout=QUERY_TIMEOUT)
    return [rec.with_id(s) for s in snapshots]


def current_model(storage: Any, models_bucket: str) -> str | None:
    """The version the pointer names, or None when there is no model (shared.model_layout.current_version)."""
    return current_version(storage, models_bucket)


def object_url(bucket: str, name: str, emulator_host: str | None = None) -> str:
    """A browser link to an object: fake-gcs-server's media URL locally, the console's otherwise."""
    if emulator_host:
        return f"{emulator_host.rstrip('/')}/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
    return f"https://storage.cloud.google.com/{bucket}/{quote(name)}"


def make_report(
    db: Any,
    storage: Any,
    *,
    models_bucket: str,
    days: int,
    project: str = "",
    emulator_host: str | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of the last ``days`` days, linking the current model's training report."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    version = current_model(storage, models_bucket)
    meta = {
        "days": days,
        "since": since.isoformat(timespec="seconds"),
        "generated_at": now.isoformat(timespec="seconds"),
        "project": project,
        "model_version": version,
        "model_report_url": object_url(models_bucket, version_prefix(version) + "report.html", emulator_host)
        if version
        else None,
    }
    return build(records_between(db, since, now), meta, now)


def upload(report: Report, storage: Any, bucket: str, stamp: str) -> list[str]:
    """Into ``reports/<stamp>/`` of ``bucket``; returns the gs:// URIs."""
    uris = []
    for name, (content, content_type) in report.files().items():
        blob = storage.bucket(bucket).blob(f"reports/{stamp}/{name}")
        blob.upload_from_string(content.encode("utf-8"), content_type=content_type)
        uris.append(f"gs://{bucket}/{blob.name}")
    return uris
