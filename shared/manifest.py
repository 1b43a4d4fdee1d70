"""The model manifest: what a model is, how to feed it, and how good it is.

``manifest.json`` travels beside ``model.tflite`` in ``models/<version>/``;
serving reads labels, input size, dtype and quantization from it (nothing is
hard-coded) and checks the model file's sha256 against it before use.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ModelError
from shared.preprocess import PREPROCESSING
from shared.thresholds import from_manifest as thresholds_from_manifest

SCHEMA_VERSION = 1
INPUT_DTYPES = ("uint8", "int8", "float32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Manifest:
    version: str
    labels: list[str]
    input_size: int
    input_dtype: str
    quantization: dict[str, Any]
    model_sha256: str
    base_network: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(PREPROCESSING))
    created_at: str = ""
    model_file: str = "model.tflite"
    schema_version: int = SCHEMA_VERSION
    #: per-class thresholds measured on the validation split (training/thresholds.py,
    #: read by shared/thresholds.py): {"classes": {label: {"auto", "check", ...}}, ...};
    #: empty in manifests written before them (serving then uses CONFIDENCE_THRESHOLD)
    thresholds: dict[str, Any] = field(default_factory=dict)
    #: attribute heads (issue 19; shared/attributes.py): attribute name ->
    #: {"labels": [...], "output": TFLite signature output name, "threshold":
    #: score 0..1 below which the attribute is left empty}, in head order;
    #: empty in manifests and models without attribute heads (category only)
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise ModelError("manifest must be a JSON object")
        known = set(cls.__dataclass_fields__)
        missing = {"version", "labels", "input_size", "input_dtype", "quantization", "model_sha256"} - set(data)
        if missing:
            raise ModelError(f"manifest is missing {sorted(missing)}")
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Raise ModelError naming the first problem found."""
        problems = []
        if not isinstance(self.version, str) or not _VERSION.fullmatch(self.version):
            problems.append(f"version {self.version!r} is not a valid version name")
        if (
            not isinstance(self.labels, list)
            or len(self.labels) < 2
            or not all(isinstance(x, str) and x.strip() for x in self.labels)
        ):
            problems.append("labels must be a list of at least two non-empty strings")
        elif len(set(self.labels)) != len(self.labels):
            problems.append("labels must be unique")
        if not isinstance(self.input_size, int) or not 32 <= self.input_size <= 1024:
            problems.append(f"input_size {self.input_size!r} must be an integer in [32, 1024]")
        if self.input_dtype not in INPUT_DTYPES:
            problems.append(f"input_dtype {self.input_dtype!r} must be one of {INPUT_DTYPES}")
        if not isinstance(self.quantization, dict) or "type" not in self.quantization:
            problems.append("quantization must be an object with a 'type'")
        if not isinstance(self.model_sha256, str) or not _SHA256.fullmatch(self.model_sha256):
            problems.append("model_sha256 must be 64 lowercase hex digits")
        if not isinstance(self.preprocessing, dict) or self.preprocessing.get("name") != PREPROCESSING["name"]:
            problems.append(f"preprocessing {self.preprocessing!r} is not the one this code implements ({PREPROCESSING['name']})")
        if isinstance(self.labels, list):
            try:
                thresholds_from_manifest(self.thresholds, self.labels)
            except ValueError as exc:
                problems.append(str(exc))
        problems += attribute_problems(self.attributes)
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema_version {self.schema_version!r} is not {SCHEMA_VERSION}")
        if problems:
            raise ModelError("invalid manifest: " + "; ".join(problems))


def attribute_problems(attributes: Any) -> list[str]:
    """What is wrong with a manifest's ``attributes`` (empty list: nothing)."""
    if not isinstance(attributes, dict):
        return ["attributes must be an object"]
    problems = []
    for name, head in attributes.items():
        if not isinstance(head, dict):
            problems.append(f"attribute {name!r} must be an object")
            continue
        labels = head.get("labels")
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x.strip() for x in labels):
            problems.append(f"attribute {name!r} labels must be a list of at least two non-empty strings")
        elif len(set(labels)) != len(labels):
            problems.append(f"attribute {name!r} labels must be unique")
        if not isinstance(head.get("output"), str) or not head["output"]:
            problems.append(f"attribute {name!r} needs the name of its model output")
        threshold = head.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            problems.append(f"attribute {name!r} threshold {threshold!r} must be a number in [0, 1]")
    return problems


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(manifest: Manifest, path: Path) -> None:
    manifest.validate()
    Path(path).write_text(manifest.to_json(), encoding="utf-8")


def read_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"no manifest at {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"manifest at {path} is not valid JSON: {exc}") from exc
    try:
        return Manifest.from_dict(data)
    except TypeError as exc:
        raise ModelError(f"manifest at {path} has unexpected fields: {exc}") from exc
