"""Derives the BigQuery events table's schema from the event's JSON Schema.

    python -m scripts.bigquery_schema [--check]

writes ``terraform/bigquery/events-table.schema.json`` (what
``terraform/events.tf`` gives the table) from
``schemas/classification-event.v1.json``; ``--check`` only compares and exits
1 when the committed file differs (``tests/deploy/test_events_terraform.py``
runs the same comparison).

Mapping: ``string`` -> STRING, ``integer`` -> INTEGER, ``number`` -> FLOAT,
``boolean`` -> BOOLEAN, an object with ``properties`` -> RECORD (its fields
in the schema's order), an array -> its items' type with mode REPEATED;
every other column is NULLABLE (a missing or null value is a NULL, never a
rejected row). Timestamps stay STRING (RFC 3339 text, as the event carries
them; ``TIMESTAMP(time)`` in queries): the table is partitioned on
``publish_time``, one of the four columns the BigQuery subscription's
``write_metadata`` adds after the event's own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENT_SCHEMA = REPO_ROOT / "schemas" / "classification-event.v1.json"
TABLE_SCHEMA = REPO_ROOT / "terraform" / "bigquery" / "events-table.schema.json"
_SCALARS = {"string": "STRING", "integer": "INTEGER", "number": "FLOAT", "boolean": "BOOLEAN"}
#: the columns a BigQuery subscription with write_metadata=true fills
METADATA_COLUMNS = (
    {
        "name": "subscription_name",
        "type": "STRING",
        "mode": "NULLABLE",
        "description": "Pub/Sub subscription that wrote the row.",
    },
    {
        "name": "message_id",
        "type": "STRING",
        "mode": "NULLABLE",
        "description": "Pub/Sub message id (differs between re-publications; the event id does not).",
    },
    {
        "name": "publish_time",
        "type": "TIMESTAMP",
        "mode": "NULLABLE",
        "description": "When Pub/Sub accepted the message (the partitioning column).",
    },
    {
        "name": "attributes",
        "type": "JSON",
        "mode": "NULLABLE",
        "description": "The message attributes: type, status, band, category, sku.",
    },
)


class SchemaError(ValueError):
    """A JSON Schema construct with no BigQuery column type."""


def _kind(node: Mapping[str, Any], where: str) -> str:
    kinds = node.get("type")
    kinds = [kinds] if isinstance(kinds, str) else [k for k in (kinds or []) if k != "null"]
    if len(kinds) != 1:
        raise SchemaError(f"{where}: expected one non-null type, found {node.get('type')!r}")
    return kinds[0]


def column(name: str, node: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """One BigQuery column for the JSON Schema property ``name``. Raises SchemaError."""
    where = f"{where}.{name}" if where else name
    kind = _kind(node, where)
    mode = "NULLABLE"
    if kind == "array":
        mode, node = "REPEATED", node.get("items") or {}
        kind = _kind(node, f"{where}[]")
    result: dict[str, Any] = {"name": name}
    if kind == "object":
        properties = node.get("properties")
        if not properties:
            raise SchemaError(f"{where}: an object needs its properties listed")
        result |= {"type": "RECORD", "mode": mode, "fields": [column(k, v, where) for k, v in properties.items()]}
    elif kind in _SCALARS:
        result |= {"type": _SCALARS[kind], "mode": mode}
    else:
        raise SchemaError(f"{where}: no column type for {kind!r}")
    if node.get("description"):
        result["description"] = str(node["description"])[:1024]  # BigQuery's limit on a description
    return result


def table_schema(event_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The table's columns: one per top-level property of the event, then the metadata columns."""
    return [column(name, node) for name, node in event_schema["properties"].items()] + [dict(c) for c in METADATA_COLUMNS]


def render(columns: list[dict[str, Any]]) -> str:
    return json.dumps(columns, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed file; exit 1 when it differs")
    args = parser.parse_args(argv)
    text = render(table_schema(json.loads(EVENT_SCHEMA.read_text())))
    if args.check:
        current = TABLE_SCHEMA.read_text() if TABLE_SCHEMA.is_file() else ""
        if current != text:
            print(f"{TABLE_SCHEMA} is out of date: run python -m scripts.bigquery_schema", file=sys.stderr)
            return 1
        return 0
    TABLE_SCHEMA.parent.mkdir(parents=True, exist_ok=True)
    TABLE_SCHEMA.write_text(text)
    print(TABLE_SCHEMA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
