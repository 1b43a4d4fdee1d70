"""Job settings, read once from the command line and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.dev_paths import REPO_ROOT, default_data, default_weights
from training.publish import GateConfig
from training.train import TrainConfig

__all__ = ["REPO_ROOT", "JobConfig", "default_data", "default_weights"]


@dataclass(frozen=True)
class JobConfig:
    data: str | None = None  # local folder or gs://bucket/prefix in the Kaggle layout
    out: str = str(REPO_ROOT / "build" / "model-store")  # model store: folder or gs://bucket
    work_dir: Path = REPO_ROOT / "build" / "train-work"
    weights: str = "imagenet"
    alpha: float = 0.35
    size: int = 224
    top_n: int = 10
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    int8_max_loss: float = 0.01  # keep int8 unless it loses more than this accuracy
    representative_count: int = 1500  # int8 calibration images (all of the training split here)
    version: str | None = None
    force_publish: bool = False
    flip_average: bool = True  # serve the average of the image's and its mirror's scores
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
