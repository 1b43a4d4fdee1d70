"""Attribute labels (issue 19): colour families, the rare rule, class weights,
and reading them from the real styles.csv files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from shared.attributes import (
    ATTRIBUTES,
    COLOUR_FAMILIES,
    FAMILIES,
    attribute_vocabulary,
    class_weights,
    classes_of,
    raw_value,
)
from shared.dev_paths import DEV_DATA, DEV_DATA_12K
from training.data import Split, attribute_labels, read_attributes


@pytest.mark.parametrize("folder", [DEV_DATA, DEV_DATA_12K], ids=["small", "12k"])
def test_every_base_colour_of_the_data_sets_has_a_family(folder):
    path = folder / "styles.csv"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    with path.open(encoding="utf-8-sig") as handle:
        colours = {row["baseColour"].strip() for row in csv.DictReader(handle) if row.get("baseColour")}
    assert colours - set(COLOUR_FAMILIES) == set()
    values = read_attributes(path.read_bytes())
    assert set(values) and all(v["colour"] in FAMILIES for v in values.values() if v["colour"] is not None)


def test_colour_mapping_targets_only_known_families():
    assert set(COLOUR_FAMILIES.values()) == set(FAMILIES)
    assert raw_value("colour", " Navy Blue ") == "blue"
    assert raw_value("colour", "Chartreuse") is None  # unknown: missing, not guessed
    assert raw_value("season", "") is None
    with pytest.raises(ValueError, match="unknown attribute"):
        raw_value("fabric", "Cotton")


def test_rare_values_are_merged_or_dropped():
    values = ["Casual"] * 30 + ["Sports"] * 25 + ["Smart Casual"] * 3 + ["Party"] * 2 + [None] * 5
    mapping = attribute_vocabulary(values, "usage", min_count=20)
    assert mapping == {"Casual": "Casual", "Sports": "Sports", "Smart Casual": "Casual"}  # Party dropped
    # an attribute with no merge rule drops rare values
    assert attribute_vocabulary(["Fall"] * 20 + ["Spring"] * 19, "season", min_count=20) == {"Fall": "Fall"}


def test_classes_keep_family_order_and_weights_balance():
    assert classes_of({"Navy": "blue", "Jet": "black", "Beige": "brown/beige"}) == ["black", "blue", "brown/beige"]
    weights = class_weights([0, 0, 0, 1, -1, -1], 3)
    assert weights == [round(4 / 9, 6), round(4 / 3, 6), 0.0]


def test_attribute_labels_mask_missing_and_decide_on_train_only():
    styles = "id,gender,baseColour,usage,season\n" + "".join(
        f"{i},{'Men' if i % 2 else 'Women'},{'Black' if i < 6 else 'Navy Blue'},{'Casual' if i != 3 else 'Party'},{'' if i == 1 else 'Fall'}\n"
        for i in range(12)
    )
    values = read_attributes(styles.encode())
    assert values["1"] == {"gender": "Men", "colour": "black", "usage": "Casual", "season": None}
    split = Split(
        labels=["A"],
        seed=0,
        fractions={},
        items={"train": [(str(i), "A") for i in range(10)], "val": [("10", "A"), ("99", "A")], "test": [("11", "A")]},
    )
    labels = attribute_labels(values, split, min_count=2)
    assert labels.names() == ["gender", "colour"]  # usage and season have one class left: no head
    assert labels.schema["colour"]["classes"] == ["black", "blue"]
    assert labels.schema["gender"]["class_weights"] == [1.0, 1.0]
    np.testing.assert_array_equal(labels.targets["val"]["colour"], [1, -1])  # id 99 is not in styles.csv
    assert set(ATTRIBUTES) >= set(labels.schema)
