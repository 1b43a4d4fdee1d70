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
| ``attribute-<name>`` | one per attribute of a model with attribute heads (``gender``, ``colour``, ``usage``, ``season``): its value; absent while it is empty |
| ``attribute-<name>-flag`` | ``low-confidence`` when the model left the attribute empty (below its threshold); ``cleared-by-reviewer`` when a person left it empty; absent otherwise |

Where the uploader's metadata uses one of these keys, the result wins. A
person's decision (the review desk) rewrites the attribute keys with the
effective attributes (the reviewer's corrections over the model's values).
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
#: prefix of the per-attribute keys (``attribute-<name>``, ``attribute-<name>-flag``)
ATTRIBUTE_PREFIX = "attribute-"
FLAG_SUFFIX = "-flag"
LOW_CONFIDENCE = "low-confidence"  #: flag: the model's confidence was below the attribute's threshold
CLEARED_BY_REVIEWER = "cleared-by-reviewer"  #: flag: a person left the attribute empty


def attribute_key(name: str) -> str:
    """The custom metadata key of attribute ``name``'s value."""
    return f"{ATTRIBUTE_PREFIX}{name}"


def attribute_flag_key(name: str) -> str:
    """The custom metadata key of attribute ``name``'s flag."""
    return f"{ATTRIBUTE_PREFIX}{name}{FLAG_SUFFIX}"


def attribute_metadata(values: Mapping[str, str | None], flags: Mapping[str, str]) -> dict[str, str]:
    """``{name: value or None}`` and ``{name: flag}`` -> the attribute keys:
    ``attribute-<name>`` for each value given, ``attribute-<name>-flag`` for each flag."""
    data = {attribute_key(name): value for name, value in values.items() if value is not None}
    data |= {attribute_flag_key(name): flag for name, flag in flags.items()}
    return data


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
        # the model's attribute keys replace the uploader's, an empty attribute included
        ours = {key for name in decision.attributes for key in (attribute_key(name), attribute_flag_key(name))}
        kept = {key: value for key, value in self.metadata.items() if key not in ours}
        blob.metadata = {**kept, **result_metadata(ref, decision)}


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
    values = rec.effective_attributes(decision.attributes, None)
    data |= attribute_metadata(values, {name: LOW_CONFIDENCE for name, value in values.items() if value is None})
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


def reviewed_metadata(
    metadata: Mapping[str, str] | None,
    decision: str,
    final_label: str | None,
    reviewer: str,
    corrections: Mapping[str, str | None] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict:
    """A moved copy's custom metadata: the copy's own (the uploader's and the
    model's result), with ``status`` ``reviewed``, ``category`` the final
    label (removed for a rejection), the decision and the reviewer.
    The attribute keys are rewritten from ``attributes`` (the record's, the
    model's answer) and ``corrections`` (this decision's, {name: value or
    None}), so that a changed decision does not keep an earlier one's values:
    a corrected value gives ``attribute-<name>`` and no flag, a correction to
    None no value and the flag ``cleared-by-reviewer``, an attribute not
    corrected the model's value or the flag ``low-confidence``."""
    data = {str(k): str(v) for k, v in (metadata or {}).items()}
    corrections = dict(corrections or {})
    model = rec.effective_attributes(attributes, None)
    for name in {*model, *corrections}:
        data.pop(attribute_key(name), None)
        data.pop(attribute_flag_key(name), None)
        value = corrections[name] if name in corrections else model[name]
        flag = CLEARED_BY_REVIEWER if name in corrections else LOW_CONFIDENCE
        data |= attribute_metadata({name: value}, {} if value is not None else {name: flag})
    data[STATUS] = rec.REVIEWED
    data[REVIEW_DECISION] = decision
    data[REVIEWED_BY] = reviewer
    if final_label is None:
        data.pop(CATEGORY, None)
    else:
        data[CATEGORY] = final_label
    return data
