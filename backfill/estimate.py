"""``--dry-run``: how long a backfill of ``n`` objects would take and what it
would cost. Pure arithmetic over figures given as parameters; the defaults
and their sources are below (list prices, us-central1, read from the pricing
pages named; check them before relying on an estimate), and the capacity
model behind ``objects_per_second`` is ``docs/backfill.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: USD per 100,000 Firestore document writes / reads / deletes, Native mode,
#: us-central1 (https://cloud.google.com/firestore/pricing)
FIRESTORE_WRITE_PER_100K = 0.09
FIRESTORE_READ_PER_100K = 0.03
#: USD per 1,000 Cloud Storage operations, Standard storage: class A (insert,
#: list), class B (get); deletes are free (https://cloud.google.com/storage/pricing#operations-pricing)
GCS_CLASS_A_PER_1K = 0.005
GCS_CLASS_B_PER_1K = 0.0004
#: USD per vCPU hour and per GB hour of a Dataflow batch worker
#: (https://cloud.google.com/dataflow/pricing); n1-standard-1: 1 vCPU, 3.75 GB
DATAFLOW_VCPU_HOUR = 0.056
DATAFLOW_GB_HOUR = 0.003557
WORKER_VCPUS, WORKER_GB = 1, 3.75
#: Firestore's documented ceiling on writes to a collection whose documents
#: hold a sequential value in an indexed field (https://firebase.google.com/docs/firestore/quotas,
#: "Maximum write rate to a collection in which documents contain sequential values in an indexed field")
SEQUENTIAL_INDEX_WRITES_PER_SECOND = 500
#: sustained writes a second to one document (same page, "soft limit"): one counter shard
DOCUMENT_WRITES_PER_SECOND = 1


@dataclass(frozen=True)
class Estimate:
    """What a run of ``objects`` would take: seconds, USD, and the figures used."""

    objects: int
    bytes: int
    workers: int
    objects_per_second: float
    bound_by: str  # "workers", "collection" (the sequential-index ceiling) or "counter shards"
    seconds: float
    firestore_writes: int
    firestore_reads: int
    gcs_class_a: int
    gcs_class_b: int
    cost_usd: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(
    objects: int,
    total_bytes: int = 0,
    *,
    workers: int = 1,
    per_worker_objects_per_second: float = 3.6,
    record_writes_per_object: int = 3,
    shard_writes_per_object: int = 1,
    stats_shards: int = 50,
    reads_per_object: int = 4,
    keep_source: bool = False,
) -> Estimate:
    """The time and cost of processing ``objects`` (``total_bytes`` of them).

    Throughput is the smallest of: ``workers`` x ``per_worker_objects_per_second``
    (measured by ``make bench``'s backfill section for one local worker); the
    collection ceiling (:data:`SEQUENTIAL_INDEX_WRITES_PER_SECOND` /
    ``record_writes_per_object``, since every record write sets the indexed
    ``updated_at``); and the counter shards (``stats_shards`` x
    :data:`DOCUMENT_WRITES_PER_SECOND` / ``shard_writes_per_object``).
    Writes and reads per object are what ``tests/backfill`` counts on the
    backfill path (3 record writes + 1 shard write; reads: the skip check, the
    claim's read, the final read and the transaction's two). Storage: per
    object one get of the metadata and one of the bytes (class B), one insert
    (class A), a live check (class B) and a delete (free) unless
    ``keep_source``; the listing is one class A call per 1,000 names.
    Raises ValueError for a negative count or no worker."""
    if objects < 0 or workers < 1:
        raise ValueError("objects must be >= 0 and workers >= 1")
    bounds = {
        "workers": workers * per_worker_objects_per_second,
        "collection": SEQUENTIAL_INDEX_WRITES_PER_SECOND / max(1, record_writes_per_object),
        "counter shards": stats_shards * DOCUMENT_WRITES_PER_SECOND / max(1, shard_writes_per_object),
    }
    bound_by = min(bounds, key=lambda k: bounds[k])
    rate = bounds[bound_by]
    seconds = objects / rate if rate > 0 else math.inf
    writes = objects * (record_writes_per_object + shard_writes_per_object)
    reads = objects * reads_per_object
    class_a = objects + math.ceil(objects / 1000)
    class_b = objects * (2 if keep_source else 3)
    hours = seconds / 3600 * workers
    cost = {
        "firestore": round(writes / 1e5 * FIRESTORE_WRITE_PER_100K + reads / 1e5 * FIRESTORE_READ_PER_100K, 2),
        "storage_operations": round(class_a / 1e3 * GCS_CLASS_A_PER_1K + class_b / 1e3 * GCS_CLASS_B_PER_1K, 2),
        "dataflow_workers": round(hours * (WORKER_VCPUS * DATAFLOW_VCPU_HOUR + WORKER_GB * DATAFLOW_GB_HOUR), 2),
    }
    cost["total"] = round(sum(cost.values()), 2)
    return Estimate(
        objects, total_bytes, workers, round(rate, 2), bound_by, round(seconds, 1), writes, reads, class_a, class_b, cost
    )


def workers_needed(target_objects_per_second: float, per_worker_objects_per_second: float) -> int:
    """Workers to reach a throughput, at one worker's measured rate."""
    return max(1, math.ceil(target_objects_per_second / per_worker_objects_per_second))
