"""``fashionctl classify``: classify local files offline with a model folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from shared.classifier import Classifier
from shared.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def expand(paths: Iterable[str]) -> Iterator[Path]:
    """Files named directly, and image files found under named folders."""
    for text in paths:
        path = Path(text)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def classify_files(classifier: Classifier, files: Iterable[Path], top_k: int = 3) -> Iterator[dict]:
    for path in files:
        try:
            prediction = classifier.classify(path.read_bytes(), top_k=top_k)
        except ImageError as exc:
            yield {"file": str(path), "error": exc.message, "reason": exc.reason}
        except OSError as exc:
            yield {"file": str(path), "error": exc.strerror or str(exc), "reason": "unreadable_file"}
        else:
            yield {"file": str(path), **prediction.to_dict()}


def run(model_dir: str, paths: list[str], *, as_json: bool, top_k: int = 3, out: TextIO = sys.stdout) -> int:
    """Print one result per file; returns 1 if any file failed, else 0."""
    classifier = Classifier.load(model_dir)
    files = list(expand(paths))
    width = min(max([len(str(f)) for f in files] + [4]), 80)
    failed = 0
    if not as_json:
        print(f"model {classifier.version} ({len(classifier.labels)} classes)", file=out)
        print(f"{'file':<{width}}  {'label':<14} {'confidence':>10}", file=out)
    for result in classify_files(classifier, files, top_k):
        failed += "error" in result
        if as_json:
            print(json.dumps(result, ensure_ascii=False), file=out, flush=True)
        elif "error" in result:
            print(f"{_short(result['file'], width):<{width}}  {'ERROR':<14} {result['error']}", file=out)
        else:
            print(f"{_short(result['file'], width):<{width}}  {result['label']:<14} {result['confidence']:>10.1%}", file=out)
    return 1 if failed else 0


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
