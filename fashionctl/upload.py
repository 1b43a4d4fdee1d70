"""``fashionctl upload``: put image files into the incoming bucket through
google-cloud-storage (the emulator's when ``STORAGE_EMULATOR_HOST`` is set,
the real one with default credentials otherwise)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fashionctl.classify import folder_files
from shared.imaging import SNIFF_BYTES, SUPPORTED_NAMES, sniff


@dataclass(frozen=True)
class UploadTarget:
    bucket: str
    project: str | None = None
    storage_url: str | None = None  # the emulator's http://host:port; None: the real service

    @classmethod
    def from_env(cls, environ: Mapping[str, str], bucket: str | None = None) -> UploadTarget:
        bucket = bucket or environ.get("INCOMING_BUCKET")
        if not bucket:
            raise ValueError("no bucket: pass --bucket, set INCOMING_BUCKET, or start the stack (`fashionctl up`)")
        return cls(bucket=bucket, project=environ.get("GOOGLE_CLOUD_PROJECT"), storage_url=environ.get("STORAGE_EMULATOR_HOST"))


def find_files(paths: Iterable[str]) -> list[tuple[Path, str]]:
    """(file, object name relative to its folder) for every file under
    folders, whatever its name, and for files named directly."""
    found = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found.extend((p, p.relative_to(path).as_posix()) for p in folder_files(path))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def content_type(path: Path) -> str | None:
    """The MIME type of ``path`` from its first bytes (a HEIC called
    ``.jpg`` is ``image/heic``), or None when they are not those of a
    supported image. Raises OSError when the file cannot be read."""
    with path.open("rb") as file:
        kind = sniff(file.read(SNIFF_BYTES))
    return kind[1] if kind else None


def client_for(target: UploadTarget) -> Any:
    from google.cloud import storage

    if target.storage_url:
        from localcloud.clients import storage_client

        return storage_client(target.storage_url, target.project or "demo-fashion")
    return storage.Client(project=target.project)


def run(paths: list[str], target: UploadTarget, *, prefix: str = "", out: TextIO | None = None) -> int:
    """Upload every file found; prints one line per file. A file whose
    content is not an image (whatever its name) is reported and not
    uploaded. Returns 1 if any file was not uploaded, else 0."""
    from google.api_core.exceptions import GoogleAPIError

    out = out or sys.stdout  # looked up per call (a test's captured stdout)
    files = find_files(paths)
    if not files:
        print("no files found", file=out)
        return 1
    bucket = client_for(target).bucket(target.bucket)
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    where = target.storage_url or "Cloud Storage"
    print(f"uploading {len(files)} file(s) to gs://{target.bucket}/{prefix} ({where})", file=out, flush=True)
    failed = 0
    total = 0
    started = time.monotonic()
    for index, (path, name) in enumerate(files, 1):
        key = prefix + name
        try:
            if path.stat().st_size == 0:
                failed += 1
                print(f"[{index}/{len(files)}] NOT UPLOADED {path}: the file is empty", file=out, flush=True)
                continue
            mime = content_type(path)
            if mime is None:
                failed += 1
                print(f"[{index}/{len(files)}] NOT UPLOADED {path}: not an image ({SUPPORTED_NAMES})", file=out, flush=True)
                continue
            bucket.blob(key).upload_from_filename(str(path), content_type=mime)
        except (GoogleAPIError, OSError) as exc:
            failed += 1
            print(f"[{index}/{len(files)}] FAILED {path}: {exc}", file=out, flush=True)
            continue
        size = path.stat().st_size
        total += size
        print(f"[{index}/{len(files)}] {path} -> gs://{target.bucket}/{key} ({size / 1024:.1f} KiB)", file=out, flush=True)
    seconds = time.monotonic() - started
    print(
        f"uploaded {len(files) - failed} of {len(files)} file(s), {total / 1024:.1f} KiB in {seconds:.1f} s; {failed} not uploaded",
        file=out,
    )
    return 1 if failed else 0
