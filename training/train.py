"""Train stage: a frozen-base phase, then fine-tuning of the base, with
augmentation and early stopping on validation accuracy."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from training.config import AUGMENTATIONS, TrainConfig
from training.data import Dataset, Progress
from training.model import CATEGORY_OUTPUT, ModelSpec, attribute_output, build_model, head_on, split_base, unfreeze_top

log = logging.getLogger(__name__)

__all__ = [
    "AUGMENTATIONS",
    "Features",
    "TrainConfig",
    "augmenter",
    "class_weights",
    "compute_features",
    "copy_weights",
    "head_names",
    "tiled_attributes",
    "train",
]


class ProgressLog(keras.callbacks.Callback):
    """Structured progress lines: one per epoch and one every ``every``
    seconds inside an epoch, with images/s and the phase's ETA (its epoch
    budget; early stopping may end it sooner)."""

    def __init__(self, phase: str, epochs: int, steps: int, batch_size: int, every: float = 30.0) -> None:
        super().__init__()
        self.phase, self.epochs, self.steps, self.batch_size, self.every = phase, epochs, steps, batch_size, every
        self._start = self._last = self._phase_start = 0.0
        self._epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._phase_start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._start = self._last = time.perf_counter()

    def _rate_eta(self, steps_done: int) -> tuple[float, float]:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = steps_done * self.batch_size / elapsed
        step_seconds = elapsed / max(steps_done, 1)
        left = (self.steps - steps_done) + self.steps * (self.epochs - self._epoch - 1)
        return rate, left * step_seconds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if batch == 0 or now - self._last < self.every:  # the first step also traces the graph: no rate from it alone
            return
        self._last = now
        rate, eta = self._rate_eta(batch + 1)
        log.info(
            "train %s epoch %d/%d: step %d/%d, %.0f images/s, ETA %.0f s",
            self.phase,
            self._epoch + 1,
            self.epochs,
            batch + 1,
            self.steps,
            rate,
            eta,
            extra={
                "stage": "train",
                "phase": self.phase,
                "epoch": self._epoch + 1,
                "step": batch + 1,
                "steps": self.steps,
                "images_per_s": round(rate, 1),
                "eta_s": round(eta),
            },
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: round(float(v), 4) for k, v in (logs or {}).items()}
        for key in ("accuracy", "val_accuracy"):  # a model with attribute heads names its category's accuracy
            prefix = "val_" if key.startswith("val_") else ""
            logs.setdefault(key, logs.get(f"{prefix}{CATEGORY_OUTPUT}_accuracy", 0.0))
        rate, eta = self._rate_eta(self.steps)
        log.info(
            "train %s epoch %d/%d: loss %.3f acc %.3f val_loss %.3f val_acc %.3f, %.0f images/s, ETA %.0f s",
            self.phase,
            epoch + 1,
            self.epochs,
            logs.get("loss", 0),
            logs.get("accuracy", 0),
            logs.get("val_loss", 0),
            logs.get("val_accuracy", 0),
            rate,
            eta,
            extra={
                "stage": "train",
                "phase": self.phase,
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "seconds": round(time.perf_counter() - self._start, 1),
                "images_per_s": round(rate, 1),
                "eta_s": round(eta),
                **logs,
            },
        )


def augmenter(seed: int, kind: str = "product") -> keras.Sequential:
    """Random transforms of float pixel batches in [0, 255].

    ``product``: flip, small rotation, zoom, shift (white fill, as product
    photos have) and brightness. ``photo`` adds what photos taken outside a
    studio bring: a random background behind the white studio backdrop,
    contrast and colour shifts, slight blur, tighter crops (zoom in to 25%)
    and small perspective changes.
    """
    if kind not in AUGMENTATIONS or kind == "none":
        raise ValueError(f"augment must be one of {AUGMENTATIONS[1:]}, not {kind!r}")
    photo = kind == "photo"
    layers: list[keras.layers.Layer] = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if photo:
        layers.append(RandomBackground(probability=0.3, seed=seed))
    layers += [
        keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomZoom((-0.25, 0.1) if photo else (-0.1, 0.1), fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomBrightness(0.15 if photo else 0.1, value_range=(0.0, 255.0), seed=seed),
    ]
    if photo:
        layers += [
            keras.layers.RandomContrast(0.2, seed=seed),
            RandomColorShift(0.08, seed=seed),
            RandomBlur(probability=0.2, seed=seed),
            keras.layers.Lambda(lambda x: keras.ops.clip(x, 0.0, 255.0), name="clip"),
        ]
    return keras.Sequential(layers, name="augment")


class RandomBackground(keras.layers.Layer):
    """With ``probability`` per image, replace the near-white studio
    backdrop (every channel above 235) with a random colour gradient and
    noise, as a photo taken against a wall, a bed or a floor shows."""

    def __init__(self, probability: float = 0.3, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.probability = probability
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        shape = keras.ops.shape(images)
        batch = shape[0]
        mask = keras.ops.cast(keras.ops.all(images > 235.0, axis=-1, keepdims=True), "float32")
        start = keras.random.uniform((batch, 1, 1, 3), 0.0, 255.0, seed=self.generator)
        end = keras.random.uniform((batch, 1, 1, 3), 0.0, 255.0, seed=self.generator)
        ramp = keras.ops.reshape(keras.ops.linspace(0.0, 1.0, shape[1]), (1, -1, 1, 1))
        noise = keras.random.normal((batch, shape[1], shape[2], 1), stddev=12.0, seed=self.generator)
        background = keras.ops.clip(start + (end - start) * ramp + noise, 0.0, 255.0)
        apply = keras.ops.cast(keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < self.probability, "float32")
        return images + apply * mask * (background - images)

    def get_config(self) -> dict:
        return {**super().get_config(), "probability": self.probability}


class RandomColorShift(keras.layers.Layer):
    """Scale each channel by a random factor in [1 - amount, 1 + amount]
    (white balance of another light source)."""

    def __init__(self, amount: float = 0.08, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.amount = amount
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        batch = keras.ops.shape(images)[0]
        gains = keras.random.uniform((batch, 1, 1, 3), 1.0 - self.amount, 1.0 + self.amount, seed=self.generator)
        return images * gains

    def get_config(self) -> dict:
        return {**super().get_config(), "amount": self.amount}


class RandomBlur(keras.layers.Layer):
    """With ``probability`` per image, a 3x3 box blur (a phone camera's
    softness, or a small image scaled up)."""

    def __init__(self, probability: float = 0.2, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.probability = probability
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        batch = keras.ops.shape(images)[0]
        blurred = keras.ops.average_pool(images, pool_size=3, strides=1, padding="same")
        apply = keras.ops.cast(keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < self.probability, "float32")
        return images + apply * (blurred - images)

    def get_config(self) -> dict:
        return {**super().get_config(), "probability": self.probability}


def _targets(category: np.ndarray, attributes: dict[str, np.ndarray], multi: bool):
    """What a dataset yields as ``y``: the category's class indices alone, or
    with attribute heads {output name: (N,) int64} (sparse, -1 missing)."""
    if not multi:
        return category
    return {CATEGORY_OUTPUT: category, **{attribute_output(name): values for name, values in attributes.items()}}


def _datasets(
    data: Dataset, config: TrainConfig, num_classes: int, multi: bool = False
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    def one_hot(x, y):
        return tf.cast(x, tf.float32), (y if multi else tf.one_hot(y, num_classes))

    attributes = data.attributes.targets if multi else {"train": {}, "val": {}}
    train = tf.data.Dataset.from_tensor_slices(
        (data.pixels["train"], _targets(data.targets["train"], attributes["train"], multi))
    )
    train = train.shuffle(len(data.targets["train"]), seed=config.seed, reshuffle_each_iteration=True)
    train = train.batch(config.batch_size).map(one_hot, num_parallel_calls=tf.data.AUTOTUNE)
    if config.augment != "none":
        aug = augmenter(config.seed, config.augment)
        train = train.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((data.pixels["val"], _targets(data.targets["val"], attributes["val"], multi)))
    val = val.batch(64).map(one_hot)
    return train.prefetch(tf.data.AUTOTUNE), val.cache().prefetch(tf.data.AUTOTUNE)


def class_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(targets, minlength=num_classes).astype(float)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    return {k: float(w) for k, w in enumerate(weights)}


@dataclass(frozen=True)
class Features:
    """Cached outputs of the frozen layers (:func:`compute_features`):
    ``train`` (views x N, h, w, c) float16 with ``train_targets`` (views x N,)
    class indices, ``val`` (M, h, w, c) float16 in split order;
    ``train_attributes``: attribute -> (views x N,) int64 targets (-1
    missing), the rows of ``train`` in the same order (empty: no heads)."""

    cache_after: str
    train: np.ndarray
    train_targets: np.ndarray
    val: np.ndarray
    train_attributes: dict[str, np.ndarray] = field(default_factory=dict)


def tiled_attributes(data: Dataset, views: int) -> dict[str, np.ndarray]:
    """The training split's attribute targets repeated once per cached view
    (the rows of :attr:`Features.train`); empty without attribute labels."""
    if data.attributes is None:
        return {}
    return {name: np.tile(values, views) for name, values in data.attributes.targets["train"].items()}


def compute_features(data: Dataset, spec: ModelSpec, config: TrainConfig, init: keras.Model | None = None) -> Features:
    """Run the frozen layers (pretrained, never trained: the same for every
    seed; ``init``'s when fine-tuning a model) once over the training views and the val split."""
    model, base = build_model(spec)
    if init is not None:
        copy_weights(init, model)
    bottom, _ = split_base(base, config.cache_after)
    views = config.views if config.augment != "none" else 1
    aug = augmenter(config.seed, config.augment) if config.augment != "none" else None
    parts = [cached_features(bottom, data.pixels["train"], augment=None, what="train")]
    parts += [cached_features(bottom, data.pixels["train"], augment=aug, what=f"train, view {v + 1}") for v in range(1, views)]
    return Features(
        cache_after=config.cache_after,
        train=np.concatenate(parts) if len(parts) > 1 else parts[0],
        train_targets=np.tile(data.targets["train"], views),
        val=cached_features(bottom, data.pixels["val"], augment=None, what="val"),
        train_attributes=tiled_attributes(data, views),
    )


def head_names(spec: ModelSpec) -> list[str]:
    """The output layers' names of a model built from ``spec``: the category
    head, then one per attribute."""
    return [CATEGORY_OUTPUT, *(attribute_output(name) for name in spec.attributes)]


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """``source``'s weights into ``target``: all at once when the two have
    the same architecture, else layer by layer for the top-level layers both
    have under one name with the same weight shapes (a single-head model
    fine-tuned into one with attribute heads: the base and the category head
    carry over, the new heads start fresh)."""
    try:
        target.set_weights(source.get_weights())
        return
    except ValueError:
        pass
    names = {layer.name for layer in source.layers}
    for layer in target.layers:
        if layer.name in names and layer.weights:
            theirs = source.get_layer(layer.name).get_weights()
            if [w.shape for w in theirs] == [tuple(w.shape) for w in layer.weights]:
                layer.set_weights(theirs)


def train(
    data: Dataset, spec: ModelSpec, config: TrainConfig, features: Features | None = None, init: keras.Model | None = None
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit the model; returns it (pixels in, scores out) with the merged
    per-epoch history.

    With ``config.cache_after`` set, the layers up to that one stay frozen
    and run once per training image and view (:func:`cached_features`); the
    network above it trains on those features, which is many times cheaper
    than back-propagating through the whole network each epoch. Without it,
    the whole base is fine-tuned on pixels. Either way: a frozen-base phase,
    then fine-tuning (BatchNorm frozen) with a cosine-decaying learning rate,
    early stopping on validation accuracy restoring the best epoch's weights.
    ``features``: computed before by :func:`compute_features` with the same
    ``cache_after`` and pretrained weights (several seeds share them).
    ``init``: a trained model to start from (fine-tuning it) instead of the
    pretrained base and a new head (:func:`copy_weights`: heads it lacks start fresh).

    Attribute heads (issue 19): a ``spec`` with ``attributes`` trains them
    jointly with the category on ``data.attributes``' targets (their names
    and class counts must match the spec's; ValueError otherwise), with
    :func:`training.attributes.joint_losses` (masked, class-weighted; each
    weighing ``config.attribute_loss_weight``). Early stopping still watches
    the category's val accuracy; the history holds every head's loss.
    """
    multi = bool(spec.attributes)
    if multi:
        _check_attributes(data, spec)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()  # the same data, seed and machine give the same model
    model, base = build_model(spec)
    if init is not None:
        copy_weights(init, model)
    if config.cache_after:
        _, top = split_base(base, config.cache_after)
        trainee = head_on(top, spec)
        if init is not None:
            for name in head_names(spec):
                trainee.get_layer(name).set_weights(model.get_layer(name).get_weights())
        if features is None or features.cache_after != config.cache_after or (multi and not features.train_attributes):
            features = compute_features(data, spec, config, init)
        val_attributes = data.attributes.targets["val"] if multi else {}
        train_ds, val_ds = _feature_datasets(
            features, data.targets["val"], config, spec.num_classes, multi=multi, val_attributes=val_attributes
        )
        count, targets = len(features.train_targets), features.train_targets
    else:
        trainee = model
        train_ds, val_ds = _datasets(data, config, spec.num_classes, multi=multi)
        count, targets = len(data.targets["train"]), data.targets["train"]
    steps = max(1, math.ceil(count / config.batch_size))
    weights = class_weights(targets, spec.num_classes) if config.class_weighting else None
    if multi:
        from training.attributes import joint_losses

        loss, loss_weights = joint_losses(
            data.attributes.schema,
            category_weights=[weights[k] for k in range(spec.num_classes)] if weights else None,
            label_smoothing=config.label_smoothing,
            attribute_weight=config.attribute_loss_weight,
        )
        metrics = {CATEGORY_OUTPUT: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
        monitor = f"val_{CATEGORY_OUTPUT}_accuracy"
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        loss_weights, metrics, monitor = None, ["accuracy"], "val_accuracy"
    history: dict[str, list[float]] = {}

    def fit(phase: str, epochs: int, lr: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
        trainee.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, loss_weights=loss_weights, metrics=metrics)
        stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True, mode="max")
        result = trainee.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            verbose=0,
            class_weight=None if multi else weights,
            callbacks=[stop, ProgressLog(phase, epochs, steps, config.batch_size)],
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        if multi:  # the category's accuracy under the names the report and the experiments read
            for key in ("accuracy", "val_accuracy"):
                prefix = "val_" if key.startswith("val_") else ""
                history.setdefault(key, []).extend(float(v) for v in result.history[f"{prefix}{CATEGORY_OUTPUT}_accuracy"])
        history.setdefault("phase", []).extend([phase] * len(result.history["loss"]))

    if config.head_epochs:
        fit("head", config.head_epochs, config.head_lr)
    if config.fine_tune_epochs and config.fine_tune_fraction > 0:
        unfrozen = unfreeze_top(base, config.fine_tune_fraction)
        if config.cache_after:
            unfrozen = sum(layer.trainable for layer in top.layers if layer.weights)
        log.info("fine-tuning %d base layers", unfrozen, extra={"stage": "train", "unfrozen_layers": unfrozen})
        schedule = keras.optimizers.schedules.CosineDecay(config.fine_tune_lr, decay_steps=steps * config.fine_tune_epochs)
        fit("fine_tune", config.fine_tune_epochs, schedule)
    if trainee is not model:  # the base's layers are shared; the heads' weights are copied by name
        for name in head_names(spec):
            model.get_layer(name).set_weights(trainee.get_layer(name).get_weights())
    return model, history


def _check_attributes(data: Dataset, spec: ModelSpec) -> None:
    """ValueError unless ``data`` carries attribute targets for exactly the
    spec's heads, with the spec's class counts, one per training row."""
    labels = data.attributes
    if labels is None:
        raise ValueError("a spec with attribute heads needs the dataset's attribute labels (training.data.with_attributes)")
    have = {name: len(head["classes"]) for name, head in labels.schema.items()}
    if have != dict(spec.attributes):
        raise ValueError(f"the spec's attribute heads {dict(spec.attributes)} are not the data's {have}")
    for name in have:
        if len(labels.targets["train"][name]) != len(data.targets["train"]):
            raise ValueError(
                f"attribute {name!r} has {len(labels.targets['train'][name])} training targets, not {len(data.targets['train'])}"
            )


def cached_features(bottom: keras.Model, pixels: np.ndarray, *, augment: keras.Sequential | None, what: str) -> np.ndarray:
    """``bottom``'s outputs for uint8 ``pixels`` (N, size, size, 3), as
    float16 (N, h, w, c); the pixels go through ``augment`` first when given
    (float [0, 255]), then the model's own scaling (x / 127.5 - 1).
    Logs progress with images/s and ETA."""
    batch = 64
    shape = tuple(int(d) for d in bottom.output.shape[1:])
    out = np.empty((len(pixels), *shape), np.float16)
    progress = Progress("train", f"images through the frozen layers ({what})", len(pixels), every=30.0)

    @tf.function(reduce_retracing=True)
    def run(x):
        if augment is not None:
            x = augment(x, training=True)
        return tf.cast(bottom(x * (1.0 / 127.5) - 1.0, training=False), tf.float16)

    for k in range(0, len(pixels), batch):
        out[k : k + batch] = run(tf.convert_to_tensor(pixels[k : k + batch], tf.float32)).numpy()
        progress.update(min(k + batch, len(pixels)))
    return out


def _feature_datasets(
    features: Features,
    val_targets: np.ndarray,
    config: TrainConfig,
    num_classes: int,
    *,
    multi: bool = False,
    val_attributes: dict[str, np.ndarray] | None = None,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """tf.data pipelines over cached features: training shuffled, batched and
    flipped left-right at random (in feature space) unless augment is none.
    ``multi``: the targets are {output name: sparse indices} with every
    attribute head's (``features.train_attributes``, ``val_attributes``),
    each row keeping its own labels through the shuffle."""
    flip = keras.layers.RandomFlip("horizontal", seed=config.seed) if config.augment != "none" else None

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        return (flip(x, training=True) if flip is not None else x), (y if multi else tf.one_hot(y, num_classes))

    train_y = _targets(features.train_targets, features.train_attributes, multi)
    train = tf.data.Dataset.from_tensor_slices((features.train, train_y))
    train = train.shuffle(len(features.train_targets), seed=config.seed, reshuffle_each_iteration=True)
    train = train.batch(config.batch_size).map(prepare)
    val = tf.data.Dataset.from_tensor_slices((features.val, _targets(val_targets, val_attributes or {}, multi))).batch(256)
    val = val.map(lambda x, y: (tf.cast(x, tf.float32), (y if multi else tf.one_hot(y, num_classes))))
    return train.prefetch(tf.data.AUTOTUNE), val.cache().prefetch(tf.data.AUTOTUNE)
