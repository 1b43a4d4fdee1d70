"""Storage CloudEvents as Eventarc sends them (binary content mode), for the
tests that deliver events to a function themselves."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from localcloud.bridge import header_safe

FINALIZED = "google.cloud.storage.object.v1.finalized"
METADATA_UPDATED = "google.cloud.storage.object.v1.metadataUpdated"


def post_storage_event(
    url: str,
    *,
    bucket: str,
    name: str,
    generation: int | str,
    content_type: str | None,
    size: int | str | None,
    event_id: str | None = None,
    ce_type: str = FINALIZED,
    metageneration: int = 1,
    timeout: float = 120,
) -> requests.Response:
    """POST one object event to a CloudEvent function at ``url``. The subject
    header is made header-safe (object names may hold any Unicode)."""
    headers = {
        "ce-id": event_id or uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-type": ce_type,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": header_safe(f"objects/{name}"),
        "ce-time": datetime.now(UTC).isoformat(),
        "content-type": "application/json; charset=utf-8",
    }
    body = {
        "bucket": bucket,
        "name": name,
        "generation": str(generation),
        "metageneration": str(metageneration),
        "contentType": content_type,
        "size": str(size),
    }
    return requests.post(url, headers=headers, data=json.dumps(body).encode(), timeout=timeout)


def post_blob_event(url: str, blob: Any, **options: Any) -> requests.Response:
    """:func:`post_storage_event` for a google-cloud-storage blob just uploaded."""
    return post_storage_event(
        url,
        bucket=blob.bucket.name,
        name=blob.name,
        generation=blob.generation,
        content_type=blob.content_type,
        size=blob.size,
        **options,
    )
