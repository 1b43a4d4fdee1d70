"""Where a decision files an object in the processed bucket: the naming
rules of the layout ``<category-slug>/<name>``, ``review/<category-slug>/<name>``,
``rejected/<name>``, cut to Cloud Storage's name limit, and the fallback name
carrying the generation. Strings only: no clients here."""

from __future__ import annotations

import hashlib

from shared.labels import slugify
from shared.records import CLASSIFIED, GCS_NAME_LIMIT, REJECTED


def split_extension(base: str) -> tuple[str, str]:
    """``"x.jpg"`` -> ``("x", ".jpg")``; no extension (or a dotfile, or a
    "suffix" too long to be one) -> ``(base, "")``."""
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem or len(extension) > 8:
        return base, ""
    return stem, "." + extension


def fit(name: str) -> str:
    """``name``, or when it is longer than Cloud Storage allows (1024 UTF-8
    bytes), its start cut to fit (never inside a character) and a hash of the
    whole name plus the extension appended, so that different long names stay
    different. The original name stays in the record and in the copy's metadata."""
    encoded = name.encode()
    if len(encoded) <= GCS_NAME_LIMIT:
        return name
    extension = split_extension(name.rpartition("/")[2])[1]
    tag = f"~{hashlib.sha256(encoded).hexdigest()[:16]}{extension}"
    keep = GCS_NAME_LIMIT - len(tag.encode())
    return encoded[:keep].decode("utf-8", errors="ignore") + tag


def with_generation(name: str, generation: int) -> str:
    """The fallback destination: the generation before the extension. Built
    on the string (a path library would collapse ``//`` and drop a trailing
    ``/``, which are legal in object names)."""
    head, slash, base = name.rpartition("/")
    stem, extension = split_extension(base)
    return fit(f"{head}{slash}{stem}.{generation}{extension}")


def target(status: str, label: str | None, name: str) -> str:
    """Where a decision (``status``: classified, needs_review or rejected;
    ``label`` for the first two) files the object ``name``."""
    if status == REJECTED:
        return fit(f"rejected/{name}")
    slug = slugify(label or "")
    return fit(f"{slug}/{name}" if status == CLASSIFIED else f"review/{slug}/{name}")
