"""``python -m training [run|prepare|train|export|evaluate|report|publish]``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from training.config import REPO_ROOT, JobConfig, default_data, default_weights
from training.publish import GateConfig
from training.train import TrainConfig

STAGES = ("run", "prepare", "train", "export", "evaluate", "gate", "report", "publish")
log = logging.getLogger("training")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    p.add_argument("stage", choices=STAGES, nargs="?", default="run", help="one stage, or 'run' for all (default)")
    p.add_argument(
        "--data",
        default=default_data(),
        help="dataset folder or gs:// URI in the Kaggle layout (styles.csv + images/); "
        "default: ../shared/data/fashion-product-images-small beside the checkout, when present",
    )
    p.add_argument(
        "--out", default=str(REPO_ROOT / "build" / "model-store"), help="model store: a folder or gs://bucket[/prefix]"
    )
    p.add_argument("--work-dir", type=Path, default=REPO_ROOT / "build" / "train-work", help="where stages keep their files")
    p.add_argument(
        "--weights",
        default=default_weights(),
        help="'imagenet' (downloaded by Keras), a local Keras weights file (no top), or 'none' (random init, for tests)",
    )
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier")
    p.add_argument("--size", type=int, default=224, help="input size in pixels")
    p.add_argument("--top-n", type=int, default=10, help="keep the N most frequent articleTypes")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--head-epochs", type=int, default=TrainConfig.head_epochs)
    p.add_argument("--fine-tune-epochs", type=int, default=TrainConfig.fine_tune_epochs)
    p.add_argument(
        "--fine-tune-fraction", type=float, default=TrainConfig.fine_tune_fraction, help="share of base layers to fine-tune"
    )
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    p.add_argument("--class-weighting", action=argparse.BooleanOptionalAction, default=TrainConfig.class_weighting)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=TrainConfig.augment)
    p.add_argument(
        "--flip-average",
        action=argparse.BooleanOptionalAction,
        default=JobConfig.flip_average,
        help="export a model that averages the scores of the image and its mirror image",
    )
    p.add_argument("--min-accuracy", type=float, default=GateConfig.min_accuracy, help="quality gate: floor on test accuracy")
    p.add_argument(
        "--max-regression",
        type=float,
        default=GateConfig.max_regression,
        help="quality gate: how far below the current model's accuracy a new one may be",
    )
    p.add_argument("--representative-count", type=int, default=JobConfig.representative_count, help="int8 calibration images")
    p.add_argument("--version", help="version name (default: UTC timestamp)")
    p.add_argument("--force-publish", action="store_true", help="move the pointer even when the gate refuses")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> JobConfig:
    return JobConfig(
        data=args.data,
        out=args.out,
        work_dir=args.work_dir,
        weights=args.weights,
        alpha=args.alpha,
        size=args.size,
        top_n=args.top_n,
        seed=args.seed,
        representative_count=args.representative_count,
        version=args.version,
        force_publish=args.force_publish,
        flip_average=args.flip_average,
        train=TrainConfig(
            head_epochs=args.head_epochs,
            fine_tune_epochs=args.fine_tune_epochs,
            fine_tune_fraction=args.fine_tune_fraction,
            batch_size=args.batch_size,
            label_smoothing=args.label_smoothing,
            class_weighting=args.class_weighting,
            augment=args.augment,
            seed=args.seed,
        ),
        gate=GateConfig(min_accuracy=args.min_accuracy, max_regression=args.max_regression),
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    from shared.logs import configure_logging

    configure_logging(args.log_level)
    config = config_from_args(args)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    from training import pipeline as p

    log.info("training job: %s", args.stage, extra={"stage": args.stage, "config": p.describe(config)})
    if args.stage == "run":
        return 0 if p.run_all(config) else 3
    if args.stage == "prepare":
        p.run_prepare(config)
    elif args.stage == "train":
        p.run_train(config, p.load_dataset(config))
    elif args.stage == "export":
        p.run_export(config, p.load_keras(config), p.load_dataset(config))
    elif args.stage == "evaluate":
        p.run_evaluate(config, p.load_keras(config), p.load_dataset(config))
    elif args.stage == "gate":
        decision = p.run_gate(config)
        print(json.dumps(decision.to_dict()))
        return 0 if decision.passed else 3
    elif args.stage == "report":
        p.run_report(config)
    elif args.stage == "publish":
        return 0 if p.run_publish(config) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
