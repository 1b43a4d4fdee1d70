"""Category names and their bucket-safe slugs."""

from __future__ import annotations

import re


def slugify(label: str) -> str:
    """``"Casual Shoes"`` -> ``"casual-shoes"``: the prefix used in the processed bucket."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    if not slug:
        raise ValueError(f"label {label!r} has no usable characters for a slug")
    return slug
