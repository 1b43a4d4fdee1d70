"""The storage object a ``google.cloud.storage.object.v1.finalized`` CloudEvent names."""

from __future__ import annotations

from shared.records import GCS_NAME_LIMIT, ObjectRef

#: Cloud Storage generations are positive signed 64-bit integers.
_MAX_GENERATION = 2**63 - 1


def _integer(value: object) -> int:
    """A JSON integer or a decimal string, as Cloud Storage sends them; not a float or a bool."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def object_from_event(data: dict) -> ObjectRef:
    """The storage object resource of a finalized event -> ObjectRef. Raises
    ValueError for anything that cannot name an object version (retrying
    cannot fix it): a name that is not a non-empty string of at most 1024
    UTF-8 bytes, a generation outside 1..2**63-1, a size that is not a
    non-negative integer."""
    try:
        bucket, name, generation = data["bucket"], data["name"], _integer(data["generation"])
        size = None if data.get("size") in (None, "") else _integer(data["size"])
        if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or name in ("", ".", ".."):
            raise ValueError("bucket and name must be non-empty strings")
        if len(name.encode()) > GCS_NAME_LIMIT:
            raise ValueError(f"the object name is longer than {GCS_NAME_LIMIT} bytes")
        if not 1 <= generation <= _MAX_GENERATION or (size is not None and size < 0):
            raise ValueError(f"generation {generation} or size {size} is out of range")
    except (KeyError, TypeError, ValueError, UnicodeError) as exc:
        raise ValueError(f"not a storage object event: {exc}") from exc
    content_type = data.get("contentType")
    return ObjectRef(
        bucket=bucket,
        name=name,
        generation=generation,
        size=size,
        content_type=content_type if isinstance(content_type, str) else None,
    )
