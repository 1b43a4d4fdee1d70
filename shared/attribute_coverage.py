"""Attribute coverage (issue 19): per attribute, how many records got a
value and how many were left empty, pure logic over records (no clients).

Counted over the records that carry attributes (a model with attribute
heads classified them: ``classified``, ``needs_review`` or ``reviewed``);
category-only records and rejections are not counted. An attribute's value
is the effective one (:func:`shared.records.effective_attributes`: a
reviewer's correction over the model's value). Read by ``fashionctl
results``, ``fashionctl health`` and the operations report
(``reporting/build.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared import records as rec
from shared.attributes import in_order

#: statuses whose records can carry attributes
COUNTED_STATUSES = frozenset({rec.CLASSIFIED, rec.NEEDS_REVIEW, rec.REVIEWED})


def coverage(records: Iterable[rec.Classification]) -> dict[str, dict[str, Any]]:
    """{attribute: {"records", "given", "empty", "corrected", "given_share"}}:
    ``records`` with that attribute, of which ``given`` hold a value and
    ``empty`` none (low confidence, or a reviewer left it empty);
    ``corrected``: set by a reviewer; ``given_share``: given / records
    (0..1, 4 decimals). Attributes in name order; {} when no record has any."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        if record.status not in COUNTED_STATUSES:
            continue
        sources = rec.attribute_sources(record.attributes, record.review)
        for name, value in record.final_attributes.items():
            c = counts.setdefault(name, {"records": 0, "given": 0, "empty": 0, "corrected": 0})
            c["records"] += 1
            c["given" if value is not None else "empty"] += 1
            c["corrected"] += sources.get(name) == rec.FROM_REVIEWER
    return {
        name: {**c, "given_share": round(c["given"] / c["records"], 4) if c["records"] else 0.0}
        for name, c in ((name, counts[name]) for name in in_order(counts))
    }


def coverage_of_dicts(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`coverage` of stored documents (dicts as Firestore returns them)."""
    return coverage(rec.Classification.from_firestore(r) for r in records)


def coverage_text(figures: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: ``gender 9/10 given (90.0%), colour 4/10 given (40.0%, 6 empty)``; ``-`` when none."""
    if not figures:
        return "-"
    parts = []
    for name, c in figures.items():
        extra = f", {c['empty']} empty" if c["empty"] else ""
        extra += f", {c['corrected']} set by reviewers" if c["corrected"] else ""
        parts.append(f"{name} {c['given']}/{c['records']} given ({c['given_share']:.1%}{extra})")
    return ", ".join(parts)
