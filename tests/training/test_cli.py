"""The training CLI derives every option and default from the job's
dataclasses (JobConfig, TrainConfig, GateConfig): nothing is restated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from training.cli import SECTIONS, config_from_args, parser
from training.config import JobConfig, TrainConfig
from training.publish import GateConfig
from training.thresholds import ThresholdConfig


def test_no_arguments_give_exactly_the_dataclass_defaults():
    assert config_from_args(parser().parse_args([])) == JobConfig()


def test_every_field_has_an_option_with_help():
    p = parser()
    options = {o for action in p._actions for o in action.option_strings}
    for cls in (JobConfig, TrainConfig, GateConfig, ThresholdConfig):
        for f in dataclasses.fields(cls):
            if (cls is JobConfig and f.name in SECTIONS) or (cls is TrainConfig and f.name == "seed"):
                continue
            assert "--" + f.name.replace("_", "-") in options, f.name
            assert f.metadata.get("help"), f.name


def test_options_reach_their_sections():
    args = ["--fine-tune-epochs", "3", "--no-class-weighting", "--augment", "none", "--min-accuracy", "0.5"]
    config = config_from_args(parser().parse_args([*args, "--seed", "7", "--no-small-images", "--work-dir", "w"]))
    assert config.train == dataclasses.replace(TrainConfig(), fine_tune_epochs=3, class_weighting=False, augment="none", seed=7)
    assert config.gate == GateConfig(min_accuracy=0.5)
    thresholds = config_from_args(parser().parse_args(["--auto-precision", "0.99", "--model-dir", "m"])).thresholds
    assert thresholds == ThresholdConfig(auto_precision=0.99, model_dir="m")
    assert config.seed == 7 and config.small_images is False and config.work_dir == Path("w")
