"""Every decision over HTTP on the emulators: approve, relabel, reject, a
changed decision, repeated decisions, bulk decisions, the fallback name when
a different file holds the destination; the records, the buckets and the
counters show each."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from functions.destinations import with_generation
from shared import copy_metadata
from shared import records as rec
from shared.labels import slugify
from tests.pipeline.conftest import PROCESSED
from tests.review.conftest import REVIEWER, ReviewStack


def review_counts(stack: ReviewStack) -> dict[str, int]:
    shards = stack.firestore().collection(rec.STATS, rec.day_of(rec.utcnow()), rec.SHARDS).stream()
    return rec.sum_shards(s.to_dict() or {} for s in shards)[rec.REVIEW_GROUP]


def name_of(stack: ReviewStack, doc_id: str) -> str:
    return stack.record(doc_id)["source"]["name"]


def md5(stack: ReviewStack, name: str) -> str | None:
    blob = stack.storage().bucket(PROCESSED).get_blob(name)
    return blob.md5_hash if blob else None


def check_moved(stack: ReviewStack, doc_id: str, before: dict[str, Any], new_name: str) -> dict[str, Any]:
    """The file left its review name for ``new_name`` (same bytes); the model's answer is unchanged."""
    record = stack.record(doc_id)
    assert record["status"] == rec.REVIEWED
    assert record["destination"] == {"bucket": PROCESSED, "name": new_name}
    for field in (rec.Field.LABEL, rec.Field.CONFIDENCE, rec.Field.TOP_K, rec.Field.MODEL_VERSION, rec.Field.SOURCE):
        assert record[field] == before[field], field
    assert record.get(rec.Field.REVIEW_PENDING) is None
    old = before["destination"]["name"]
    names = stack.processed()
    assert old not in names, f"{old} is still there"
    assert names[new_name].md5_hash == before["_md5"]
    metadata = names[new_name].metadata
    assert metadata[copy_metadata.STATUS] == rec.REVIEWED
    assert metadata[copy_metadata.RECORD_ID] == doc_id
    assert metadata[copy_metadata.REVIEWED_BY] == REVIEWER
    return record


def before(stack: ReviewStack, doc_id: str) -> dict[str, Any]:
    record = stack.record(doc_id)
    record["_md5"] = md5(stack, record["destination"]["name"])
    assert record["_md5"] and record["destination"]["name"].startswith("review/")
    return record


