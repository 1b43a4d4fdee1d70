"""shared.manifest: the model manifest's round trip and validation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ModelError
from shared.manifest import INPUT_DTYPES, SCHEMA_VERSION, Manifest, read_manifest, sha256_bytes, write_manifest
from shared.preprocess import PREPROCESSING

SHA = hashlib.sha256(b"model").hexdigest()
REQUIRED = ["version", "labels", "input_size", "input_dtype", "quantization", "model_sha256"]


def make_manifest(**changes: Any) -> Manifest:
    fields: dict[str, Any] = {
        "version": "20261125-143000",
        "labels": ["Casual Shoes", "Handbags", "Tshirts"],
        "input_size": 224,
        "input_dtype": "uint8",
        "quantization": {"type": "int8", "input": {"scale": 1.0, "zero_point": 0}},
        "model_sha256": SHA,
        "base_network": {"name": "MobileNetV2", "alpha": 0.35},
        "training_data": {"fingerprint": "abc", "seed": 42},
        "metrics": {"accuracy": 0.91},
        "created_at": "2026-11-25T14:30:00+00:00",
    }
    fields.update(changes)
    return Manifest(**fields)


def valid_dict(**changes: Any) -> dict[str, Any]:
    data = make_manifest().to_dict()
    data.update(changes)
    return data


# -- round trip ---------------------------------------------------------------


def test_write_read_round_trip(tmp_path: Path) -> None:
    manifest = make_manifest()
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    assert read_manifest(path) == manifest


def test_dict_and_json_round_trip() -> None:
    manifest = make_manifest()
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_json_is_stable_and_ends_with_a_newline() -> None:
    text = make_manifest().to_json()
    assert text.endswith("}\n")
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert make_manifest().to_json() == text


def test_defaults() -> None:
    manifest = make_manifest()
    assert manifest.preprocessing == PREPROCESSING
    assert manifest.preprocessing is not PREPROCESSING  # a copy, not the module's dict
    assert manifest.model_file == "model.tflite"
    assert manifest.schema_version == SCHEMA_VERSION
    manifest.validate()


@pytest.mark.parametrize("dtype", INPUT_DTYPES)
def test_every_input_dtype_is_valid(dtype: str) -> None:
    make_manifest(input_dtype=dtype).validate()


@pytest.mark.parametrize("size", [32, 224, 1024])
def test_input_size_bounds_are_inclusive(size: int) -> None:
    make_manifest(input_size=size).validate()


def test_unknown_fields_are_ignored_when_reading(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(valid_dict(added_by_a_newer_trainer={"x": 1})), encoding="utf-8")
    assert read_manifest(path) == make_manifest()


def test_sha256_bytes() -> None:
    assert sha256_bytes(b"model") == SHA
    assert sha256_bytes(b"") == hashlib.sha256(b"").hexdigest()


# -- validation ---------------------------------------------------------------

INVALID = [
    ("version", "", "version"),
    ("version", "bad version", "version"),
    ("version", "-leading-dash", "version"),
    ("version", "a/b", "version"),
    ("version", "v" * 65, "version"),
    ("version", "v1\n", "version"),
    ("version", 20261125, "version"),
    ("labels", ["Only One"], "at least two"),
    ("labels", [], "at least two"),
    ("labels", "Shirts,Tops", "at least two"),
    ("labels", ["Shirts", ""], "non-empty"),
    ("labels", ["Shirts", "   "], "non-empty"),
    ("labels", ["Shirts", 3], "strings"),
    ("labels", ["Shirts", "Tops", "Shirts"], "unique"),
    ("input_size", 31, "input_size"),
    ("input_size", 1025, "input_size"),
    ("input_size", 0, "input_size"),
    ("input_size", "224", "input_size"),
    ("input_size", 224.0, "input_size"),
    ("input_size", None, "input_size"),
    ("input_dtype", "float16", "input_dtype"),
    ("input_dtype", "int16", "input_dtype"),
    ("input_dtype", "UINT8", "input_dtype"),
    ("input_dtype", None, "input_dtype"),
    ("quantization", {}, "quantization"),
    ("quantization", None, "quantization"),
    ("quantization", "int8", "quantization"),
    ("model_sha256", "abc", "model_sha256"),
    ("model_sha256", SHA.upper(), "model_sha256"),
    ("model_sha256", SHA[:-1], "model_sha256"),
    ("model_sha256", SHA + "0", "model_sha256"),
    ("model_sha256", SHA + "\n", "model_sha256"),
    ("model_sha256", "g" * 64, "model_sha256"),
    ("model_sha256", None, "model_sha256"),
    ("preprocessing", {"name": "center-crop-float"}, "stretch-bilinear-uint8"),
    ("preprocessing", {}, "preprocessing"),
    ("preprocessing", None, "preprocessing"),
    ("schema_version", 2, "schema_version"),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID, ids=[f"{f}={v!r}" for f, v, _ in INVALID])
def test_validate_rejects(field: str, value: Any, message: str) -> None:
    with pytest.raises(ModelError, match="invalid manifest") as info:
        make_manifest(**{field: value}).validate()
    assert message in str(info.value)


@pytest.mark.parametrize(("field", "value", "message"), INVALID, ids=[f"{f}={v!r}" for f, v, _ in INVALID])
def test_reading_an_invalid_manifest_fails(tmp_path: Path, field: str, value: Any, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(valid_dict(**{field: value})), encoding="utf-8")
    with pytest.raises(ModelError) as info:
        read_manifest(path)
    assert message in str(info.value)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ModelError) as info:
        make_manifest(version="", labels=["x"], input_size=8).validate()
    text = str(info.value)
    assert "version" in text and "labels" in text and "input_size" in text


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    data = valid_dict()
    del data[field]
    with pytest.raises(ModelError, match="missing") as info:
        Manifest.from_dict(data)
    assert field in str(info.value)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match=field):
        read_manifest(path)


def test_optional_fields_may_be_missing() -> None:
    data = {key: valid_dict()[key] for key in REQUIRED}
    manifest = Manifest.from_dict(data)
    assert manifest.preprocessing == PREPROCESSING
    assert manifest.metrics == {}


@pytest.mark.parametrize("data", [[], None, "manifest", 3])
def test_from_dict_needs_an_object(data: Any) -> None:
    with pytest.raises(ModelError, match="JSON object"):
        Manifest.from_dict(data)


@pytest.mark.parametrize(
    "content",
    [b"this is not json", b'{"version": ', b"", b"\xff\xfe\x00garbage", b"<html></html>"],
    ids=["text", "cut-off", "empty", "binary", "html"],
)
def test_non_json_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="not valid JSON") as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(ModelError, match="JSON object"):
        read_manifest(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "manifest.json"
    with pytest.raises(ModelError, match="no manifest") as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_write_refuses_an_invalid_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    with pytest.raises(ModelError):
        write_manifest(make_manifest(labels=["one"]), path)
    assert not path.exists()
