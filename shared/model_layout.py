"""Where model artifacts live in a model store (a local folder or a bucket).

``models/<version>/model.tflite``, ``manifest.json``, ``metrics.json``,
reports and plots; ``models/current.json`` names the current version (and,
once a promotion or a rollback moved it, the ``previous`` one);
``models/candidate.json``, when present, names a candidate that serving
scores in shadow (never acted upon) until it is promoted.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import ModelError

MODELS_PREFIX = "models"
POINTER = f"{MODELS_PREFIX}/current.json"
CANDIDATE_POINTER = f"{MODELS_PREFIX}/candidate.json"
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"


#: A version is one folder name: no separators, no "." or "..", so a pointer
#: can never lead a model cache or a store outside ``models/``.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_version(version: object) -> str:
    """``version`` if it is a usable version name, else ModelError."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or set(version) == {"."}:
        raise ModelError(f"{version!r} is not a model version name (letters, digits, '.', '_' and '-', at most 128)")
    return version


def current_version(storage: Any, models_bucket: str) -> str | None:
    """The version ``models/current.json`` in ``models_bucket`` names (read
    through a google-cloud-storage client ``storage``), or None when there is
    no pointer. Raises ModelError on a malformed pointer, GoogleAPIError when
    the bucket cannot be read."""
    blob = storage.bucket(models_bucket).get_blob(POINTER)
    return parse_pointer(blob.download_as_bytes()) if blob is not None else None


def version_prefix(version: str) -> str:
    return f"{MODELS_PREFIX}/{version}/"


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique-per-second version name such as ``20261125-143000``."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S")


def pointer_payload(version: str, now: datetime | None = None, *, previous: str | None = None) -> str:
    """A pointer's JSON: ``version``, ``updated_at`` and, when given, the
    ``previous`` version it replaced (what a rollback goes back to)."""
    check_version(version)
    now = now or datetime.now(UTC)
    data = {"version": version, "updated_at": now.isoformat()}
    if previous is not None:
        data["previous"] = check_version(previous)
    return json.dumps(data, indent=2) + "\n"


def pointer_previous(data: bytes | str) -> str | None:
    """The ``previous`` version a pointer names, or None (none recorded)."""
    try:
        previous = json.loads(data).get("previous")
    except (ValueError, AttributeError) as exc:
        raise ModelError(f"the pointer is unreadable: {exc}") from exc
    return check_version(previous) if previous is not None else None


def parse_pointer(data: bytes | str) -> str:
    try:
        version = json.loads(data)["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"the current-model pointer is unreadable: {exc}") from exc
    if not isinstance(version, str) or not version:
        raise ModelError("the current-model pointer names no version")
    return check_version(version)


def resolve_model_dir(path: Path) -> Path:
    """Accept a version folder (holding manifest.json) or a store root
    (holding models/current.json) and return the version folder."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return path
    pointer = path / POINTER
    if pointer.is_file():
        version_dir = path / MODELS_PREFIX / parse_pointer(pointer.read_bytes())
        if not (version_dir / MANIFEST_FILE).is_file():
            raise ModelError(f"{pointer} names a version with no manifest: {version_dir}")
        return version_dir
    raise ModelError(f"{path} holds no model: expected {MANIFEST_FILE} or {POINTER} in it")
