"""The same data, split and seed train the same model: a run can be reproduced."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.datasets import make_kaggle_dataset
from training.data import prepare
from training.model import ModelSpec
from training.storage import LocalStore
from training.train import TrainConfig, train

pytestmark = pytest.mark.training


def test_training_twice_gives_identical_weights(tmp_path):
    data = prepare(LocalStore(make_kaggle_dataset(tmp_path, {"A": 10, "B": 10, "C": 10}, size=40)), size=32, seed=5)
    spec = ModelSpec(num_classes=3, size=32, weights=None)
    config = TrainConfig(head_epochs=2, fine_tune_epochs=1, batch_size=8, seed=5)
    first, history_1 = train(data, spec, config)
    second, history_2 = train(data, spec, config)
    assert history_1["loss"] == history_2["loss"]
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other, _ = train(data, spec, TrainConfig(head_epochs=2, fine_tune_epochs=1, batch_size=8, seed=6))
    assert any(not np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights(), strict=True))


def test_the_seed_spread_tool_trains_once_per_seed_on_the_saved_split(tmp_path):
    from training.cli import main as training_main
    from training.seeds import main as seeds_main

    data = make_kaggle_dataset(tmp_path / "data", {"A": 10, "B": 10, "C": 10}, size=40)
    common = ["--data", str(data), "--work-dir", str(tmp_path / "work"), "--size", "32", "--weights", "none"]
    common += ["--head-epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8", "--log-level", "WARNING"]
    assert training_main(["prepare", *common]) == 0
    assert seeds_main([*common, "--seeds", "4", "5"]) == 0
    result = json.loads((tmp_path / "work" / "seeds.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [4, 5]
    assert result["test_images"] == sum(1 for _ in json.loads((tmp_path / "work" / "split.json").read_text())["items"]["test"])
    for key in ("test_accuracy_single_pass", "test_accuracy_flip_average"):
        values = [r[key] for r in result["runs"]]
        assert result["summary"][key] == {"mean": round(sum(values) / 2, 4), "min": min(values), "max": max(values)}
