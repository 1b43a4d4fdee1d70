"""Several data sources in one training run: the base dataset (``--data``)
plus exports of the retailer's results (``--source path[:weight]``), each in
the Kaggle layout (``styles.csv`` + ``images/``).

The evaluation split is carved once per source and then kept fixed:

- the base source keeps the base rules (:func:`training.data.prepare`:
  seeded, stratified, duplicate groups, full-size held-out images), which
  give the same split for the same data and seed; with a previous split
  (``--split-from``, e.g. the current model's ``split.json``) its base items
  are taken as they are;
- an added source assigns each image by a hash of its bytes (sha256): the
  first 8 hex digits as a fraction in [0, 1) below ``test`` -> test, below
  ``test + val`` -> val, else train. An image's side depends on nothing but
  its own content, so a later export (more records, other filters) never
  moves an image across the split, and the same photo uploaded twice (two
  records) lands on the same side. A previous split's assignment, when it
  names the image, wins (so a change of fractions cannot move it either);
- an image whose bytes are held out (val or test) in any source is dropped
  from every source's training side (``held_out_elsewhere``).

Ids: base ids as they are; an added source's ids are ``<source name>:<id>``.
The split (``split.json``) lists every source with its location, weight and
rule under ``sources``; accuracy is reported per source, and the quality gate
compares per source (:func:`training.publish.source_gate`).

Weights: an added source's training images are repeated ``weight`` times
per epoch (a fractional part repeats that share of them, chosen with the
seed): a sampling ratio, applied by :func:`weighted_train`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from shared.errors import ImageError
from shared.preprocess import prepare_image
from training import data as data_stage
from training.storage import Store, open_store

log = logging.getLogger(__name__)

BASE = "base"
SEPARATOR = ":"
HASH_RULE = "sha256 of the image bytes: the first 8 hex digits / 16**8 < test -> test, < test + val -> val, else train"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Source:
    """An added data source: ``name`` (unique in a run, stable across runs:
    the folder's last component), ``uri`` (folder or gs://), ``weight``
    (sampling ratio of its training images, > 0)."""

    name: str
    uri: str
    weight: float = 1.0


def parse_sources(texts: list[str] | tuple[str, ...]) -> list[Source]:
    """``["path[:weight]", ...]`` -> sources, named after the path's last
    component (``-2``, ``-3``... when two share a name). Raises ValueError on
    a weight that is not a positive number."""
    out: list[Source] = []
    used = {BASE}
    for text in texts:
        uri, weight = text, 1.0
        head, _, tail = text.rpartition(SEPARATOR)
        if head and not tail.startswith("//") and re.fullmatch(r"[0-9.eE+-]+", tail):
            uri, weight = head, float(tail)
        if not weight > 0:
            raise ValueError(f"--source {text!r}: the weight must be a positive number")
        stem = _NAME.sub("-", PurePosixPath(uri.rstrip("/")).name or "source").strip("-") or "source"
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        out.append(Source(name, uri, weight))
    return out


def source_of(image_id: str) -> str:
    """The source an id of a combined split belongs to."""
    return image_id.split(SEPARATOR, 1)[0] if SEPARATOR in image_id else BASE


def local_id(image_id: str) -> str:
    """The id inside its source (the file ``images/<id>.jpg``)."""
    return image_id.split(SEPARATOR, 1)[1] if SEPARATOR in image_id else image_id


def side_by_hash(digest: str, *, val: float, test: float) -> str:
    """train, val or test for a sha256 hex digest (:data:`HASH_RULE`)."""
    fraction = int(digest[:8], 16) / 16**8
    return "test" if fraction < test else "val" if fraction < test + val else "train"


def previous_sides(previous: data_stage.Split | None) -> dict[str, str]:
    """id -> side in a previous split (empty without one)."""
    if previous is None:
        return {}
    return {image_id: name for name, rows in previous.items.items() for image_id, _ in rows}


def prepare_all(
    base: data_stage.Dataset,
    base_store: Store,
    sources: list[Source],
    *,
    size: int,
    val: float,
    test: float,
    previous: data_stage.Split | None = None,
) -> data_stage.Dataset:
    """The base dataset (already prepared) plus every added source -> one
    dataset whose split holds every source's items and lists the sources.
    Labels outside the base's are skipped (``unknown_label``)."""
    labels = base.split.labels
    index = {label: k for k, label in enumerate(labels)}
    sides = previous_sides(previous)
    skipped: Counter[str] = Counter(base.split.skipped)
    pixels_by_id: dict[str, np.ndarray] = {}
    held_hashes: set[str] = set()
    for name in ("val", "test"):  # the base's held-out bytes
        for image_id, _ in base.split.items[name]:
            held_hashes.add(hashlib.sha256(base_store.read_bytes(f"images/{image_id}.jpg")).hexdigest())
    items = {name: list(rows) for name, rows in base.split.items.items()}
    for name in data_stage.SPLITS:
        for (image_id, _), pixels in zip(base.split.items[name], base.pixels[name], strict=True):
            pixels_by_id[image_id] = pixels
    listing = {BASE: {"uri": base.split.source, "weight": 1.0, "rule": "training.data.prepare (seeded, stratified)"}}
    extra_train: list[tuple[str, str, str]] = []  # (id, label, sha256)
    for source in sources:
        store = open_store(source.uri)
        rows, malformed = data_stage.read_styles(store.read_bytes("styles.csv"))
        if malformed:
            skipped[f"{source.name}:malformed_row"] += malformed
        counts: Counter[str] = Counter()
        for local, label in rows:
            if label not in index:
                skipped[f"{source.name}:unknown_label"] += 1
                continue
            key = f"images/{local}.jpg"
            if not store.exists(key):
                skipped[f"{source.name}:missing_image"] += 1
                continue
            data = store.read_bytes(key)
            try:
                decoded = prepare_image(data, size)
            except ImageError as exc:
                skipped[f"{source.name}:unreadable_image:{exc.reason}"] += 1
                continue
            image_id = f"{source.name}{SEPARATOR}{local}"
            digest = hashlib.sha256(data).hexdigest()
            side = sides.get(image_id) or side_by_hash(digest, val=val, test=test)
            pixels_by_id[image_id] = decoded
            if side == "train":
                extra_train.append((image_id, label, digest))
            else:
                items[side].append((image_id, label))
                held_hashes.add(digest)
            counts[side] += 1
        listing[source.name] = {"uri": source.uri, "weight": source.weight, "rule": HASH_RULE, "counts": dict(counts)}
    for image_id, label, digest in extra_train:
        if digest in held_hashes:
            skipped["held_out_elsewhere"] += 1
            continue
        items["train"].append((image_id, label))
    split = data_stage.Split(
        labels=labels,
        seed=base.split.seed,
        fractions=base.split.fractions,
        items=items,
        skipped=dict(skipped),
        fingerprint=base.split.fingerprint,
        source=base.split.source,
        rules=base.split.rules,
        sources=listing,
    )
    dataset = data_stage.materialize(split, pixels_by_id)
    log.info(
        "prepare: %d sources",
        len(listing),
        extra={"stage": "prepare", "sources": {k: v.get("counts") for k, v in listing.items()}, "skipped": dict(skipped)},
    )
    return dataset


def weighted_train(dataset: data_stage.Dataset, seed: int) -> data_stage.Dataset:
    """The dataset with each added source's training images repeated by its
    weight (a fraction: that share of them once more, chosen with ``seed``),
    their attribute targets (if any) repeated alike; val and test unchanged.
    The base's weight is 1."""
    weights = {name: float(info.get("weight", 1.0)) for name, info in (dataset.split.sources or {}).items()}
    if all(w == 1.0 for w in weights.values()):
        return dataset
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    for k, (image_id, _) in enumerate(dataset.split.items["train"]):
        weight = weights.get(source_of(image_id), 1.0)
        copies = int(weight) + int(rng.random() < weight - int(weight))
        picks.extend([k] * copies)
    order = np.array(picks, dtype=np.int64)
    pixels = {**dataset.pixels, "train": dataset.pixels["train"][order]}
    targets = {**dataset.targets, "train": dataset.targets["train"][order]}
    attributes = dataset.attributes
    if attributes is not None:  # the attribute targets follow their rows
        train = {name: values[order] for name, values in attributes.targets["train"].items()}
        attributes = data_stage.AttributeLabels(schema=attributes.schema, targets={**attributes.targets, "train": train})
    return data_stage.Dataset(split=dataset.split, pixels=pixels, targets=targets, attributes=attributes)


def masks_by_source(split: data_stage.Split) -> dict[str, np.ndarray]:
    """source -> boolean mask over the test split's rows (every listed source,
    plus the base)."""
    names = list(split.sources or {BASE: {}})
    owners = np.array([source_of(image_id) for image_id, _ in split.items["test"]])
    return {name: owners == name for name in names}


def stores_of(split: data_stage.Split, overrides: dict[str, str] | None = None) -> dict[str, Store]:
    """source -> the store its images are read from (``overrides``: source ->
    another location of the same data)."""
    locations = {name: info["uri"] for name, info in (split.sources or {BASE: {"uri": split.source}}).items()}
    locations.update(overrides or {})
    return {name: open_store(uri) for name, uri in locations.items()}
