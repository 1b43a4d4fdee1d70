"""Pure logic of the model loop: sources and their fixed split rule, the
per-source gate, pointer moves (promote, rollback) on a local model store,
shadow agreement."""

from __future__ import annotations

import hashlib

import pytest

from shared import records as rec
from shared.model_layout import CANDIDATE_POINTER, POINTER, parse_pointer, pointer_payload, pointer_previous
from training import model_loop
from training import sources as src
from training.publish import GateConfig, GateDecision, source_gate
from training.storage import LocalStore


def test_parse_sources_reads_weights_and_names_them_uniquely():
    parsed = src.parse_sources(["/data/export-a:2.5", "gs://bucket/exports/export-a", "/x/export-a/:0.5", "C"])
    assert [(s.name, s.weight) for s in parsed] == [("export-a", 2.5), ("export-a-2", 1.0), ("export-a-3", 0.5), ("C", 1.0)]
    assert parsed[1].uri == "gs://bucket/exports/export-a"
    with pytest.raises(ValueError, match="positive"):
        src.parse_sources(["/data/e:0"])


def test_hash_rule_depends_on_the_bytes_only_and_keeps_the_fractions():
    digests = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(4000)]
    sides = [src.side_by_hash(d, val=0.15, test=0.15) for d in digests]
    assert sides == [src.side_by_hash(d, val=0.15, test=0.15) for d in digests]  # no state, no order
    for name, share in (("test", 0.15), ("val", 0.15), ("train", 0.70)):
        assert abs(sides.count(name) / len(sides) - share) < 0.03
    assert src.source_of("export-1:abc") == "export-1" and src.local_id("export-1:abc") == "abc"
    assert src.source_of("1234") == src.BASE and src.local_id("1234") == "1234"


GATE = GateConfig(min_accuracy=0.9, max_regression=0.01)


def test_source_gate_compares_each_source_and_the_base_floor():
    ok = source_gate({"base": {"accuracy": 0.95, "images": 100}, "e": {"accuracy": 0.7, "images": 20}},
                     {"base": {"accuracy": 0.95, "images": 100}, "e": {"accuracy": 0.6, "images": 20}}, GATE, "v1", "base")  # fmt: skip
    assert ok.passed and ok.per_source["e"] == {"candidate": 0.7, "current": 0.6, "images": 20, "passed": True}
    worse = source_gate({"base": {"accuracy": 0.95, "images": 100}, "e": {"accuracy": 0.5, "images": 20}},
                        {"base": {"accuracy": 0.95, "images": 100}, "e": {"accuracy": 0.6, "images": 20}}, GATE, "v1", "base")  # fmt: skip
    assert not worse.passed and "on e (20 test images) 50.00%" in worse.reason
    floor = source_gate({"base": {"accuracy": 0.85, "images": 100}}, None, GATE, None, "base")
    assert not floor.passed and "below the floor" in floor.reason
    empty = source_gate({"base": {"accuracy": 0.95, "images": 10}, "e": {"accuracy": 0.0, "images": 0}},
                        {"base": {"accuracy": 0.95, "images": 10}, "e": {"accuracy": 0.9, "images": 0}}, GATE, "v1", "base")  # fmt: skip
    assert empty.passed  # a source with no test image is reported, not judged


def _store(tmp_path, current: str | None, candidate: str | None, previous: str | None = None) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    for version in ("v1", "v2", "v3"):
        store.write_bytes(f"models/{version}/manifest.json", b"{}")
    if current:
        store.write_bytes(POINTER, pointer_payload(current, previous=previous).encode())
    if candidate:
        store.write_bytes(CANDIDATE_POINTER, pointer_payload(candidate).encode())
    return store


def _comparison(passed: bool) -> model_loop.Comparison:
    return model_loop.Comparison("v1", "v2", gate=GateDecision(passed, "because", 0.9, "v1", 0.9))


def test_promote_moves_the_pointers_only_through_the_gate_and_rollback_restores(tmp_path):
    store = _store(tmp_path, "v1", "v2")
    with pytest.raises(model_loop.LoopError, match="REFUSED to promote v2: because"):
        model_loop.promote(store, _comparison(False))
    assert parse_pointer(store.read_bytes(POINTER)) == "v1" and store.exists(CANDIDATE_POINTER)
    assert "promoted v2" in model_loop.promote(store, _comparison(True))
    assert parse_pointer(store.read_bytes(POINTER)) == "v2" and not store.exists(CANDIDATE_POINTER)
    assert pointer_previous(store.read_bytes(POINTER)) == "v1"
    assert "current is v1 again" in model_loop.rollback(store)
    assert parse_pointer(store.read_bytes(POINTER)) == "v1" and pointer_previous(store.read_bytes(POINTER)) == "v2"


def test_promote_with_force_and_refusals_of_rollback(tmp_path):
    store = _store(tmp_path, "v1", "v2")
    model_loop.promote(store, _comparison(False), force=True)
    assert parse_pointer(store.read_bytes(POINTER)) == "v2"
    with pytest.raises(model_loop.LoopError, match="no previous version"):
        model_loop.rollback(_store(tmp_path / "b", "v1", None))
    with pytest.raises(model_loop.LoopError, match="nothing to roll back"):
        model_loop.rollback(_store(tmp_path / "c", None, None))
    with pytest.raises(model_loop.LoopError, match="no longer in"):
        model_loop.rollback(_store(tmp_path / "d", "v1", None, previous="v9"))
    changed = _store(tmp_path / "e", "v1", "v3")
    with pytest.raises(model_loop.LoopError, match="changed"):
        model_loop.promote(changed, _comparison(True))


def test_shadow_agreement_counts_only_the_candidates_answers():
    def record(label: str, candidate: str | None, version: str = "v2") -> rec.Classification:
        answer = rec.candidate_answer(version, candidate, 0.8, [], 3.0) if candidate else None
        return rec.Classification(status=rec.CLASSIFIED, label=label, candidate=answer)

    records = [record("A", "A"), record("A", "B"), record("B", "B"), record("A", "B"), record("A", None), record("A", "C", "v0")]
    n, agreement, changes = model_loop.shadow_agreement(records, "v2")
    assert n == 4 and agreement == 0.5 and changes == {"A": {"B": 2}}
