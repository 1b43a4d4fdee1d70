"""What travels with a file from the incoming bucket to its processed copy,
and what the copy says about itself. Pure logic over blob attributes: no calls.

The copy keeps what the uploader attached (custom metadata, Content-Type,
Cache-Control, Content-Disposition, Content-Language) and gains the result as
custom metadata, so that a CDN or DAM can read it without Firestore:

| key | value |
|---|---|
| ``source-bucket``, ``source-name``, ``source-generation`` | the uploaded object version (generation: decimal string) |
| ``classification-id`` | the record id (``classifications/<id>``) |
| ``status`` | ``classified``, ``needs_review`` or ``rejected`` |
| ``category``, ``confidence``, ``model-version`` | the result (``confidence``: 0..1, 6 decimals); absent for a rejection |
| ``band`` | ``auto``, ``check`` or ``review`` (shared/thresholds.py); absent for a rejection |
| ``rejection-reason`` | why, for a rejection |

Where the uploader's metadata uses one of these keys, the result wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared import records as rec

SOURCE_BUCKET = "source-bucket"
SOURCE_NAME = "source-name"
SOURCE_GENERATION = "source-generation"
RECORD_ID = "classification-id"
STATUS = "status"
CATEGORY = "category"
CONFIDENCE = "confidence"
MODEL_VERSION = "model-version"
REJECTION_REASON = "rejection-reason"
BAND = "band"


@dataclass(frozen=True)
class Attached:
    """What the uploader attached to one object version (read from its
    metadata with the bytes): HTTP properties and custom metadata (strings)."""

    content_type: str | None = None
    cache_control: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_blob(cls, blob: Any) -> Attached:
        """From a google-cloud-storage ``Blob`` whose properties are loaded."""
        metadata = getattr(blob, "metadata", None)
        return cls(
            content_type=blob.content_type or None,
            cache_control=blob.cache_control or None,
            content_disposition=blob.content_disposition or None,
            content_language=blob.content_language or None,
            metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {},
        )

    def sku(self, key: str) -> str | None:
        """The value under custom metadata ``key`` (``SKU_METADATA_KEY``), stripped; None when absent or blank."""
        value = self.metadata.get(key, "").strip() if key else ""
        return value or None

    def apply_to(self, blob: Any, ref: rec.ObjectRef, decision: rec.Decision) -> None:
        """Set the copy's properties on ``blob`` (before its upload): the
        uploader's, then the result's metadata (:func:`result_metadata`)."""
        blob.content_type = self.content_type or ref.content_type or "application/octet-stream"
        blob.cache_control = self.cache_control
        blob.content_disposition = self.content_disposition
        blob.content_language = self.content_language
        blob.metadata = {**self.metadata, **result_metadata(ref, decision)}


def result_metadata(ref: rec.ObjectRef, decision: rec.Decision) -> dict[str, str]:
    """The keys of the module's table for one decision on ``ref``."""
    data = {
        SOURCE_BUCKET: ref.bucket,
        SOURCE_NAME: ref.name,
        SOURCE_GENERATION: str(ref.generation),
        RECORD_ID: ref.doc_id,
        STATUS: decision.status,
    }
    if decision.label is not None:
        data[CATEGORY] = decision.label
    if decision.confidence is not None:
        data[CONFIDENCE] = f"{decision.confidence:.6f}"
    if decision.model_version is not None:
        data[MODEL_VERSION] = decision.model_version
    if decision.band is not None:
        data[BAND] = decision.band
    reason = rec.reason_of(decision.error)
    if reason is not None:
        data[REJECTION_REASON] = reason
    return data


def source_generation(blob: Any, ref: rec.ObjectRef) -> int | None:
    """The source generation an existing copy in the processed bucket says it
    holds, when it is a copy of the same incoming object (same bucket and
    name) as ``ref``; None for anything else (another upload's file, a file
    without our metadata), which is never replaced."""
    metadata = getattr(blob, "metadata", None) or {}
    if metadata.get(SOURCE_BUCKET) != ref.bucket or metadata.get(SOURCE_NAME) != ref.name:
        return None
    try:
        return int(metadata.get(SOURCE_GENERATION, ""))
    except ValueError:
        return None


#: keys a person's decision adds to a copy it moves (functions/review_desk.py)
REVIEW_DECISION = "review-decision"
REVIEWED_BY = "reviewed-by"


def reviewed_metadata(metadata: Mapping[str, str] | None, decision: str, final_label: str | None, reviewer: str) -> dict:
    """A moved copy's custom metadata: the copy's own (the uploader's and the
    model's result), with ``status`` ``reviewed``, ``category`` the final
    label (removed for a rejection), the decision and the reviewer."""
    data = {str(k): str(v) for k, v in (metadata or {}).items()}
    data[STATUS] = rec.REVIEWED
    data[REVIEW_DECISION] = decision
    data[REVIEWED_BY] = reviewer
    if final_label is None:
        data.pop(CATEGORY, None)
    else:
        data[CATEGORY] = final_label
    return data
