"""Firestore documents: one per uploaded object version, plus counters.

``classifications/<id>``: ``<id>`` is derived from bucket, object name and
generation, so a redelivered event finds its own document.
``stats/<day>/shards/<n>``: sharded per-day counters that do not contend.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

COLLECTION = "classifications"
STATS = "stats"
#: Counter shards per day. Each finished object bumps one shard, chosen at
#: random, inside its final transaction. With 10 shards, 4 concurrent
#: deliveries collided often enough on the Firestore emulator's document locks
#: to put 2-second waits in the 95th percentile (13 events/s); with 50 they
#: rarely do (32 events/s, bench/pipeline.py). Cloud Firestore sustains about
#: one write per second per document, so 50 shards also carry about 50
#: finishes per second there.
SHARDS = 50
#: Cloud Storage's limit on an object name, in bytes of UTF-8
GCS_NAME_LIMIT = 1024

PROCESSING = "processing"
CLASSIFIED = "classified"
NEEDS_REVIEW = "needs_review"
REJECTED = "rejected"
FAILED = "failed"  # a transient failure; the platform retries
SKIPPED = "skipped"  # the object version was gone (deleted or overwritten) before we got to it
FINISHED = frozenset({CLASSIFIED, NEEDS_REVIEW, REJECTED, SKIPPED})


@dataclass(frozen=True)
class ObjectRef:
    """One version of one uploaded object."""

    bucket: str
    name: str
    generation: int
    size: int | None = None
    content_type: str | None = None

    @property
    def doc_id(self) -> str:
        return classification_id(self.bucket, self.name, self.generation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "name": self.name,
            "generation": str(self.generation),
            "size": self.size,
            "content_type": self.content_type,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectRef:
        """The inverse of :meth:`to_dict` (a record's ``source``)."""
        size = data.get("size")
        return cls(data["bucket"], data["name"], int(data["generation"]), int(size) if size else None, data.get("content_type"))


def leased(data: dict[str, Any], now: datetime) -> bool:
    """A record another delivery holds an unexpired lease on."""
    lease_until = data.get("lease_until")
    return data.get("status") == PROCESSING and bool(lease_until) and lease_until > now


def classification_id(bucket: str, name: str, generation: int) -> str:
    """Stable document id for one object version (names may hold '/', which
    Firestore ids cannot)."""
    return hashlib.sha256(f"gs://{bucket}/{name}#{generation}".encode()).hexdigest()[:40]


def utcnow() -> datetime:
    return datetime.now(UTC)


def day_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def shard_path(moment: datetime, shard: int | None = None) -> tuple[str, str, str, str]:
    shard = random.randrange(SHARDS) if shard is None else shard
    return (STATS, day_of(moment), "shards", str(shard))


def counter_fields(status: str, label: str | None, reason: str | None) -> dict[str, int]:
    """Which counters one finished object increments."""
    fields = {"total": 1, f"status.{status}": 1}
    if label and status in (CLASSIFIED, NEEDS_REVIEW):
        fields[f"category.{label}"] = 1
    if reason and status == REJECTED:
        fields[f"rejection.{reason}"] = 1
    return fields
