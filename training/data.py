"""Prepare stage: Kaggle layout (``styles.csv`` + ``images/<id>.jpg``, and
optionally ``duplicate_groups.csv``) -> a reproducible train/val/test split
that cannot leak, and the decoded pixels.

Rules of the split (all in :func:`grouped_split`):

- stratified by class, seeded;
- pictures of one duplicate group (``duplicate_groups.csv``: ids whose
  pictures are the same photo) always land on one side;
- val and test hold only *full-size* images: both sides at least the model's
  input size (224x224 and 225x300 at 224 px), so no held-out image is an
  upscaled thumbnail; smaller images (the 60x80 thumbnails) go to training,
  or nowhere when ``small_images`` is off.

The split is saved as ``split.json`` (ids, labels, seed, rules, data
fingerprint, what was skipped and why) and published beside the model, so a
later run or a test can load exactly the same split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from shared.errors import ImageError
from shared.preprocess import prepare_image
from training.storage import Store

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GROUPS_FILE = "duplicate_groups.csv"


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
    rules: dict[str, Any] = field(default_factory=dict)  # how held-out images were chosen
    #: several sources (training/sources.py): name -> {"uri", "weight", "rule", "counts"}; empty: the base only
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        extra = {"sources": self.sources} if self.sources else {}
        return json.dumps(
            {
                **extra,
                "labels": self.labels,
                "seed": self.seed,
                "fractions": self.fractions,
                "source": self.source,
                "fingerprint": self.fingerprint,
                "rules": self.rules,
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
            rules=data.get("rules", {}),
            sources=data.get("sources", {}),
        )


@dataclass
class Dataset:
    """Decoded model inputs for each split, in split order."""

    split: Split
    pixels: dict[str, np.ndarray]  # split -> (N, size, size, 3) uint8
    targets: dict[str, np.ndarray]  # split -> (N,) int class index
    #: the attribute heads' labels (issue 19; :func:`with_attributes`), their
    #: targets in the same row order as ``pixels``; None: category only
    attributes: AttributeLabels | None = None

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


def read_groups(data: bytes) -> dict[str, str]:
    """``duplicate_groups.csv`` bytes (columns ``group`` and ``id``) -> {id: group}."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    if not reader.fieldnames or not {"group", "id"} <= set(reader.fieldnames):
        raise ValueError(f"{GROUPS_FILE} needs 'group' and 'id' columns")
    return {row["id"].strip(): row["group"].strip() for row in reader if row.get("id") and row.get("group")}


def top_classes(rows: list[tuple[str, str]], n: int) -> list[str]:
    """The ``n`` most frequent labels, ties broken by name; returned sorted by name."""
    counts = Counter(label for _, label in rows)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted(label for label, _ in ranked[:n])


