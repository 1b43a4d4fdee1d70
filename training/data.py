"""Prepare stage: Kaggle layout (``styles.csv`` + ``images/<id>.jpg``) ->
a reproducible, stratified train/val/test split and the decoded pixels.

The split is saved as ``split.json`` (ids, labels, seed, data fingerprint, what
was skipped and why), so a later run can load exactly the same split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.errors import ImageError
from shared.preprocess import prepare_image
from training.storage import Store

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """Which image ids go where; everything needed to reproduce a run."""

    labels: list[str]
    seed: int
    fractions: dict[str, float]
    items: dict[str, list[tuple[str, str]]]  # split -> [(id, label)]
    skipped: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "labels": self.labels,
                "seed": self.seed,
                "fractions": self.fractions,
                "source": self.source,
                "fingerprint": self.fingerprint,
                "skipped": self.skipped,
                "counts": {name: len(rows) for name, rows in self.items.items()},
                "items": {name: [list(row) for row in rows] for name, rows in self.items.items()},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Split:
        data = json.loads(text)
        return cls(
            labels=data["labels"],
            seed=data["seed"],
            fractions=data["fractions"],
            items={name: [tuple(row) for row in rows] for name, rows in data["items"].items()},
            skipped=data.get("skipped", {}),
            fingerprint=data.get("fingerprint", ""),
            source=data.get("source", ""),
        )


@dataclass
class Dataset:
    """Decoded model inputs for each split, in split order."""

    split: Split
    pixels: dict[str, np.ndarray]  # split -> (N, size, size, 3) uint8
    targets: dict[str, np.ndarray]  # split -> (N,) int class index

    def class_counts(self, name: str) -> dict[str, int]:
        counts = np.bincount(self.targets[name], minlength=len(self.split.labels))
        return {label: int(n) for label, n in zip(self.split.labels, counts, strict=True)}


def read_styles(data: bytes) -> tuple[list[tuple[str, str]], int]:
    """``styles.csv`` bytes -> [(id, articleType)] and the count of malformed rows.

    Reads columns by name, so the extra columns of some copies do not matter;
    rows with too few fields (the Kaggle file has a few) are counted, not fatal.
    """
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    header = next(reader, None)
    if not header or "id" not in header or "articleType" not in header:
        raise ValueError("styles.csv needs 'id' and 'articleType' columns")
    id_col, type_col = header.index("id"), header.index("articleType")
    rows, malformed = [], 0
    for row in reader:
        if len(row) <= max(id_col, type_col) or not row[id_col].strip() or not row[type_col].strip():
            malformed += 1
            continue
        rows.append((row[id_col].strip(), row[type_col].strip()))
    return rows, malformed


def top_classes(rows: list[tuple[str, str]], n: int) -> list[str]:
    """The ``n`` most frequent labels, ties broken by name; returned sorted by name."""
    counts = Counter(label for _, label in rows)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted(label for label, _ in ranked[:n])


def stratified_split(
    rows: list[tuple[str, str]], labels: list[str], *, seed: int, val: float, test: float
) -> dict[str, list[tuple[str, str]]]:
    """Shuffle each class with a seeded RNG and cut it into train/val/test."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for label in labels:
        ids = sorted((i for i, lab in rows if lab == label), key=_id_sort_key)
        order = rng.permutation(len(ids))
        n_test = round(len(ids) * test)
        n_val = round(len(ids) * val)
        picked = [ids[k] for k in order]
        out["test"] += [(i, label) for i in picked[:n_test]]
        out["val"] += [(i, label) for i in picked[n_test : n_test + n_val]]
        out["train"] += [(i, label) for i in picked[n_test + n_val :]]
    return out


def _id_sort_key(image_id: str) -> tuple[int, str]:
    return (int(image_id), image_id) if image_id.isdigit() else (1 << 62, image_id)


def prepare(
    store: Store,
    *,
    size: int,
    top_n: int = 10,
    seed: int = 42,
    val: float = 0.15,
    test: float = 0.15,
) -> Dataset:
    """Read, filter, decode and split the data under ``store``."""
    rows, malformed = read_styles(store.read_bytes("styles.csv"))
    labels = top_classes(rows, top_n)
    wanted = [(i, lab) for i, lab in rows if lab in set(labels)]
    available = {key.removeprefix("images/") for key in store.list("images/")}
    log.info(
        "prepare: reading images",
        extra={"stage": "prepare", "rows": len(rows), "classes": labels, "candidates": len(wanted), "source": store.uri},
    )

    skipped: Counter[str] = Counter()
    if malformed:
        skipped["malformed_row"] = malformed
    pixels: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    kept: list[tuple[str, str]] = []
    for n, (image_id, label) in enumerate(wanted, 1):
        name = f"{image_id}.jpg"
        if name not in available:
            skipped["missing_image"] += 1
            continue
        data = store.read_bytes(f"images/{name}")
        try:
            pixels[image_id] = prepare_image(data, size)
        except ImageError as exc:
            skipped[f"unreadable_image:{exc.reason}"] += 1
            continue
        kept.append((image_id, label))
        digest.update(f"{image_id}\t{label}\t{hashlib.sha256(data).hexdigest()}\n".encode())
        if n % 250 == 0 or n == len(wanted):
            log.info("prepare: %d/%d images", n, len(wanted), extra={"stage": "prepare", "done": n, "total": len(wanted)})

    items = stratified_split(kept, labels, seed=seed, val=val, test=test)
    split = Split(
        labels=labels,
        seed=seed,
        fractions={"train": round(1 - val - test, 4), "val": val, "test": test},
        items=items,
        skipped=dict(skipped),
        fingerprint=digest.hexdigest(),
        source=store.uri,
    )
    log.info(
        "prepare: done",
        extra={"stage": "prepare", "kept": len(kept), "skipped": dict(skipped), "counts": {k: len(v) for k, v in items.items()}},
    )
    return materialize(split, pixels)


def materialize(split: Split, pixels_by_id: dict[str, np.ndarray]) -> Dataset:
    index = {label: k for k, label in enumerate(split.labels)}
    pixels, targets = {}, {}
    for name in SPLITS:
        rows = split.items[name]
        pixels[name] = np.stack([pixels_by_id[i] for i, _ in rows]) if rows else np.zeros((0, 1, 1, 3), np.uint8)
        targets[name] = np.array([index[label] for _, label in rows], dtype=np.int64)
    return Dataset(split=split, pixels=pixels, targets=targets)


def load_split(store: Store, split: Split, *, size: int) -> Dataset:
    """Decode exactly the images a saved split names (to reproduce a run)."""
    pixels = {
        image_id: prepare_image(store.read_bytes(f"images/{image_id}.jpg"), size)
        for rows in split.items.values()
        for image_id, _ in rows
    }
    return materialize(split, pixels)


def summary(split: Split) -> dict[str, Any]:
    return {name: len(rows) for name, rows in split.items.items()}
