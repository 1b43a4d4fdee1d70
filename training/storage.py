"""A tiny object-store interface over a local folder or a ``gs://`` bucket,
so every stage reads and writes the same way wherever it runs."""

from __future__ import annotations

import contextlib
import mimetypes
from pathlib import Path
from typing import Protocol


class Store(Protocol):
    uri: str

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...


class LocalStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    @property
    def _real_root(self) -> Path:
        """The root with symbolic links resolved (a root reached through a
        link is fine; keys are checked and listed against where it leads)."""
        return self.root.resolve()

    def _path(self, key: str) -> Path:
        root = self._real_root
        path = (root / key).resolve()
        if root not in path.parents and path != root:
            raise ValueError(f"key {key!r} escapes the store root")
        return path

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: readers never see half a file

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is absent."""
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        root = self._real_root
        base = self._path(prefix) if prefix else root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())


class GcsStore:
    def __init__(self, uri: str, client: object | None = None) -> None:
        from google.cloud import storage

        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} names no bucket")
        self.uri = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        self.bucket = (client or storage.Client()).bucket(bucket)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return self.bucket.blob(self._name(key)).download_as_bytes()
        except NotFound as exc:
            raise FileNotFoundError(f"{self.uri}/{key}") from exc

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.bucket.blob(self._name(key)).upload_from_string(data, content_type=content_type)

    def exists(self, key: str) -> bool:
        return self.bucket.blob(self._name(key)).exists()

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is absent."""
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self.bucket.blob(self._name(key)).delete()

    def list(self, prefix: str = "") -> list[str]:
        full = self._name(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(b.name[cut:] for b in self.bucket.list_blobs(prefix=full))


def open_store(location: str | Path) -> Store:
    """``gs://bucket/prefix`` -> GcsStore; anything else -> LocalStore."""
    text = str(location)
    if text.startswith("gs://"):
        return GcsStore(text)
    return LocalStore(Path(text))
