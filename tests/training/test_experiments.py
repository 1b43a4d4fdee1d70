"""The experiments runner (training/experiments.py): every named variant is
a valid change of the job's recipe, the command line refuses unknown names,
and an ensemble of models sharing their frozen layers is one model that
averages its members."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.config import TrainConfig
from training.experiments import EXPERIMENTS, main


def test_every_experiment_changes_only_fields_of_the_recipe() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for experiment in EXPERIMENTS.values():
        assert set(experiment.train) <= fields, experiment.name
        changed = dataclasses.replace(TrainConfig(), **experiment.train)
        assert experiment.name == "default" or changed != TrainConfig() or experiment.size, experiment.name


def test_the_variants_the_docs_quote_exist() -> None:
    assert EXPERIMENTS["ls0"].train == {"label_smoothing": 0.0}
    assert EXPERIMENTS["long"].train == {"fine_tune_epochs": 12, "patience": 4}
    assert EXPERIMENTS["photo2"].train == {"views": 2, "augment": "photo"}
    assert EXPERIMENTS["size192"].size == 192
    assert EXPERIMENTS["single-head"].train == {"attributes": False}


def test_an_unknown_experiment_or_none_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope", "--work-dir", "/nonexistent"]) == 2
    assert "unknown experiment(s): ['nope']" in capsys.readouterr().err
    assert main(["--work-dir", "/nonexistent"]) == 2
    assert "name an experiment" in capsys.readouterr().err


@pytest.mark.training
def test_an_ensemble_shares_the_frozen_layers_and_averages_its_members() -> None:
    import keras

    from training.experiments import ensemble_model
    from training.model import ModelSpec, build_model

    spec = ModelSpec(num_classes=3, size=32, weights=None)
    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(0)  # the same "pretrained" base in both members
        model, _ = build_model(spec)
        keras.utils.set_random_seed(seed)  # different classifiers
        dense = model.get_layer("probabilities")
        dense.set_weights([np.random.default_rng(seed).normal(0, 1, w.shape).astype("float32") for w in dense.get_weights()])
        members.append(model)
    pixels = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    ensemble = ensemble_model(members, "block_5_add")
    expected = np.mean([m.predict(pixels, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(pixels, verbose=0), expected, atol=1e-5)
    bottoms = [layer for layer in ensemble.layers if layer.name == "bottom"]
    assert len(bottoms) == 1, "the frozen layers should run once"

    keras.utils.set_random_seed(9)
    other, _ = build_model(spec)
    with pytest.raises(ValueError, match="differ from the first member"):
        ensemble_model([members[0], other], "block_5_add")