def grouped_split(
    rows: list[tuple[str, str]],
    labels: list[str],
    *,
    seed: int,
    val: float,
    test: float,
    groups: dict[str, str] | None = None,
    held_out_ok: set[str] | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """Cut ``rows`` ([(id, label)]) into train/val/test.

    Per class, the units are duplicate groups (``groups``: id -> group name;
    an id in no group is a unit of its own). Units whose every image is in
    ``held_out_ok`` (default: all) are shuffled with a seeded RNG and cut:
    ``round(n * test)`` units to test, ``round(n * val)`` to val, the rest to
    train; other units go to train. A group whose images carry different
    labels never goes to val or test. With no groups and every image allowed,
    this is a plain per-class stratified split.
    """
    groups = groups or {}
    rng = np.random.default_rng(seed)
    label_of = dict(rows)
    units: dict[str, list[str]] = {}
    for image_id, _ in rows:
        units.setdefault(groups.get(image_id, f"id:{image_id}"), []).append(image_id)
    mixed = {key for key, ids in units.items() if len({label_of[i] for i in ids}) > 1}
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for label in labels:
        mine = [sorted(ids, key=_id_sort_key) for key, ids in units.items() if label_of[ids[0]] == label and key not in mixed]
        mine.sort(key=lambda ids: _id_sort_key(ids[0]))
        eligible = [ids for ids in mine if held_out_ok is None or all(i in held_out_ok for i in ids)]
        rest = [ids for ids in mine if not (held_out_ok is None or all(i in held_out_ok for i in ids))]
        order = rng.permutation(len(eligible))
        n_test, n_val = round(len(eligible) * test), round(len(eligible) * val)
        picked = [eligible[k] for k in order]
        out["test"] += [(i, label) for ids in picked[:n_test] for i in ids]
        out["val"] += [(i, label) for ids in picked[n_test : n_test + n_val] for i in ids]
        out["train"] += [(i, label) for ids in picked[n_test + n_val :] + rest for i in ids]
    for key in sorted(mixed):
        out["train"] += [(i, label_of[i]) for i in sorted(units[key], key=_id_sort_key) if label_of[i] in labels]
    return out


def stratified_split(
    rows: list[tuple[str, str]], labels: list[str], *, seed: int, val: float, test: float
) -> dict[str, list[tuple[str, str]]]:
    """Shuffle each class with a seeded RNG and cut it into train/val/test
    (:func:`grouped_split` with no groups and every image allowed)."""
    return grouped_split(rows, labels, seed=seed, val=val, test=test)


def _id_sort_key(image_id: str) -> tuple[int, str]:
    return (int(image_id), image_id) if image_id.isdigit() else (1 << 62, image_id)


class Progress:
    """Structured progress lines: done/total, items per second and ETA."""

    def __init__(self, stage: str, what: str, total: int, every: float = 10.0) -> None:
        self.stage, self.what, self.total, self.every = stage, what, total, every
        self.start = self._last = time.perf_counter()

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.every and done != self.total:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        log.info(
            "%s: %d/%d %s, %.0f/s, ETA %.0f s",
            self.stage,
            done,
            self.total,
            self.what,
            rate,
            eta,
            extra={"stage": self.stage, "done": done, "total": self.total, "per_second": round(rate, 1), "eta_s": round(eta)},
        )


def prepare(
    store: Store,
    *,
    size: int,
    top_n: int = 10,
    seed: int = 42,
    val: float = 0.15,
    test: float = 0.15,
    small_images: bool = True,
) -> Dataset:
    """Read, filter, decode and split the data under ``store``.

    ``size``: model input in pixels; an image smaller than ``size`` on either
    side is never held out (val/test), and with ``small_images`` off it is
    left out of training too (counted in ``skipped`` as ``small_image``;
    val and test stay the same).
    """
    rows, malformed = read_styles(store.read_bytes("styles.csv"))
    labels = top_classes(rows, top_n)
    wanted = [(i, lab) for i, lab in rows if lab in set(labels)]
    available = {key.removeprefix("images/") for key in store.list("images/")}
    groups = read_groups(store.read_bytes(GROUPS_FILE)) if store.exists(GROUPS_FILE) else {}
    log.info(
        "prepare: reading images",
        extra={
            "stage": "prepare",
            "rows": len(rows),
            "classes": labels,
            "candidates": len(wanted),
            "duplicate_groups": len(set(groups.values())),
            "source": store.uri,
        },
    )

    skipped: Counter[str] = Counter()
    if malformed:
        skipped["malformed_row"] = malformed
    pixels: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    kept: list[tuple[str, str]] = []
    full_size: set[str] = set()
    progress = Progress("prepare", "images", len(wanted))
    for n, (image_id, label) in enumerate(wanted, 1):
        name = f"{image_id}.jpg"
        if name not in available:
            skipped["missing_image"] += 1
            continue
        data = store.read_bytes(f"images/{name}")
        try:
            decoded = prepare_image(data, size)
        except ImageError as exc:
            skipped[f"unreadable_image:{exc.reason}"] += 1
            continue
        pixels[image_id] = decoded
        kept.append((image_id, label))
        if min(_image_size(data)) >= size:
            full_size.add(image_id)
        digest.update(f"{image_id}\t{label}\t{hashlib.sha256(data).hexdigest()}\n".encode())
        progress.update(n)
    progress.update(len(wanted), force=True)

    items = grouped_split(kept, labels, seed=seed, val=val, test=test, groups=groups, held_out_ok=full_size)
    if not small_images:  # the same val and test splits either way; only training loses them
        skipped["small_image"] = sum(i not in full_size for i, _ in items["train"])
        items["train"] = [(i, label) for i, label in items["train"] if i in full_size]
    split = Split(
        labels=labels,
        seed=seed,
        fractions={"train": round(1 - val - test, 4), "val": val, "test": test},
        items=items,
        skipped=dict(skipped),
        fingerprint=digest.hexdigest(),
        source=store.uri,
        rules={
            "held_out": f"only images at least {size}x{size} px (both sides >= the input size)",
            "held_out_min_side": size,
            "fractions_of": "each class's units (duplicate groups or single images) that may be held out",
            "duplicate_groups": len(set(groups.values())),
            "groups_file": GROUPS_FILE if groups else None,
            "small_images_in_train": small_images,
            "full_size_images": len(full_size),
            "small_images": len(kept) - len(full_size),
        },
    )
    log.info(
        "prepare: done",
        extra={"stage": "prepare", "kept": len(kept), "skipped": dict(skipped), "counts": {k: len(v) for k, v in items.items()}},
    )
    return materialize(split, pixels)


def _image_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the header of an image that
    ``prepare_image`` already decoded."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def materialize(split: Split, pixels_by_id: dict[str, np.ndarray]) -> Dataset:
    index = {label: k for k, label in enumerate(split.labels)}
    pixels, targets = {}, {}
    for name in SPLITS:
        rows = split.items[name]
        pixels[name] = np.stack([pixels_by_id[i] for i, _ in rows]) if rows else np.zeros((0, 1, 1, 3), np.uint8)
        targets[name] = np.array([index[label] for _, label in rows], dtype=np.int64)
    return Dataset(split=split, pixels=pixels, targets=targets)


def load_split(
    store: Store, split: Split, *, size: int, names: tuple[str, ...] = SPLITS, stores: dict[str, Store] | None = None
) -> Dataset:
    """Decode exactly the images a saved split names (to reproduce a run);
    ``names`` limits it to some splits (the others come back empty).
    ``store``: the base source's images; ``stores``: the other sources'
    (source name -> store; default: the locations the split lists)."""
    from training import sources as src

    if split.sources and stores is None:
        stores = src.stores_of(split)
    stores = {**(stores or {}), src.BASE: store}
    pixels = {
        image_id: prepare_image(stores[src.source_of(image_id)].read_bytes(f"images/{src.local_id(image_id)}.jpg"), size)
        for name in names
        for image_id, _ in split.items[name]
    }
    wanted = Split(**{**split.__dict__, "items": {n: (split.items[n] if n in names else []) for n in SPLITS}})
    dataset = materialize(wanted, pixels)
    dataset.split = split
    return dataset


def summary(split: Split) -> dict[str, Any]:
    return {name: len(rows) for name, rows in split.items.items()}


def read_attributes(data: bytes) -> dict[str, dict[str, str | None]]:
    """``styles.csv`` bytes -> {id: {attribute: value or None}} for every
    attribute of :data:`shared.attributes.ATTRIBUTES` (colour already mapped
    to its family; an empty cell, a missing column or an unknown colour is
    ``None``). Rows without an id are left out."""
    from shared.attributes import ATTRIBUTES, raw_value

    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise ValueError("styles.csv needs an 'id' column")
    out: dict[str, dict[str, str | None]] = {}
    for row in reader:
        image_id = (row.get("id") or "").strip()
        if image_id:
            out[image_id] = {name: raw_value(name, row.get(column)) for name, column in ATTRIBUTES.items()}
    return out


@dataclass
class AttributeLabels:
    """The attribute heads' classes and targets for one split.

    ``schema``: attribute -> {"classes": [...], "mapping": {raw value: class},
    "class_weights": [...], "min_count": int}, decided on the *train* split
    only; ``targets``: split -> attribute -> ``(N,)`` int64 class index in
    split order, ``-1`` where the label is missing or dropped (masked out of
    the loss and of the metrics)."""

    schema: dict[str, dict[str, Any]]
    targets: dict[str, dict[str, np.ndarray]]

    def names(self) -> list[str]:
        return list(self.schema)


def attribute_labels(values: dict[str, dict[str, str | None]], split: Split, *, min_count: int | None = None) -> AttributeLabels:
    """Vocabulary (rare rule, class weights) from the train split's values,
    then targets for every split. ``values``: :func:`read_attributes`'s
    output; an id it lacks has every attribute missing. An attribute left
    with fewer than two classes is left out (no head for it)."""
    from shared.attributes import ATTRIBUTES, MIN_COUNT, attribute_vocabulary, class_weights, classes_of

    min_count = MIN_COUNT if min_count is None else min_count
    schema: dict[str, dict[str, Any]] = {}
    targets: dict[str, dict[str, np.ndarray]] = {name: {} for name in SPLITS}
    for attribute in ATTRIBUTES:
        train_values = [values.get(i, {}).get(attribute) for i, _ in split.items["train"]]
        mapping = attribute_vocabulary(train_values, attribute, min_count=min_count)
        classes = classes_of(mapping)
        if len(classes) < 2:
            continue
        index = {label: k for k, label in enumerate(classes)}
        for name in SPLITS:
            targets[name][attribute] = np.array(
                [index.get(mapping.get(values.get(i, {}).get(attribute) or ""), -1) for i, _ in split.items[name]],
                dtype=np.int64,
            )
        schema[attribute] = {
            "classes": classes,
            "mapping": dict(sorted(mapping.items())),
            "class_weights": class_weights(targets["train"][attribute], len(classes)),
            "min_count": min_count,
        }
    return AttributeLabels(schema=schema, targets=targets)


def attribute_values(split: Split, store: Store, stores: dict[str, Store] | None = None) -> dict[str, dict[str, str | None]]:
    """{image id: {attribute: value}} for every source of ``split``: the
    base's ``styles.csv`` in ``store``, an added source's (``stores``: source
    name -> store; default: the locations the split lists) under its
    combined ids (``<source>:<id>``). A source without a ``styles.csv``
    contributes nothing (its labels are missing)."""
    from training import sources as src

    values = read_attributes(store.read_bytes("styles.csv"))
    others = {name: s for name, s in (stores or {}).items() if name != src.BASE}
    if split.sources and stores is None:
        others = {name: s for name, s in src.stores_of(split).items() if name != src.BASE}
    for name, other in others.items():
        if other.exists("styles.csv"):
            for image_id, row in read_attributes(other.read_bytes("styles.csv")).items():
                values[f"{name}{src.SEPARATOR}{image_id}"] = row
    return values


def with_attributes(dataset: Dataset, values: dict[str, dict[str, str | None]]) -> Dataset:
    """``dataset`` with its attribute labels (:func:`attribute_labels` over
    its split and ``values``, :func:`attribute_values`'s output) attached;
    a dataset whose data has no attribute with two classes gets an empty
    schema (no heads)."""
    return Dataset(
        split=dataset.split, pixels=dataset.pixels, targets=dataset.targets, attributes=attribute_labels(values, dataset.split)
    )
