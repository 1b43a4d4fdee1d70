"""The same data, split and seed train the same model: a run can be reproduced."""

from __future__ import annotations

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
