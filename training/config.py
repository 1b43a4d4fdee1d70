"""Job settings, read once from the command line and passed down.

The dataclasses here and GateConfig in training/publish.py hold
the only defaults of the job; training/cli.py derives every option, its type,
default and help text from their fields (``metadata["help"]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.dev_paths import REPO_ROOT, default_data, default_weights
from training.publish import GateConfig
from training.thresholds import ThresholdConfig

__all__ = ["ATTRIBUTE_LOSS_WEIGHT", "AUGMENTATIONS", "REPO_ROOT", "JobConfig", "TrainConfig", "default_data", "default_weights"]

AUGMENTATIONS = ("none", "product", "photo")
#: the weight of each attribute head's loss against the category head's 1.0
#: (four heads: together as much as the category); a choice, not tuned
ATTRIBUTE_LOSS_WEIGHT = 0.25


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. These defaults are the only ones: the command
    line (training/cli.py) derives its options and help from these fields."""

    head_epochs: int = field(default=1, metadata={"help": "epochs with the base frozen"})
    fine_tune_epochs: int = field(default=6, metadata={"help": "at most this many epochs fine-tuning the base"})
    fine_tune_fraction: float = field(default=1.0, metadata={"help": "share of base layers to fine-tune"})
    batch_size: int = field(default=32, metadata={"help": "images per training step"})
    head_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate, frozen-base phase"})
    fine_tune_lr: float = field(default=3e-4, metadata={"help": "peak Adam learning rate while fine-tuning (cosine decay)"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the cross-entropy loss"})
    class_weighting: bool = field(default=True, metadata={"help": "weight classes by inverse frequency"})
    augment: str = field(
        default="photo",
        metadata={
            "help": "training augmentation: none; product (flip, rotation, zoom, shift, brightness); "
            "photo (product plus background, colour, blur and crops for photos taken outside a studio)",
            "choices": AUGMENTATIONS,
        },
    )
    cache_after: str = field(
        default="block_9_add",
        metadata={
            "help": "freeze the base up to this layer, run it once per image and view, and train the layers above it "
            "on those cached features (much cheaper per epoch); '' fine-tunes the whole base on pixels every epoch"
        },
    )
    views: int = field(
        default=1, metadata={"help": "with cache_after: each training image as it is plus views-1 augmented copies"}
    )
    patience: int = field(default=3, metadata={"help": "early stopping: epochs without a better val accuracy"})
    attributes: bool = field(
        default=False,
        metadata={
            "help": "train the attribute heads (gender, colour family, usage, season from styles.csv; issue 19) "
            "beside the category, in the same model; an attribute the data lacks gets no head "
            "(off by default: on the 12k set they kept the category's test accuracy but cost its int8 export "
            "0.8 points and its photo proxy 3 points, README 'Attributes')"
        },
    )
    attribute_loss_weight: float = field(
        default=ATTRIBUTE_LOSS_WEIGHT, metadata={"help": "with attributes: each attribute head's loss weight (category: 1.0)"}
    )
    seed: int = field(default=42, metadata={"help": "seeds the split, initialisation, shuffling and augmentation"})


@dataclass(frozen=True)
class JobConfig:
    data: str | None = field(
        default_factory=default_data,
        metadata={
            "help": "dataset folder or gs:// URI in the Kaggle layout (styles.csv + images/, optionally "
            "duplicate_groups.csv); default: ../shared/data/fashion-product-images-small beside the checkout, when present"
        },
    )
    out: str = field(
        default=str(REPO_ROOT / "build" / "model-store"), metadata={"help": "model store: a folder or gs://bucket[/prefix]"}
    )
    work_dir: Path = field(default=REPO_ROOT / "build" / "train-work", metadata={"help": "where stages keep their files"})
    weights: str = field(
        default_factory=default_weights,
        metadata={
            "help": "'imagenet' (downloaded by Keras), a local Keras weights file (no top), or 'none' (random init, for tests)"
        },
    )
    alpha: float = field(default=0.35, metadata={"help": "MobileNetV2 width multiplier"})
    size: int = field(default=224, metadata={"help": "input size in pixels"})
    top_n: int = field(default=10, metadata={"help": "keep the N most frequent articleTypes"})
    seed: int = field(default=42, metadata={"help": "seeds the split and the training"})
    val_fraction: float = field(default=0.15, metadata={"help": "share of each class's full-size images for validation"})
    test_fraction: float = field(default=0.15, metadata={"help": "share of each class's full-size images for the test"})
    small_images: bool = field(
        default=True,
        metadata={"help": "train on images smaller than the input size too (the 60x80 thumbnails); never held out"},
    )
    max_accuracy_loss: float = field(
        default=0.005,
        metadata={"help": "serve the fastest exported variant whose test accuracy is within this of the best variant's"},
    )
    representative_count: int = field(default=1500, metadata={"help": "int8 calibration images from the training split"})
    version: str | None = field(default=None, metadata={"help": "version name (default: UTC timestamp)"})
    force_publish: bool = field(default=False, metadata={"help": "move the pointer even when the gate refuses"})
    flip_average: bool = field(
        default=True, metadata={"help": "export a model that averages the scores of the image and its mirror image"}
    )
    sources: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "an added data source (an export: styles.csv + images/, a folder or gs://), path[:weight]; repeatable. "
            "weight: how many times per epoch its training images count (a sampling ratio, default 1)"
        },
    )
    split_from: str | None = field(
        default=None,
        metadata={"help": "a previous split.json (e.g. the current model's): its assignments are kept, so images never cross"},
    )
    init_from: str | None = field(
        default=None, metadata={"help": "a Keras model (model.keras of an earlier run) to start from: fine-tune it"}
    )
    publish_as: str = field(
        default="current",
        metadata={
            "help": "current: move the current pointer when the gate passes; candidate: publish as the candidate "
            "(scored in shadow, promoted by `fashionctl model promote`)",
            "choices": ("current", "candidate"),
        },
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
