"""``fashionctl classify``: classify local files offline with a model folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from shared.attributes import in_order
from shared.classifier import Classifier
from shared.errors import ImageError


def folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, at any depth, sorted; whatever its name or
    extension (the content decides what a file is, when it is read). A
    symbolic link is listed even when it leads nowhere, so that it is
    reported when read rather than skipped unseen."""
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def expand(paths: Iterable[str]) -> Iterator[Path]:
    """Files named directly, and every file found under named folders. A
    path that does not exist is passed on, to be reported when read."""
    for text in paths:
        path = Path(text)
        if path.is_dir():
            yield from folder_files(path)
        else:
            yield path


def classify_files(classifier: Classifier, files: Iterable[Path], top_k: int = 3) -> Iterator[dict]:
    """One result per file: the prediction, or ``error`` and ``reason`` (an
    ImageError reason, or ``unreadable_file``) for a file that failed."""
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
    """Print one result per file (every file of a named folder, whatever its
    extension), then, as text, how many failed; returns 1 if any file failed
    or no file was found, else 0."""
    classifier = Classifier.load(model_dir)
    files = list(expand(paths))
    width = min(max([len(str(f)) for f in files] + [4]), 80)
    failed = 0
    names = in_order(classifier.manifest.attributes or {})
    if not as_json:
        print(f"model {classifier.version} ({len(classifier.labels)} classes)", file=out)
        print(f"{'file':<{width}}  {'label':<14} {'confidence':>10}{_attribute_header(names)}".rstrip(), file=out)
    for result in classify_files(classifier, files, top_k):
        failed += "error" in result
        if as_json:
            print(json.dumps(result, ensure_ascii=False), file=out, flush=True)
        elif "error" in result:
            print(f"{_short(result['file'], width):<{width}}  {'ERROR':<14} {result['error']}", file=out)
        else:
            line = f"{_short(result['file'], width):<{width}}  {result['label']:<14} {result['confidence']:>10.1%}"
            print(line + _attribute_cells(names, result.get("attributes") or {}), file=out)
    if not files:
        print("no files found", file=sys.stderr)
        return 1
    if names and not as_json:
        print("(?value: attribute left empty, below its threshold; value shown is the model's best guess)", file=out)
    if failed:
        print(f"{failed} of {len(files)} file(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


#: width of one attribute column of the text table
ATTRIBUTE_WIDTH = 14


def _attribute_header(names: list[str]) -> str:
    """One column per attribute, in ATTRIBUTES order; empty for a category-only model."""
    return "".join(f"  {name:<{ATTRIBUTE_WIDTH}}" for name in names)


def _attribute_cells(names: list[str], attributes: dict) -> str:
    """Each attribute's value; an empty one (below its threshold) as ``?best``."""
    cells = []
    for name in names:
        attr = attributes.get(name) or {}
        value = attr.get("value")
        text = value if value is not None else f"?{attr.get('best', '')}" if attr else "-"
        cells.append(f"  {text:<{ATTRIBUTE_WIDTH}}")
    return "".join(cells).rstrip() if names else ""
