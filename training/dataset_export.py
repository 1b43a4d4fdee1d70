"""Dataset export: the retailer's classification records and the photos in
the processed bucket -> a training set in the layout the training job reads
(``styles.csv`` + ``images/<id>.jpg``, :mod:`training.data`), in a folder or
under a ``gs://`` prefix.

- The label of each row is :attr:`shared.records.Classification.final_label`:
  the human's label when the record was reviewed (approved or relabeled), the
  model's label when it was filed automatically (``classified``); records with
  no final label (rejected files, the review queue, human rejections) are left out.
- Filters (:class:`Filters`): reviewed only; automatically filed records only
  from a confidence up; a creation date range; some categories.
- The bytes come from the record's ``destination`` in the processed bucket
  (where the file is now). A file there that is the copy of another upload
  version (a newer upload replaced it) is left out (``superseded``).
- Duplicates by content (sha256 of the bytes) are written once. Which copy
  wins (:func:`dedupe`): a human-reviewed record over an automatic one; among
  equals, the most recently decided (``review.reviewed_at``, else
  ``created_at``); then the smaller record id. The others are counted as
  ``duplicate``.
- ``styles.csv`` columns: ``id`` (the record id, also the image's file name),
  ``articleType`` (the label), then provenance: ``record_id``, ``bucket``,
  ``object`` (the file in the processed bucket), ``source_object``,
  ``generation`` (the upload's generation), ``review_decision`` (approved, relabeled or
  ``auto``), ``reviewer``, ``model_version``, ``model_label``, ``confidence``,
  ``sha256``, ``created_at``; then the attributes beside the category
  (issue 19), in the columns :mod:`training.data` reads them from
  (:data:`shared.attributes.ATTRIBUTES`: ``gender``, ``baseColour`` (a colour
  family), ``usage``, ``season``), each with its provenance in
  ``<attribute>_source``: ``reviewer`` (a person set it), ``model`` (the
  model's confident value, not corrected) or empty (no value: left empty, or
  a category-only model). ``Filters.human_attributes_only`` keeps only the
  reviewers' values.

The core (:func:`select`, :func:`dedupe`, :func:`styles_csv`) is pure; :func:`export`
reads Firestore and Cloud Storage through the clients it is given. Also a job:
``python -m training.dataset_export --out DIR|gs://bucket/prefix ...`` (the
training container has every package it needs), the same options as
``fashionctl dataset export``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from shared import records as rec
from shared.attributes import ATTRIBUTES
from training.storage import Store

log = logging.getLogger(__name__)

#: ``styles.csv`` columns: the two the training job reads, then provenance
COLUMNS = (
    "id",
    "articleType",
    "record_id",
    "bucket",
    "object",
    "source_object",
    "generation",
    "review_decision",
    "reviewer",
    "model_version",
    "model_label",
    "confidence",
    "sha256",
    "created_at",
    *(column for name, column in ATTRIBUTES.items() for column in (column, f"{name}_source")),
)
AUTO = "auto"  #: ``decision`` of a row filed by the model without review
SUMMARY_FILE = "export.json"


@dataclass(frozen=True)
class Filters:
    """Which records an export takes.

    ``reviewed_only``: only human-approved or relabeled records.
    ``min_confidence``: automatically filed records (``classified``) only at
    this probability (0..1) or above; reviewed records are taken whatever the
    model's confidence (the human label is the truth). ``since``/``until``:
    the record's ``created_at`` in [since, until) (UTC). ``categories``: only
    these final labels (empty: all).
    """

    reviewed_only: bool = False
    min_confidence: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    categories: frozenset[str] = field(default_factory=frozenset)
    #: write only the attribute values a person set (``<attribute>_source`` ``reviewer``)
    human_attributes_only: bool = False

    def __post_init__(self) -> None:
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence {self.min_confidence} is not between 0 and 1")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) is not before until ({self.until.isoformat()})")


@dataclass(frozen=True)
class Item:
    """One record chosen for the export (before its bytes are read)."""

    record: rec.Classification
    label: str

    @property
    def reviewed(self) -> bool:
        return self.record.status == rec.REVIEWED

    @property
    def decided_at(self) -> datetime:
        """When the label was decided: the review's time, else the record's creation (UTC)."""
        when = (self.record.review or {}).get(rec.REVIEW_AT) if self.reviewed else None
        when = when or self.record.created_at
        return _aware(when) if isinstance(when, datetime) else datetime.min.replace(tzinfo=UTC)


@dataclass
class Result:
    """What an export wrote and what it left out, by reason."""

    written: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    out: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "written": self.written, "labels": dict(self.labels), "skipped": dict(self.skipped)}


def select(records: Iterable[rec.Classification], filters: Filters) -> tuple[list[Item], Counter[str]]:
    """The records an export takes, with their final labels, and the count
    of the others by reason (``no_final_label``, ``not_reviewed``,
    ``low_confidence``, ``before_since``, ``after_until``, ``category``,
    ``no_destination``)."""
    chosen: list[Item] = []
    skipped: Counter[str] = Counter()
    for record in records:
        reason = _why_not(record, filters)
        if reason:
            skipped[reason] += 1
            continue
        chosen.append(Item(record, record.final_label or ""))
    return chosen, skipped


def _why_not(record: rec.Classification, filters: Filters) -> str | None:
    label = record.final_label
    if label is None:
        return "no_final_label"
    reviewed = record.status == rec.REVIEWED
    if filters.reviewed_only and not reviewed:
        return "not_reviewed"
    if not reviewed and filters.min_confidence is not None and (record.confidence or 0.0) < filters.min_confidence:
        return "low_confidence"
    created = _aware(record.created_at) if isinstance(record.created_at, datetime) else None
    if filters.since and (created is None or created < filters.since):
        return "before_since"
    if filters.until and (created is None or created >= filters.until):
        return "after_until"
    if filters.categories and label not in filters.categories:
        return "category"
    if record.destination is None or record.source is None:
        return "no_destination"
    return None


def _priority(item: Item) -> tuple[int, datetime, str]:
    """Larger wins: reviewed, then the latest decision, then the smaller id."""
    inverted_id = "".join(chr(0x10FFFF - ord(c)) for c in (item.record.id or ""))
    return (int(item.reviewed), item.decided_at, inverted_id)


def dedupe(items: Sequence[tuple[Item, str]]) -> tuple[list[tuple[Item, str]], int]:
    """``[(item, sha256 of its bytes)]`` -> one per content hash (the rule in
    the module's docstring), in the input's order, and how many were dropped."""
    best: dict[str, tuple[Item, str]] = {}
    for item, digest in items:
        if digest not in best or _priority(item) > _priority(best[digest][0]):
            best[digest] = (item, digest)
    winners = {id(pair[0]) for pair in best.values()}
    kept = [(item, digest) for item, digest in items if id(item) in winners]
    return kept, len(items) - len(kept)


def attribute_cells(record: rec.Classification, *, human_only: bool = False) -> dict[str, str]:
    """The attribute columns of one row: for each attribute of
    :data:`shared.attributes.ATTRIBUTES`, its column holding the effective
    value (the reviewer's correction over the model's confident value; empty
    when none) and ``<attribute>_source`` (``reviewer``, ``model`` or empty).
    ``human_only``: values the model gave are left out."""
    values = record.final_attributes
    sources = rec.attribute_sources(record.attributes, record.review)
    cells = {}
    for name, column in ATTRIBUTES.items():
        source = sources.get(name)
        value = values.get(name)
        if value is None or (human_only and source != rec.FROM_REVIEWER):
            value, source = None, (source if source == rec.FROM_REVIEWER else None)
        cells[column] = value or ""
        cells[f"{name}_source"] = source or ""
    return cells


def row(item: Item, digest: str, *, human_attributes_only: bool = False) -> dict[str, str]:
    """One ``styles.csv`` row (:data:`COLUMNS`)."""
    record = item.record
    assert record.source is not None and record.destination is not None  # select() checked
    created = record.created_at.isoformat() if isinstance(record.created_at, datetime) else ""
    return {
        "id": record.id or record.source.doc_id,
        "articleType": item.label,
        "record_id": record.id or record.source.doc_id,
        "bucket": record.destination.bucket,
        "object": record.destination.name,
        "source_object": record.source.name,
        "generation": str(record.source.generation),
        "review_decision": (record.review_decision or "") if item.reviewed else AUTO,
        "reviewer": (record.reviewer or "") if item.reviewed else "",
        "model_version": record.model_version or "",
        "model_label": record.label or "",
        "confidence": "" if record.confidence is None else f"{record.confidence:.4f}",
        "sha256": digest,
        "created_at": created,
    } | attribute_cells(record, human_only=human_attributes_only)


def styles_csv(rows: Iterable[dict[str, str]]) -> bytes:
    """``styles.csv`` bytes with :data:`COLUMNS` (UTF-8, a header line)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def read_records(db: Any, filters: Filters, *, timeout: float = 60.0) -> list[rec.Classification]:
    """The finished records that can carry a final label (``classified`` and
    ``reviewed``) from Firestore ``db``; the other filters apply in :func:`select`."""
    from google.api_core.retry import Retry
    from google.cloud import firestore

    statuses = [rec.REVIEWED] if filters.reviewed_only else [rec.CLASSIFIED, rec.REVIEWED]
    query = db.collection(rec.COLLECTION).where(filter=firestore.FieldFilter(rec.Field.STATUS, "in", statuses))
    snapshots = query.stream(retry=Retry(timeout=timeout), timeout=timeout)
    return [rec.Classification.from_firestore(snapshot.to_dict(), snapshot.id) for snapshot in snapshots]


def fetcher(storage_client: Any) -> Callable[[rec.Classification], bytes | None]:
    """Reads a record's file from its destination in the processed bucket:
    its bytes, or None when the file is gone or is now the copy of another
    upload version (the processed copy's ``source-generation`` metadata)."""
    from google.api_core.exceptions import NotFound

    from shared.copy_metadata import source_generation

    def fetch(record: rec.Classification) -> bytes | None:
        assert record.destination is not None and record.source is not None
        blob = storage_client.bucket(record.destination.bucket).get_blob(record.destination.name)
        if blob is None:
            return None
        held = source_generation(blob, record.source)
        if held is not None and held != record.source.generation:
            return None
        try:
            return storage_client.bucket(blob.bucket.name).blob(blob.name, generation=blob.generation).download_as_bytes()
        except NotFound:
            return None

    return fetch


def export(
    records: Iterable[rec.Classification],
    fetch: Callable[[rec.Classification], bytes | None],
    out: Store,
    filters: Filters,
) -> Result:
    """Write the export of ``records`` (filtered by ``filters``, files read
    with ``fetch``) to ``out``: ``images/<id>.jpg`` (the bytes as stored,
    whatever their format: the training job decodes by content),
    ``styles.csv`` (after the images, so a half-written export has no
    ``styles.csv``) and ``export.json`` (the filters and the counts)."""
    items, skipped = select(records, filters)
    fetched: list[tuple[Item, str, bytes]] = []
    for item in items:
        data = fetch(item.record)
        if not data:
            skipped["missing_file"] += 1
            continue
        fetched.append((item, hashlib.sha256(data).hexdigest(), data))
    kept, duplicates = dedupe([(item, digest) for item, digest, _ in fetched])
    if duplicates:
        skipped["duplicate"] += duplicates
    data_of = {id(item): data for item, _, data in fetched}
    rows = []
    result = Result(skipped=skipped, out=out.uri)
    for item, digest in sorted(kept, key=lambda pair: pair[0].record.id or ""):
        line = row(item, digest, human_attributes_only=filters.human_attributes_only)
        out.write_bytes(f"images/{line['id']}.jpg", data_of[id(item)], "image/jpeg")
        rows.append(line)
        result.labels[item.label] += 1
    out.write_bytes("styles.csv", styles_csv(rows), "text/csv")
    result.written = len(rows)
    summary = {**result.to_dict(), "filters": _filters_dict(filters), "exported_at": datetime.now(UTC).isoformat()}
    out.write_bytes(SUMMARY_FILE, json.dumps(summary, indent=2).encode(), "application/json")
    log.info(
        "exported %d images to %s",
        result.written,
        out.uri,
        extra={"stage": "dataset_export", **result.to_dict()},
    )
    return result


def _filters_dict(filters: Filters) -> dict[str, Any]:
    return {
        "reviewed_only": filters.reviewed_only,
        "min_confidence": filters.min_confidence,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
        "categories": sorted(filters.categories),
        "human_attributes_only": filters.human_attributes_only,
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_day(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC when it names
    no zone) -> an aware datetime. Raises ValueError."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None


def filters_from(
    *,
    reviewed_only: bool,
    min_confidence: float | None,
    since: str | None,
    until: str | None,
    categories: Sequence[str],
    human_attributes_only: bool = False,
) -> Filters:
    """Filters from command-line values (dates as :func:`parse_day` reads them). Raises ValueError."""
    return Filters(
        reviewed_only=reviewed_only,
        min_confidence=min_confidence,
        since=parse_day(since) if since else None,
        until=parse_day(until) if until else None,
        categories=frozenset(c.strip() for c in categories if c.strip()),
        human_attributes_only=human_attributes_only,
    )


def main(argv: list[str] | None = None) -> int:
    """The export as a job: ``python -m training.dataset_export --out ...``.
    Reads Firestore and Cloud Storage with the default clients (the emulators'
    when FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST are set)."""
    p = argparse.ArgumentParser(prog="python -m training.dataset_export", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="a folder or gs://bucket/prefix")
    p.add_argument("--reviewed-only", action="store_true")
    p.add_argument("--min-confidence", type=float)
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--category", action="append", default=[])
    p.add_argument("--human-attributes-only", action="store_true", help="attribute values only where a person set them")
    p.add_argument("--project", default=None, help="Google Cloud project (default: the environment's)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    from google.cloud import firestore, storage

    from shared.logs import configure_logging
    from training.storage import GcsStore, open_store

    configure_logging(args.log_level)
    try:
        filters = filters_from(
            reviewed_only=args.reviewed_only,
            min_confidence=args.min_confidence,
            since=args.since,
            until=args.until,
            categories=args.category,
            human_attributes_only=args.human_attributes_only,
        )
    except ValueError as exc:
        p.error(str(exc))
    gcs = storage.Client(project=args.project)
    out = GcsStore(args.out, gcs) if args.out.startswith("gs://") else open_store(args.out)
    result = export(read_records(firestore.Client(project=args.project), filters), fetcher(gcs), out, filters)
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
