"""How the processing core turns failures into "retry later", with fakes in
place of Firestore and Cloud Storage (the emulator-backed tests cover the
rest): what the Firestore client raises when it is unavailable, and which
delivery may write the failure down."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc

from functions.processing import Processor, TransientError
from shared import record_updates as updates
from shared import records as rec
from shared.records import ObjectRef
from shared.settings import Settings

REF = ObjectRef(bucket="in", name="a.jpg", generation=7, size=3, content_type="image/jpeg")


class FakeDocument:
    def __init__(self) -> None:
        self.writes: list[tuple[dict, Any]] = []

    def set(self, data: dict, merge: Any = False, retry: Any = None, timeout: Any = None) -> None:
        self.writes.append((data, merge))


class FakeDatabase:
    def __init__(self) -> None:
        self.document_ref = FakeDocument()

    def collection(self, name: str) -> FakeDatabase:
        return self

    def document(self, *path: str) -> FakeDocument:
        return self.document_ref


def processor(db: FakeDatabase) -> Processor:
    settings = Settings(project="demo-p", incoming_bucket="in", processed_bucket="out", models_bucket="models")
    return Processor(settings, storage_client=None, db=db, models=None)  # type: ignore[arg-type]


def unavailable_transaction_error() -> ValueError:
    """What ``firestore.transactional`` raises when its begin call failed
    (measured with the Firestore emulator stopped): the RetryError, hidden
    behind the ValueError of rolling back a transaction that never began."""
    try:
        try:
            raise gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("connection refused"))
        except gexc.RetryError:
            raise ValueError("The transaction has no transaction ID, so it cannot be rolled back.")  # noqa: B904 - as the library does
    except ValueError as exc:
        return exc


def test_a_firestore_outage_inside_a_transaction_is_transient(monkeypatch: pytest.MonkeyPatch):
    db = FakeDatabase()
    error = unavailable_transaction_error()

    def claim(*args: Any) -> dict:
        raise error

    monkeypatch.setattr(Processor, "_claim", claim)
    with pytest.raises(TransientError, match="RetryError"):
        processor(db).process(REF, trigger="event")
    assert db.document_ref.writes == []  # it never held the lease: it writes nothing


def test_other_value_errors_are_not_mistaken_for_transient_ones(monkeypatch: pytest.MonkeyPatch):
    def claim(*args: Any) -> dict:
        raise ValueError("a programming error")

    monkeypatch.setattr(Processor, "_claim", claim)
    with pytest.raises(ValueError, match="a programming error"):
        processor(FakeDatabase()).process(REF, trigger="event")


def test_a_delivery_that_failed_before_claiming_leaves_the_record_alone(monkeypatch: pytest.MonkeyPatch):
    """Another delivery may hold the lease or have finished: writing "failed"
    over its record would make the object look unfinished (and counted twice)."""

    def claim(*args: Any) -> dict:
        raise gexc.ServiceUnavailable("firestore is restarting")

    db = FakeDatabase()
    monkeypatch.setattr(Processor, "_claim", claim)
    with pytest.raises(TransientError):
        processor(db).process(REF, trigger="event")
    assert db.document_ref.writes == []


def test_the_lease_holder_records_its_transient_failure_whole(monkeypatch: pytest.MonkeyPatch):
    def download(*args: Any) -> bytes:
        raise gexc.ServiceUnavailable("storage is down")

    db = FakeDatabase()
    monkeypatch.setattr(Processor, "_claim", lambda *args: {})
    monkeypatch.setattr(Processor, "_download", download)
    with pytest.raises(TransientError, match="storage is down"):
        processor(db).process(REF, trigger="event")
    ((data, merge),) = db.document_ref.writes
    assert data["status"] == "failed" and data["error"]["reason"] == "transient" and data["lease_until"] is None
    assert sorted(merge) == sorted(data)  # top-level fields replaced whole, never merged key by key


def test_counters_and_event_ids_are_computed_without_field_transforms():
    counts = {"day": "2026-11-25", "total": 4, "status.classified": 3, "category.Casual Shoes": 2}
    increments = {"total": 1, "status.classified": 1, "category.Casual Shoes": 1, "category.Tops": 1}
    assert rec.counted(counts, increments, "2026-11-25") == {
        "day": "2026-11-25",
        "total": 5,
        "status.classified": 4,
        "category.Casual Shoes": 3,
        "category.Tops": 1,
    }
    assert updates._appended(None, "e1") == ["e1"]
    assert updates._appended(["e1"], "e2") == ["e1", "e2"]
    assert updates._appended(["e1", "e2"], "e1") == ["e1", "e2"]
