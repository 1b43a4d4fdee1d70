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
    assert EXPERIMENTS["attributes"].train == {"attributes": True}


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


def test_calibration_indices_are_the_images_the_job_calibrates_on() -> None:
    from training.experiments import calibration_indices
    from training.export import representative_sample

    targets = np.repeat(np.arange(4), [7, 3, 9, 5])
    pixels = np.arange(len(targets))[:, None, None, None] * np.ones((1, 2, 2, 3), np.int64)
    picks = calibration_indices(targets, count=8, seed=42)
    np.testing.assert_array_equal(pixels[picks], representative_sample(pixels, targets, 8, 42))
    assert sorted(np.bincount(targets[picks]).tolist()) == [2, 2, 2, 2]  # class-balanced, as the job's


@pytest.mark.training
def test_exports_of_two_input_sizes_are_measured_at_their_own_size(tmp_path) -> None:
    import json

    import keras

    from tests.datasets import make_kaggle_dataset
    from training.cli import main as training_main
    from training.model import ModelSpec, build_model

    data = make_kaggle_dataset(tmp_path / "data", {"Handbags": 12, "Heels": 12, "Watches": 12}, size=48)
    work = tmp_path / "work"
    common = ["--data", str(data), "--work-dir", str(work), "--weights", "none", "--representative-count", "6"]
    assert training_main(["prepare", *common, "--size", "32", "--log-level", "WARNING"]) == 0
    paths = []
    for size in (32, 40):
        keras.utils.set_random_seed(size)
        model, _ = build_model(ModelSpec(num_classes=3, size=size, weights=None))
        dense = model.get_layer("probabilities")
        dense.set_weights([np.random.default_rng(size).normal(0, 3, w.shape).astype("float32") for w in dense.get_weights()])
        paths.append(tmp_path / f"m{size}.keras")
        model.save(paths[-1])
    assert main(["--exports", *map(str, paths), *common, "--log-level", "WARNING"]) == 0
    record = json.loads((work / "experiments.jsonl").read_text().splitlines()[-1])
    exports = record["exports"]
    assert sorted(exports) == ["m32-32-float16", "m32-32-int8", "m40-40-float16", "m40-40-int8"]
    test_count = len(json.loads((work / "split.json").read_text())["items"]["test"])
    for name, measured in exports.items():
        assert measured["size"] == int(name.split("-")[1])
        assert measured["calibration_images"] == (6 if measured["kind"] == "int8" else 0)
        assert 0 < measured["min_ms"] <= measured["median_ms"] and measured["calls"] == 200
        assert (work / "experiments" / "exports" / f"{name}.tflite").stat().st_size == measured["bytes"]
        # accuracies are whole images out of the test split
        assert round(measured["test_accuracy"] * test_count) == pytest.approx(measured["test_accuracy"] * test_count, abs=0.01)
    for size in (32, 40):  # float16 weights change the Keras scores by rounding only
        assert exports[f"m{size}-{size}-float16"]["agreement_with_keras"] == 1.0
