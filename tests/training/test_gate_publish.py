"""Quality gate and publishing: the pointer moves only when the gate passes."""

from __future__ import annotations

import json
import logging

import pytest

from shared.manifest import Manifest
from shared.model_layout import POINTER, parse_pointer
from training.publish import GateConfig, current_model, decide, publish, quality_gate
from training.storage import LocalStore

GATE = GateConfig(min_accuracy=0.90, max_regression=0.01)


@pytest.mark.parametrize(
    ("candidate", "current", "passed", "words"),
    [
        (0.95, None, True, "no current model"),
        (0.89, None, False, "below the floor"),
        (0.93, 0.935, True, "within"),
        (0.93, 0.95, False, "below the current model"),
        (0.96, 0.92, True, "within"),
        (0.85, 0.80, False, "below the floor"),
    ],
)
def test_quality_gate(candidate, current, passed, words):
    decision = quality_gate(candidate, current, GATE, "v1" if current is not None else None)
    assert decision.passed is passed
    assert words in decision.reason


def _artifacts(tmp_path, version: str, accuracy: float) -> dict:
    folder = tmp_path / version
    folder.mkdir()
    manifest = Manifest(
        version=version,
        labels=["A", "B"],
        input_size=32,
        input_dtype="uint8",
        quantization={"type": "int8"},
        model_sha256="0" * 64,
        metrics={"test_accuracy": accuracy},
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    (folder / "model.tflite").write_bytes(b"model " + version.encode())
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": accuracy}))
    return {p.name: p for p in folder.iterdir()}


def test_publish_accepts_then_refuses_a_worse_model(tmp_path, caplog):
    store = LocalStore(tmp_path / "store")
    first = decide(store, 0.94, GATE)
    assert first.passed and first.current_version is None
    assert publish(store, "v1", _artifacts(tmp_path, "v1", 0.94), first)
    assert parse_pointer(store.read_bytes(POINTER)) == "v1"
    assert store.exists("models/v1/model.tflite") and store.exists("models/v1/manifest.json")

    worse = decide(store, 0.91, GATE)
    assert not worse.passed and worse.current_version == "v1" and worse.current_accuracy == 0.94
    with caplog.at_level(logging.WARNING):
        assert not publish(store, "v2", _artifacts(tmp_path, "v2", 0.91), worse)
    assert "REFUSED" in caplog.text and "v2" in caplog.text
    assert parse_pointer(store.read_bytes(POINTER)) == "v1"  # pointer did not move
    assert store.exists("models/v2/model.tflite")  # but the candidate is kept for inspection

    better = decide(store, 0.95, GATE)
    assert better.passed
    assert publish(store, "v3", _artifacts(tmp_path, "v3", 0.95), better)
    version, manifest = current_model(store)
    assert version == "v3" and manifest.metrics["test_accuracy"] == 0.95


def test_force_publish_moves_the_pointer_despite_the_gate(tmp_path):
    store = LocalStore(tmp_path / "store")
    refused = decide(store, 0.5, GATE)
    assert not refused.passed
    assert publish(store, "v1", _artifacts(tmp_path, "v1", 0.5), refused, force=True)
    assert parse_pointer(store.read_bytes(POINTER)) == "v1"


def test_local_store_rejects_keys_escaping_the_root(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ValueError, match="escapes"):
        store.write_bytes("../outside.txt", b"x")
    store.write_bytes("a/b.txt", b"hello")
    assert store.read_bytes("a/b.txt") == b"hello"
    assert store.list("a/") == ["a/b.txt"] and store.list("nothing/") == []


def test_a_missing_local_dataset_is_a_clear_error(tmp_path):
    from training.cli import main as training_main

    with pytest.raises(SystemExit, match=r"no dataset at .*nowhere.*kaggle\.com"):
        training_main(["prepare", "--data", str(tmp_path / "nowhere"), "--work-dir", str(tmp_path / "work")])
