"""Job settings, read once from the command line and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.publish import GateConfig
from training.train import TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
_DEV_DATA = REPO_ROOT.parent / "shared" / "data" / "fashion-product-images-small"
_DEV_WEIGHTS = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def default_data() -> str | None:
    """The development copy of the data beside the checkout, when present."""
    return str(_DEV_DATA) if (_DEV_DATA / "styles.csv").is_file() else None


def default_weights() -> str:
    """The development weights file beside the checkout, else Keras's
    ``imagenet`` download (which works in the cloud)."""
    return str(_DEV_WEIGHTS) if _DEV_WEIGHTS.is_file() else "imagenet"


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
