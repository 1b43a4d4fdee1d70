"""The dataset export's filters, de-duplication and output layout (pure
logic: records built with the record module, files from a dict)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared import records as rec
from training import data as data_stage
from training import dataset_export as ex
from training.storage import LocalStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record(
    n: int,
    *,
    status: str = rec.CLASSIFIED,
    label: str = "Heels",
    confidence: float = 0.9,
    review: tuple[str, str | None] | None = None,
    created: datetime = T0,
    reviewed_at: datetime | None = None,
) -> rec.Classification:
    ref = rec.ObjectRef("incoming", f"photo-{n}.jpg", 1000 + n)
    review_map = None
    if review is not None:
        status = rec.REVIEWED
        review_map = {
            rec.REVIEW_DECISION: review[0],
            rec.REVIEW_FINAL_LABEL: review[1],
            rec.REVIEW_BY: "ana",
            rec.REVIEW_AT: reviewed_at or created + timedelta(hours=1),
            rec.REVIEW_PREVIOUS: [],
        }
    stored = rec.Classification(
        source=ref,
        status=status,
        label=label,
        confidence=confidence,
        model_version="v1",
        destination=rec.Destination("processed", f"x/photo-{n}.jpg"),
        created_at=created,
        review=review_map,
    ).to_firestore()
    return rec.Classification.from_firestore(stored, ref.doc_id)  # as read back from Firestore


def test_final_label_is_the_humans_when_reviewed_else_the_models_when_classified():
    assert record(1).final_label == "Heels"
    assert record(2, status=rec.NEEDS_REVIEW).final_label is None
    assert record(3, review=(rec.RELABELED, "Watches")).final_label == "Watches"
    assert record(4, review=(rec.APPROVED, "Heels")).final_label == "Heels"
    assert record(5, review=(rec.REVIEW_REJECTED, None)).final_label is None
    assert record(6, status=rec.REJECTED, label=None).final_label is None


def test_filters_choose_records_and_count_the_others_by_reason():
    records = [
        record(1, confidence=0.95),
        record(2, confidence=0.5),  # auto-filed, low confidence
        record(3, confidence=0.2, review=(rec.RELABELED, "Watches")),  # reviewed: confidence does not matter
        record(4, status=rec.NEEDS_REVIEW),
        record(5, review=(rec.REVIEW_REJECTED, None)),
        record(6, created=T0 - timedelta(days=3)),
        record(7, created=T0 + timedelta(days=3), label="Watches"),
    ]
    chosen, skipped = ex.select(records, ex.Filters(min_confidence=0.8))
    assert [i.record.source.name for i in chosen] == ["photo-1.jpg", "photo-3.jpg", "photo-6.jpg", "photo-7.jpg"]
    assert [i.label for i in chosen] == ["Heels", "Watches", "Heels", "Watches"]
    assert skipped == {"low_confidence": 1, "no_final_label": 2}

    chosen, skipped = ex.select(records, ex.Filters(reviewed_only=True))
    assert [i.record.source.name for i in chosen] == ["photo-3.jpg"]
    assert skipped["not_reviewed"] == 4

    window = ex.Filters(since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
    chosen, skipped = ex.select(records, window)
    assert {i.record.source.name for i in chosen} == {"photo-1.jpg", "photo-2.jpg", "photo-3.jpg"}
    assert skipped["before_since"] == 1 and skipped["after_until"] == 1

    chosen, skipped = ex.select(records, ex.Filters(categories=frozenset({"Watches"})))
    assert {i.record.source.name for i in chosen} == {"photo-3.jpg", "photo-7.jpg"}
    assert skipped["category"] == 3


def test_filters_reject_nonsense():
    with pytest.raises(ValueError, match="between 0 and 1"):
        ex.Filters(min_confidence=1.5)
    with pytest.raises(ValueError, match="not before"):
        ex.filters_from(reviewed_only=False, min_confidence=None, since="2026-11-02", until="2026-11-01", categories=())
    with pytest.raises(ValueError, match="not a date"):
        ex.parse_day("yesterday")
    assert ex.parse_day("2026-11-02") == datetime(2026, 11, 2, tzinfo=UTC)


def test_dedupe_keeps_the_reviewed_copy_then_the_latest_decision():
    auto = ex.Item(record(1), "Heels")
    early = ex.Item(record(2, review=(rec.APPROVED, "Heels"), reviewed_at=T0 + timedelta(hours=1)), "Heels")
    late = ex.Item(record(3, review=(rec.RELABELED, "Watches"), reviewed_at=T0 + timedelta(hours=5)), "Watches")
    other = ex.Item(record(4), "Heels")
    kept, dropped = ex.dedupe([(auto, "aaa"), (early, "aaa"), (late, "aaa"), (other, "bbb")])
    assert dropped == 2
    assert [item.record.source.name for item, _ in kept] == ["photo-3.jpg", "photo-4.jpg"]
    kept, dropped = ex.dedupe([(auto, "ccc"), (other, "ccc")])  # equals: the earlier decision time ties; smaller id wins
    assert dropped == 1 and kept[0][0].record.id == min(auto.record.id, other.record.id)


def test_export_writes_the_training_layout_with_provenance(tmp_path):
    records = [
        record(1),
        record(2, review=(rec.RELABELED, "Watches")),
        record(3, review=(rec.APPROVED, "Heels")),  # same bytes as 1: the reviewed copy wins
        record(4),  # its file is gone
        record(5, status=rec.NEEDS_REVIEW),
    ]
    files = {"photo-1.jpg": b"one", "photo-2.jpg": b"two", "photo-3.jpg": b"one", "photo-5.jpg": b"five"}
    out = LocalStore(tmp_path / "export")
    result = ex.export(records, lambda r: files.get(r.source.name), out, ex.Filters())
    assert result.written == 2 and result.labels == {"Watches": 1, "Heels": 1}
    assert result.skipped == {"duplicate": 1, "missing_file": 1, "no_final_label": 1}
    rows, malformed = data_stage.read_styles((tmp_path / "export" / "styles.csv").read_bytes())
    assert malformed == 0 and sorted(rows) == sorted([(records[1].id, "Watches"), (records[2].id, "Heels")])
    table = {r["id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "export" / "styles.csv").read_text()))}
    relabeled = table[records[1].id]
    assert relabeled["review_decision"] == "relabeled" and relabeled["reviewer"] == "ana" and relabeled["model_label"] == "Heels"
    assert relabeled["generation"] == "1002" and relabeled["object"] == "x/photo-2.jpg" and relabeled["model_version"] == "v1"
    assert (tmp_path / "export" / "images" / f"{records[2].id}.jpg").read_bytes() == b"one"
    summary = json.loads((tmp_path / "export" / "export.json").read_text())
    assert summary["written"] == 2 and summary["filters"]["reviewed_only"] is False


ATTRS = {
    "gender": {"value": "Women", "confidence": 0.91, "threshold": 0.6, "best": "Women"},
    "colour": {"value": None, "confidence": 0.41, "threshold": 0.55, "best": "black"},
    "usage": {"value": "Casual", "confidence": 0.8, "threshold": 0.5, "best": "Casual"},
}


def test_attribute_columns_hold_the_effective_values_with_their_source_and_read_back(tmp_path):
    from shared.attributes import ATTRIBUTES

    corrected = record(1, review=(rec.APPROVED, "Heels"))
    corrected.attributes = dict(ATTRS)
    corrected.review = {**(corrected.review or {}), rec.REVIEW_ATTRIBUTES: {"colour": "blue", "usage": None}}
    auto = record(2)
    auto.attributes = dict(ATTRS)
    plain = record(3)  # a category-only model
    files = {"photo-1.jpg": b"one", "photo-2.jpg": b"two", "photo-3.jpg": b"three"}
    out = LocalStore(tmp_path / "export")
    ex.export([corrected, auto, plain], lambda r: files.get(r.source.name), out, ex.Filters())
    text = (tmp_path / "export" / "styles.csv").read_text()
    header = text.splitlines()[0].split(",")
    assert tuple(header) == ex.COLUMNS and header[:2] == ["id", "articleType"]
    assert [c for c in header if c in ATTRIBUTES.values()] == list(ATTRIBUTES.values())  # the columns training.data reads
    table = {r["id"]: r for r in csv.DictReader(io.StringIO(text))}
    row = table[corrected.id]
    assert (row["baseColour"], row["colour_source"]) == ("blue", "reviewer")
    assert (row["usage"], row["usage_source"]) == ("", "reviewer")  # a person left it empty
    assert (row["gender"], row["gender_source"]) == ("Women", "model")
    assert (row["season"], row["season_source"]) == ("", "")
    assert (table[auto.id]["baseColour"], table[auto.id]["colour_source"]) == ("", "")  # low confidence: not guessed
    assert all(table[plain.id][c] == "" for c in ex.COLUMNS[14:])
    back = data_stage.read_attributes(text.encode())
    assert back[corrected.id] == {"gender": "Women", "colour": "blue", "usage": None, "season": None}
    assert back[auto.id] == {"gender": "Women", "colour": None, "usage": "Casual", "season": None}
    human = ex.attribute_cells(corrected, human_only=True)
    assert (human["gender"], human["gender_source"], human["baseColour"]) == ("", "", "blue")
