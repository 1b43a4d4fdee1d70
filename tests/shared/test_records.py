"""shared/records.py: the one definition of the Firestore records."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared import record_updates as updates
from shared import records as rec
from shared.records import Classification, Decision, Destination, Field, ObjectRef

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
REF = ObjectRef("in", "a/b.jpg", 1795628002389068, 1234, "image/jpeg")


def test_a_full_record_round_trips() -> None:
    record = Classification(
        source=REF,
        status=rec.CLASSIFIED,
        step=rec.DONE,
        label="Heels",
        confidence=0.9,
        top_k=rec.top_k_entries([("Heels", 0.9), ("Tops", 0.05)]),
        model_version="v1",
        destination=Destination("out", "heels/a/b.jpg"),
        error=None,
        timings_ms={"download": 1.0, "total": 9.5},
        decision=Decision(rec.CLASSIFIED, "Heels", 0.9, [], "v1", None, "heels/a/b.jpg"),
        trigger="event",
        attempts=2,
        event_ids=["e1", "e2"],
        lease_owner=None,
        lease_until=None,
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
    )
    stored = record.to_firestore()
    assert (
        set(stored) == set(Field.ALL) and len(Field.ALL) == 27
    )  # + band, review, review_pending (15), outbox (16), candidate (17), previous (18), attributes (issue 19)
    assert stored[Field.SOURCE]["generation"] == "1795628002389068"  # a string: it exceeds 2**53
    assert Classification.from_firestore(stored, "doc-1") == Classification(**{**record.__dict__, "id": "doc-1"})
    assert record.finished and record.reason is None


def test_reading_never_raises_on_partial_or_malformed_documents() -> None:
    assert Classification.from_firestore(None) == Classification()
    odd = Classification.from_firestore(
        {"source": {"bucket": "in"}, "destination": "x", "error": "boom", "decision": {}, "id": "7"}
    )
    assert odd.source is None and odd.destination is None and odd.error is None and odd.decision is None and odd.id == "7"
    rejected = Classification.from_firestore({"status": "rejected", "error": {"reason": "not_an_image", "message": "m"}})
    assert rejected.reason == "not_an_image" and rejected.finished


def test_the_partial_updates_write_what_the_core_wrote_before() -> None:
    first = updates.claim_update({}, REF, "owner", NOW + timedelta(seconds=120), "event", "e1", NOW)
    assert first == {
        "source": REF.to_dict(),
        "status": "processing",
        "lease_owner": "owner",
        "lease_until": NOW + timedelta(seconds=120),
        "attempts": 1,
        "trigger": "event",
        "updated_at": NOW,
        "event_ids": ["e1"],
        "created_at": NOW,
        "step": "claimed",
        "error": None,
    }
    again = updates.claim_update(first, REF, "other", NOW, "sweep", "e1", NOW)
    assert again["attempts"] == 2 and again["trigger"] == "event" and again["event_ids"] == ["e1"] and "created_at" not in again
    decision = Decision(rec.REJECTED, model_version="v1", error=rec.error_info("not_an_image", "m"), target="rejected/a/b.jpg")
    assert updates.decided_update(decision, NOW) == {"decision": decision.to_dict(), "step": "decided", "updated_at": NOW}
    assert Decision.from_dict(decision.to_dict()) == decision
    final = updates.final_update(decision, Destination("out", "rejected/a/b.jpg"), {"total": 3.0}, NOW)
    assert final["status"] == "rejected" and final["label"] is None and final["top_k"] == [] and final["step"] == "done"
    assert (
        final["lease_owner"] is None
        and final["lease_until"] is None
        and final["destination"] == {"bucket": "out", "name": "rejected/a/b.jpg"}
    )
    failure = updates.failure_update("x" * 600, NOW)
    assert failure["status"] == "failed" and failure["error"]["reason"] == "transient" and len(failure["error"]["message"]) == 500


def test_leases_and_counters() -> None:
    held = {"status": "processing", "lease_until": NOW + timedelta(seconds=1)}
    assert rec.leased(held, NOW) and not rec.leased(held, NOW + timedelta(seconds=2))
    assert not rec.leased({"status": "failed", "lease_until": NOW + timedelta(seconds=1)}, NOW)
    increments = rec.counter_fields(rec.REJECTED, None, "not_an_image")
    assert increments == {"total": 1, "status.rejected": 1, "rejection.not_an_image": 1}
    shard = rec.counted({"total": 2, "status.rejected": 2}, increments, "2026-11-29")
    expected = {"total": 3, "status": {"rejected": 3}, "category": {}, "rejection": {"not_an_image": 1}, "review": {}}
    assert rec.sum_shards([shard]) == expected
    assert rec.shard_path(NOW, 7) == ("stats", "2026-11-29", "shards", "7")


def test_only_the_record_module_spells_the_bookkeeping_fields() -> None:
    """The fields no other contract shares (API answers, logs and run
    documents use ``status``, ``label``...): no other non-test module spells them."""
    names = (Field.LEASE_OWNER, Field.LEASE_UNTIL, Field.EVENT_IDS, Field.TIMINGS_MS, Field.DECISION)
    pattern = re.compile("|".join(f"[\"']{name}[\"']" for name in names))
    skip = {"tests", ".venv", "build", "node_modules", ".git"}
    roots = [p for p in REPO.iterdir() if p.is_dir() and p.name not in skip and not p.name.startswith(".")]
    files = [*REPO.glob("*.py"), *(f for root in roots for f in root.rglob("*.py"))]
    offenders = [
        str(path.relative_to(REPO))
        for path in files
        if path != REPO / "shared" / "records.py" and pattern.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


ATTRS = {
    "gender": {"value": "Women", "confidence": 0.91, "threshold": 0.6, "best": "Women"},
    "colour": {"value": None, "confidence": 0.41, "threshold": 0.55, "best": "black"},
}


def test_attributes_round_trip_through_the_decision_the_final_update_and_the_record() -> None:
    decision = Decision(rec.CLASSIFIED, "Heels", 0.9, [], "v1", band=rec.BAND_AUTO, attributes=ATTRS)
    assert Decision.from_dict(decision.to_dict()) == decision
    final = updates.final_update(decision, Destination("out", "heels/a.jpg"), {}, NOW)
    assert final[Field.ATTRIBUTES] == ATTRS
    record = Classification.from_firestore(final)
    assert record.attributes == ATTRS and record.final_attributes == {"gender": "Women", "colour": None}
    assert record.empty_attributes == ["colour"]
    # a category-only model: no attributes field at all, and reading one gives {}
    plain = Decision(rec.CLASSIFIED, "Heels", 0.9, [], "v1")
    assert Field.ATTRIBUTES not in plain.to_dict() and Field.ATTRIBUTES not in updates.final_update(plain, None, {}, NOW)
    assert Classification.from_firestore({"attributes": "junk"}).attributes == {}
    assert Classification.from_firestore({"attributes": {"gender": "x", "colour": ATTRS["colour"]}}).attributes == {
        "colour": ATTRS["colour"]
    }


def test_a_reviewers_corrections_override_the_models_attributes() -> None:
    review = {"decision": "approved", rec.REVIEW_ATTRIBUTES: {"colour": "blue", "gender": None}}
    assert rec.effective_attributes(ATTRS, review) == {"gender": None, "colour": "blue"}
    assert rec.attribute_sources(ATTRS, review) == {"gender": rec.FROM_REVIEWER, "colour": rec.FROM_REVIEWER}
    assert rec.attribute_sources(ATTRS, None) == {"gender": rec.FROM_MODEL, "colour": None}
    assert rec.effective_attributes({}, {rec.REVIEW_ATTRIBUTES: {"usage": "Casual"}}) == {"usage": "Casual"}
    assert rec.attribute_corrections({rec.REVIEW_ATTRIBUTES: "junk"}) == {}
    assert rec.effective_attributes(None, None) == {}


def test_attribute_entries_are_made_from_the_classifiers_attribute_predictions() -> None:
    from shared.classifier import AttributePrediction

    predicted = {
        "gender": AttributePrediction("Women", 0.91, 0.6, "Women"),
        "colour": AttributePrediction(None, 0.41, 0.55, "black"),
    }
    assert rec.attribute_entries(predicted) == ATTRS
    assert rec.attribute_entries({}) == {}
