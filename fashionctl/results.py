"""``fashionctl results``: the latest ``classifications`` records from
Firestore (the emulator's when ``FIRESTORE_EMULATOR_HOST`` is set, from the
environment or the stack's env file; the real one with default credentials
otherwise), newest first, as a table or one JSON object per line.

:func:`latest` holds the query and takes any Firestore client, so that tests
and the demo use the same code as the command.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from shared import records as rec
from shared.attribute_coverage import coverage_of_dicts, coverage_text

COLLECTION = rec.COLLECTION
FIRESTORE_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "FIRESTORE_DATABASE")
#: bookkeeping of the processing core, left out of ``--json``
INTERNAL_FIELDS = rec.INTERNAL_FIELDS
QUERY_TIMEOUT = 15.0
RIGHT_ALIGNED = frozenset({"confidence"})  # the table's column

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` (that long before
    ``now``) or an ISO 8601 date or time (UTC when it names no zone).
    Raises ValueError."""
    compact = text.strip().lower()
    if compact and _DURATION.sub("", compact).strip() == "":
        delta = timedelta()
        for amount, unit in _DURATION.findall(compact):
            delta += timedelta(**{_UNITS[unit]: float(amount)})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a duration such as 15m, 2h, 1d, 1h30m or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def latest(db: Any, *, since: datetime | None = None, limit: int = 50, timeout: float = QUERY_TIMEOUT) -> list[dict[str, Any]]:
    """The newest ``limit`` classification records (created at or after
    ``since``), newest first, each with its document ``id``."""
    from google.api_core.retry import Retry
    from google.cloud import firestore

    query = db.collection(COLLECTION)
    if since is not None:
        query = query.where(filter=firestore.FieldFilter(rec.Field.CREATED_AT, ">=", since))
    query = query.order_by(rec.Field.CREATED_AT, direction=firestore.Query.DESCENDING).limit(limit)
    snapshots = query.stream(retry=Retry(timeout=timeout), timeout=timeout)
    return [rec.with_id(snapshot) for snapshot in snapshots]


@dataclass(frozen=True)
class Row:
    """One record as the table shows it."""

    time: str
    file: str
    category: str
    confidence: str
    status: str
    destination: str
    model: str
    attributes: str = ""  #: "gender=Men colour=? ..." ("?": left empty); empty for a category-only model

    HEADERS = ("time", "file", "category", "confidence", "status", "destination", "model", "attributes")


def to_row(record: Mapping[str, Any]) -> Row:
    parsed = rec.Classification.from_firestore(record)
    confidence = parsed.confidence
    status = str(parsed.status or "-")
    if reason := parsed.reason:
        status = f"{status}: {reason}"
    created = parsed.created_at
    return Row(
        time=created.astimezone(UTC).strftime("%m-%d %H:%M:%S") if isinstance(created, datetime) else "-",
        file=str((parsed.source.name if parsed.source else None) or parsed.id or "-"),
        category=str(parsed.label or "-"),
        confidence=f"{confidence:.1%}" if isinstance(confidence, int | float) else "-",
        status=status,
        destination=str((parsed.destination.name if parsed.destination else None) or "-"),
        model=str(parsed.model_version or "-"),
        attributes=" ".join(f"{name}={value or '?'}" for name, value in parsed.final_attributes.items()),
    )


def format_table(headers: Sequence[str], lines: Sequence[Sequence[str]], right: frozenset[str] = RIGHT_ALIGNED) -> str:
    """Columns two spaces apart, as wide as their widest cell; the columns
    named in ``right`` right-aligned."""
    cells = [list(headers), *([str(cell) for cell in line] for line in lines)]
    widths = [max(len(line[k]) for line in cells) for k in range(len(headers))]
    rendered = []
    for line in cells:
        parts = [
            text.rjust(width) if name in right else text.ljust(width)
            for name, text, width in zip(headers, line, widths, strict=True)
        ]
        rendered.append("  ".join(parts).rstrip())
    return "\n".join(rendered)


def table(rows: Sequence[Row]) -> str:
    """The rows as a table; the ``attributes`` column only when some row has attributes."""
    headers = Row.HEADERS if any(row.attributes for row in rows) else Row.HEADERS[:-1]
    return format_table(headers, [[getattr(row, name) for name in headers] for row in rows])


def to_json(record: Mapping[str, Any]) -> str:
    """The record without the core's bookkeeping, times in ISO 8601."""
    public = {key: value for key, value in record.items() if key not in INTERNAL_FIELDS}
    return json.dumps(public, default=_json_default, ensure_ascii=False, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def firestore_client(env: Mapping[str, str]) -> Any:
    """The emulator's client (anonymous) when ``FIRESTORE_EMULATOR_HOST`` is
    set, else the real service's with default credentials. The library reads
    the emulator host from the process environment, so it is put there."""
    from google.cloud import firestore

    database = env.get("FIRESTORE_DATABASE") or "(default)"
    if host := env.get("FIRESTORE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        project = env.get("GOOGLE_CLOUD_PROJECT") or "demo-fashion"
        return firestore.Client(project=project, database=database, credentials=AnonymousCredentials())
    return firestore.Client(project=env.get("GOOGLE_CLOUD_PROJECT"), database=database)


def run(db: Any, *, since: datetime | None = None, limit: int = 50, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    """Print the records; 0 (also when there are none)."""
    records = latest(db, since=since, limit=limit)
    if as_json:
        for record in records:
            print(to_json(record), file=out)
        return 0
    if not records:
        window = f" since {since.isoformat(timespec='seconds')}" if since else ""
        print(f"no classification records{window}", file=out)
        return 0
    print(table([to_row(record) for record in records]), file=out)
    figures = coverage_of_dicts(records)
    if figures:
        print(f"attributes: {coverage_text(figures)}", file=out)
    return 0
