"""Attribute labels stay with their rows (issue 19): through the sources'
weighting (rows repeated), and for an added source's ids; pure logic, no
TensorFlow."""

from __future__ import annotations

import numpy as np

from training.data import Dataset, Split, attribute_values, with_attributes
from training.sources import weighted_train
from training.storage import LocalStore

STYLES = "id,gender,articleType,baseColour,season,usage\n"


def _styles(rows: list[tuple[str, str, str]]) -> str:
    return STYLES + "".join(f"{i},{gender},Shirts,{colour},Fall,Casual\n" for i, gender, colour in rows)


def test_weighted_rows_keep_their_attribute_labels(tmp_path):
    base = tmp_path / "base"
    extra = tmp_path / "extra"
    base.mkdir()
    extra.mkdir()
    base_rows = [(str(k), ("Men", "Women")[k % 2], "Black") for k in range(50)]
    (base / "styles.csv").write_text(_styles(base_rows))
    extra_rows = [(str(k), "Women", ("Blue", "Red")[k % 2]) for k in range(40)]
    (extra / "styles.csv").write_text(_styles(extra_rows))
    train_ids = [str(k) for k in range(50)] + [f"extra:{k}" for k in range(40)]
    split = Split(
        labels=["Shirts", "Tops"],
        seed=1,
        fractions={},
        items={"train": [(i, "Shirts") for i in train_ids], "val": [], "test": []},
        sources={"base": {"uri": str(base), "weight": 1.0}, "extra": {"uri": str(extra), "weight": 2.5}},
    )
    values = attribute_values(split, LocalStore(base))
    assert values["3"]["gender"] == "Women" and values["extra:3"]["colour"] == "red" and values["extra:2"]["colour"] == "blue"
    # pixels carry the row's own number so that each repeated row can be traced back
    pixels = np.arange(len(train_ids), dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(3, axis=3)
    dataset = Dataset(
        split=split,
        pixels={"train": pixels, "val": pixels[:0], "test": pixels[:0]},
        targets={"train": np.zeros(len(train_ids), np.int64), "val": np.zeros(0, np.int64), "test": np.zeros(0, np.int64)},
    )
    dataset = with_attributes(dataset, values)
    schema = dataset.attributes.schema
    assert schema["gender"]["classes"] == ["Men", "Women"] and schema["colour"]["classes"] == ["black", "blue", "red"]
    assert "usage" not in schema and "season" not in schema  # one value each: no head
    weighted = weighted_train(dataset, seed=3)
    rows = weighted.pixels["train"][:, 0, 0, 0].astype(int)
    assert len(rows) > len(train_ids)  # the extra source's rows were repeated
    for name in ("gender", "colour"):
        original = dataset.attributes.targets["train"][name]
        np.testing.assert_array_equal(weighted.attributes.targets["train"][name], original[rows])
    assert weighted.attributes.schema == schema