def test_approve_files_the_photo_under_the_predicted_category(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    counts = review_counts(stack)
    response = stack.decide({"id": doc_id, "action": "approve"})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    target = f"{slugify(first['label'])}/{name_of(stack, doc_id)}"
    assert result["ok"] and result["status"] == rec.REVIEWED and result["destination"]["name"] == target
    record = check_moved(stack, doc_id, first, target)
    review = record[rec.Field.REVIEW]
    assert review["decision"] == rec.APPROVED and review["final_label"] == first["label"]
    assert review["reviewed_by"] == REVIEWER and review["reviewed_at"] and review["previous"] == []
    assert stack.processed()[target].metadata[copy_metadata.CATEGORY] == first["label"]
    assert review_counts(stack).get(rec.APPROVED, 0) == counts.get(rec.APPROVED, 0) + 1
    assert rec.Classification.from_firestore(record).final_label == first["label"]


def test_relabel_files_the_photo_under_the_new_category(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    other = next(label for label in stack.labels if label != first["label"])
    counts = review_counts(stack)
    response = stack.decide({"id": doc_id, "action": "relabel", "label": other, "reason": "a note"})
    assert response.status_code == 200, response.text
    record = check_moved(stack, doc_id, first, f"{slugify(other)}/{name_of(stack, doc_id)}")
    assert record["review"]["decision"] == rec.RELABELED and record["review"]["final_label"] == other
    assert record["review"]["reason"] == "a note"
    assert record["label"] == first["label"]  # the model's answer is kept
    assert stack.processed()[record["destination"]["name"]].metadata[copy_metadata.CATEGORY] == other
    assert review_counts(stack).get(rec.RELABELED, 0) == counts.get(rec.RELABELED, 0) + 1


def test_relabel_to_the_predicted_label_is_an_approval(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    response = stack.decide({"id": doc_id, "action": "relabel", "label": first["label"]})
    assert response.status_code == 200, response.text
    assert stack.record(doc_id)["review"]["decision"] == rec.APPROVED


def test_reject_moves_the_photo_to_rejected_with_the_reason(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    counts = review_counts(stack)
    response = stack.decide({"id": doc_id, "action": "reject", "reason": "blurred, two products"})
    assert response.status_code == 200, response.text
    record = check_moved(stack, doc_id, first, f"rejected/{name_of(stack, doc_id)}")
    assert record["review"]["decision"] == rec.REVIEW_REJECTED and record["review"]["final_label"] is None
    assert record["review"]["reason"] == "blurred, two products"
    assert copy_metadata.CATEGORY not in stack.processed()[record["destination"]["name"]].metadata
    assert rec.Classification.from_firestore(record).final_label is None
    assert review_counts(stack).get(rec.REVIEW_REJECTED, 0) == counts.get(rec.REVIEW_REJECTED, 0) + 1


def test_a_repeated_identical_decision_is_200_and_moves_nothing(stack: ReviewStack):
    doc_id = stack.item()
    assert stack.decide({"id": doc_id, "action": "approve"}).status_code == 200
    snapshot, counts = stack.snapshot(doc_id), review_counts(stack)
    again = stack.decide({"id": doc_id, "action": "approve"})
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["unchanged"] is True
    assert stack.snapshot(doc_id) == snapshot
    assert review_counts(stack) == counts


def test_a_different_decision_is_409_unless_it_says_change(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    name = name_of(stack, doc_id)
    assert stack.decide({"id": doc_id, "action": "reject", "reason": "dark"}).status_code == 200
    snapshot = stack.snapshot(doc_id)
    refused = stack.decide({"id": doc_id, "action": "approve"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "already_decided"
    assert stack.snapshot(doc_id) == snapshot
    changed = stack.decide({"id": doc_id, "action": "approve", "change": True})
    assert changed.status_code == 200, changed.text
    target = f"{slugify(first['label'])}/{name}"
    record = check_moved(stack, doc_id, {**first, "destination": {"name": f"rejected/{name}"}}, target)
    assert record["review"]["decision"] == rec.APPROVED
    (earlier,) = record["review"]["previous"]
    assert earlier["decision"] == rec.REVIEW_REJECTED and earlier["reason"] == "dark" and "previous" not in earlier
    other = next(label for label in stack.labels if label != first["label"])
    again = stack.decide({"id": doc_id, "action": "relabel", "label": other, "change": True})
    assert again.status_code == 200, again.text
    record = stack.record(doc_id)
    assert [p["decision"] for p in record["review"]["previous"]] == [rec.REVIEW_REJECTED, rec.APPROVED]
    assert record["destination"]["name"] == f"{slugify(other)}/{name}"
    assert set(stack.processed()) & {target, f"rejected/{name}", first["destination"]["name"]} == set()


def test_bulk_decisions_answer_each_item(stack: ReviewStack):
    ids = [stack.item() for _ in range(3)]
    other = stack.labels[0]
    response = stack.decide(
        {"id": ids[0], "action": "approve"},
        {"id": ids[1], "action": "relabel", "label": other},
        {"id": ids[2], "action": "reject"},
        {"id": "0" * 40, "action": "approve"},
        {"id": ids[0], "action": "relabel", "label": "No Such Label"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, True, True, False, False]
    assert results[3]["error"]["code"] == "not_found" and results[4]["error"]["code"] == "unknown_label"
    assert stack.record(ids[2])["review"]["reason"] == "unusable"  # a rejection sent without a reason
    assert all(stack.record(i)["status"] == rec.REVIEWED for i in ids)


def test_a_different_file_at_the_destination_is_never_overwritten(stack: ReviewStack):
    doc_id = stack.item()
    first = before(stack, doc_id)
    target = f"{slugify(first['label'])}/{name_of(stack, doc_id)}"
    squatter = stack.storage().bucket(PROCESSED).blob(target)
    squatter.upload_from_string(b"another file", content_type="text/plain")
    response = stack.decide({"id": doc_id, "action": "approve"})
    assert response.status_code == 200, response.text
    fallback = with_generation(target, int(first["source"]["generation"]))
    check_moved(stack, doc_id, first, fallback)
    kept = stack.storage().bucket(PROCESSED).get_blob(target)
    assert kept.generation == squatter.generation
    assert kept.md5_hash == base64.b64encode(hashlib.md5(b"another file").digest()).decode()
