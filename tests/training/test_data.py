"""Prepare stage: reading styles.csv, class selection, skipping, splitting."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tests.datasets import make_kaggle_dataset
from training.data import Split, grouped_split, load_split, prepare, read_styles, stratified_split, top_classes
from training.storage import LocalStore

COUNTS = {"Tshirts": 40, "Shirts": 20, "Watches": 14, "Heels": 7, "Socks": 3}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return make_kaggle_dataset(tmp_path_factory.mktemp("kaggle"), COUNTS, missing=2, corrupt=3, malformed_rows=2, size=40)


def test_read_styles_counts_malformed_rows():
    rows, malformed = read_styles(b"id,articleType,x\n1,Shirts,a\n2\n,Heels,b\n3,Watches,c\n")
    assert rows == [("1", "Shirts"), ("3", "Watches")]
    assert malformed == 2


def test_read_styles_requires_columns():
    with pytest.raises(ValueError, match="articleType"):
        read_styles(b"id,name\n1,x\n")


def test_top_classes_ranks_by_frequency_and_breaks_ties_by_name():
    rows = [(str(i), lab) for i, lab in enumerate("AAABBBCCD")]
    assert top_classes(rows, 2) == ["A", "B"]
    assert top_classes(rows, 3) == ["A", "B", "C"]


def test_split_is_stratified_and_disjoint():
    rows = [(str(i), "A") for i in range(100)] + [(str(100 + i), "B") for i in range(40)]
    parts = stratified_split(rows, ["A", "B"], seed=1, val=0.15, test=0.15)
    ids = [i for part in parts.values() for i, _ in part]
    assert len(ids) == len(set(ids)) == 140
    for name, expected in (("test", {"A": 15, "B": 6}), ("val", {"A": 15, "B": 6}), ("train", {"A": 70, "B": 28})):
        assert Counter(label for _, label in parts[name]) == expected


def test_split_is_reproducible_and_seed_dependent():
    rows = [(str(i), "AB"[i % 2]) for i in range(200)]
    first = stratified_split(rows, ["A", "B"], seed=7, val=0.15, test=0.15)
    again = stratified_split(list(reversed(rows)), ["A", "B"], seed=7, val=0.15, test=0.15)
    other = stratified_split(rows, ["A", "B"], seed=8, val=0.15, test=0.15)
    assert first == again  # input order does not matter, only the seed
    assert first["test"] != other["test"]


def test_prepare_keeps_top_n_skips_and_counts(dataset_dir):
    data = prepare(LocalStore(dataset_dir), size=32, top_n=4, seed=3)
    assert data.split.labels == ["Heels", "Shirts", "Tshirts", "Watches"]  # Socks is 5th
    assert data.split.skipped == {"missing_image": 2, "unreadable_image:corrupt": 3, "malformed_row": 2}
    total = sum(len(rows) for rows in data.split.items.values())
    assert total == 40 + 20 + 14 + 7
    assert data.pixels["train"].shape[1:] == (32, 32, 3) and data.pixels["train"].dtype == np.uint8
    assert len(data.pixels["test"]) == len(data.targets["test"]) == len(data.split.items["test"])
    # every class appears in every split, in proportion
    for name in ("train", "val", "test"):
        assert set(data.targets[name]) == {0, 1, 2, 3}
    assert data.class_counts("test") == {"Heels": 1, "Shirts": 3, "Tshirts": 6, "Watches": 2}
    assert len(data.split.fingerprint) == 64


def test_saved_split_reproduces_the_same_arrays(dataset_dir):
    store = LocalStore(dataset_dir)
    data = prepare(store, size=32, top_n=4, seed=3)
    restored = Split.from_json(data.split.to_json())
    assert restored.items == data.split.items
    again = load_split(store, restored, size=32)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(again.pixels[name], data.pixels[name])
        np.testing.assert_array_equal(again.targets[name], data.targets[name])
    saved = json.loads(data.split.to_json())
    assert saved["seed"] == 3 and saved["counts"] == {k: len(v) for k, v in data.split.items.items()}


def test_fingerprint_changes_when_an_image_changes(dataset_dir, tmp_path):
    first = prepare(LocalStore(dataset_dir), size=32, top_n=4, seed=3).split.fingerprint
    copy = make_kaggle_dataset(tmp_path / "copy", COUNTS, missing=2, corrupt=3, malformed_rows=2, size=40)
    assert prepare(LocalStore(copy), size=32, top_n=4, seed=3).split.fingerprint == first
    victim = sorted((copy / "images").iterdir())[0]
    victim.write_bytes((dataset_dir / "images" / sorted((copy / "images").iterdir())[1].name).read_bytes())
    assert prepare(LocalStore(copy), size=32, top_n=4, seed=3).split.fingerprint != first


def test_duplicate_groups_stay_on_one_side_and_small_images_are_never_held_out():
    rows = [(str(i), "AB"[i % 2]) for i in range(400)]
    groups = {str(i): f"g{i // 4}" for i in range(0, 200)}  # groups of 4 ids (two of each label: split by label)
    groups = {i: f"{g}-{dict(rows)[i]}" for i, g in groups.items()}
    full = {str(i) for i in range(400) if i % 5}  # every fifth image is a thumbnail
    parts = grouped_split(rows, ["A", "B"], seed=3, val=0.15, test=0.15, groups=groups, held_out_ok=full)
    side = {i: name for name, part in parts.items() for i, _ in part}
    assert len(side) == 400
    for group in set(groups.values()):
        members = [i for i, g in groups.items() if g == group]
        assert len({side[i] for i in members}) == 1, group
    held_out = [i for name in ("val", "test") for i, _ in parts[name]]
    assert held_out and all(i in full for i in held_out)
    assert all(side[i] == "train" for i in set(side) - full)


def test_prepare_reads_duplicate_groups_and_holds_out_only_full_size_images(tmp_path):
    root = make_kaggle_dataset(tmp_path / "data", {"Shirts": 24, "Watches": 24}, size=48)
    ids = sorted(p.stem for p in (root / "images").iterdir())
    thumbs = ids[::4]  # a quarter of the images become 20x26 thumbnails
    for image_id in thumbs:
        path = root / "images" / f"{image_id}.jpg"
        Image.open(path).resize((20, 26)).save(path, "JPEG")
    pairs = [(ids[1], ids[2]), (ids[30], ids[31])]
    (root / "duplicate_groups.csv").write_text(
        "group,id,articleType\n" + "".join(f"{g},{i},x\n" for g, pair in enumerate(pairs) for i in pair)
    )
    data = prepare(LocalStore(root), size=32, seed=1)
    side = {i: name for name, part in data.split.items.items() for i, _ in part}
    assert all(side[i] == "train" for i in thumbs)
    assert all(side[a] == side[b] for a, b in pairs)
    assert data.split.rules["held_out_min_side"] == 32 and data.split.rules["duplicate_groups"] == 2
    without = prepare(LocalStore(root), size=32, seed=1, small_images=False)
    assert without.split.items["test"] == data.split.items["test"] and without.split.items["val"] == data.split.items["val"]
    assert not set(thumbs) & {i for i, _ in without.split.items["train"]}
    assert without.split.skipped["small_image"] == len(thumbs)


def test_data_work_and_model_folders_reached_through_symbolic_links(dataset_dir, tmp_path):
    """`make train DATA_DIR=<link>` used to fail in prepare with a relative_to ValueError."""
    from training.cli import main as training_main

    real = {name: tmp_path / f"real-{name}" for name in ("work", "store")}
    for path in real.values():
        path.mkdir()
    links = {name: tmp_path / f"link-{name}" for name in ("data", "work", "store")}
    links["data"].symlink_to(dataset_dir, target_is_directory=True)
    links["work"].symlink_to(real["work"], target_is_directory=True)
    links["store"].symlink_to(real["store"], target_is_directory=True)
    data = prepare(LocalStore(links["data"]), size=32, top_n=4, seed=3)
    assert sum(len(rows) for rows in data.split.items.values()) == 40 + 20 + 14 + 7
    assert LocalStore(links["data"]).list("images/")[0].startswith("images/")
    args = ["--data", str(links["data"]), "--work-dir", str(links["work"]), "--out", str(links["store"]), "--size", "32"]
    assert training_main(["prepare", *args, "--log-level", "WARNING"]) == 0
    assert json.loads((real["work"] / "split.json").read_text())["counts"]["test"] > 0
    store = LocalStore(links["store"])
    store.write_bytes("models/v/x.txt", b"x")
    assert store.list("models/") == ["models/v/x.txt"]
