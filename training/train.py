"""Train stage: a frozen-base phase, then fine-tuning of the upper layers,
with augmentation and early stopping on validation accuracy."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from training.data import Dataset
from training.model import ModelSpec, build_model, unfreeze_top

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    head_epochs: int = 8
    fine_tune_epochs: int = 25
    fine_tune_fraction: float = 1.0
    batch_size: int = 16
    head_lr: float = 1e-3
    fine_tune_lr: float = 1e-4
    label_smoothing: float = 0.1
    class_weighting: bool = True
    augment: bool = True
    patience: int = 5
    seed: int = 42


class ProgressLog(keras.callbacks.Callback):
    """One structured log line per epoch."""

    def __init__(self, phase: str, epochs: int) -> None:
        super().__init__()
        self.phase, self.epochs, self._start = phase, epochs, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: round(float(v), 4) for k, v in (logs or {}).items()}
        log.info(
            "train %s epoch %d/%d: loss %.3f acc %.3f val_loss %.3f val_acc %.3f",
            self.phase,
            epoch + 1,
            self.epochs,
            logs.get("loss", 0),
            logs.get("accuracy", 0),
            logs.get("val_loss", 0),
            logs.get("val_accuracy", 0),
            extra={
                "stage": "train",
                "phase": self.phase,
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "seconds": round(time.perf_counter() - self._start, 1),
                **logs,
            },
        )


def augmenter(seed: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=255.0, seed=seed),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="constant", fill_value=255.0, seed=seed),
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", fill_value=255.0, seed=seed),
            keras.layers.RandomBrightness(0.1, value_range=(0.0, 255.0), seed=seed),
        ],
        name="augment",
    )


def _datasets(data: Dataset, config: TrainConfig, num_classes: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    def one_hot(x, y):
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes)

    train = tf.data.Dataset.from_tensor_slices((data.pixels["train"], data.targets["train"]))
    train = train.shuffle(len(data.targets["train"]), seed=config.seed, reshuffle_each_iteration=True)
    train = train.batch(config.batch_size).map(one_hot, num_parallel_calls=tf.data.AUTOTUNE)
    if config.augment:
        aug = augmenter(config.seed)
        train = train.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((data.pixels["val"], data.targets["val"]))
    val = val.batch(64).map(one_hot)
    return train.prefetch(tf.data.AUTOTUNE), val.cache().prefetch(tf.data.AUTOTUNE)


def class_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(targets, minlength=num_classes).astype(float)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    return {k: float(w) for k, w in enumerate(weights)}


def train(data: Dataset, spec: ModelSpec, config: TrainConfig) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit the model; returns it with the merged per-epoch history."""
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()  # the same data, seed and machine give the same model
    model, base = build_model(spec)
    train_ds, val_ds = _datasets(data, config, spec.num_classes)
    weights = class_weights(data.targets["train"], spec.num_classes) if config.class_weighting else None
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    history: dict[str, list[float]] = {}

    def fit(phase: str, epochs: int, lr: float) -> None:
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=config.patience, restore_best_weights=True, mode="max"
        )
        result = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            verbose=0,
            class_weight=weights,
            callbacks=[stop, ProgressLog(phase, epochs)],
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([phase] * len(result.history["loss"]))

    if config.head_epochs:
        fit("head", config.head_epochs, config.head_lr)
    if config.fine_tune_epochs and config.fine_tune_fraction > 0:
        unfrozen = unfreeze_top(base, config.fine_tune_fraction)
        log.info("fine-tuning %d base layers", unfrozen, extra={"stage": "train", "unfrozen_layers": unfrozen})
        fit("fine_tune", config.fine_tune_epochs, config.fine_tune_lr)
    return model, history
