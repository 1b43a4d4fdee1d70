"""Model stage: MobileNetV2 transfer-learning classifier.

The model takes uint8-range pixels (as ``shared.preprocess`` produces them)
and scales them itself, so serving feeds decoded bytes straight in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import keras

#: the category head's output name (the only output of a single-head model)
CATEGORY_OUTPUT = "probabilities"


def attribute_output(name: str) -> str:
    """The output (layer and TFLite signature) name of attribute ``name``'s head."""
    return f"attr_{name}"


@dataclass(frozen=True)
class ModelSpec:
    num_classes: int
    size: int = 224
    alpha: float = 0.35
    weights: str | None = "imagenet"  # "imagenet", a local .h5 path, or None
    dropout: float = 0.2
    #: attribute heads (issue 19): attribute name -> number of classes, in
    #: head order; empty: the single-head model, unchanged
    attributes: Mapping[str, int] = field(default_factory=dict)


def build_model(spec: ModelSpec) -> tuple[keras.Model, keras.Model]:
    """Return ``(model, base)``; the base starts frozen."""
    base = keras.applications.MobileNetV2(
        input_shape=(spec.size, spec.size, 3),
        alpha=spec.alpha,
        include_top=False,
        weights=spec.weights,
    )
    base.trainable = False
    inputs = keras.Input(shape=(spec.size, spec.size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    # training=False keeps BatchNorm statistics frozen, also while fine-tuning.
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(inputs, heads(x, spec), name="fashion_mobilenetv2"), base


def heads(features, spec: ModelSpec):
    """The softmax heads on the pooled (and dropped-out) backbone features:
    the category head alone (one tensor, as before) when ``spec.attributes``
    is empty, else a dict {output name: tensor} with the category head under
    :data:`CATEGORY_OUTPUT` and one head per attribute under
    :func:`attribute_output` (so the exported TFLite signature names every
    output; one invoke computes them all)."""
    category = keras.layers.Dense(spec.num_classes, activation="softmax", name=CATEGORY_OUTPUT)(features)
    if not spec.attributes:
        return category
    outputs = {CATEGORY_OUTPUT: category}
    for name, classes in spec.attributes.items():
        if classes < 2:
            raise ValueError(f"attribute {name!r} needs at least two classes, got {classes}")
        outputs[attribute_output(name)] = keras.layers.Dense(classes, activation="softmax", name=attribute_output(name))(features)
    return outputs


def unfreeze_top(base: keras.Model, fraction: float) -> int:
    """Make the top ``fraction`` of the base's layers trainable (BatchNorm
    layers stay frozen); returns how many layers were unfrozen."""
    base.trainable = True
    cut = int(len(base.layers) * (1.0 - fraction))
    unfrozen = 0
    for k, layer in enumerate(base.layers):
        trainable = k >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        unfrozen += trainable
    return unfrozen


@keras.saving.register_keras_serializable(package="fashion")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left to right (deterministic; used for test-time averaging)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """Wrap a trained model so that it averages its scores on the image and on
    its mirror image: one more pass, measured to gain accuracy on the test
    and validation splits. The exported TFLite model does the same in one invoke."""
    inputs = keras.Input(shape=model.input_shape[1:], name="pixels")
    mirrored = HorizontalFlip(name="mirror")(inputs)
    plain, flipped = model(inputs), model(mirrored)
    if isinstance(plain, dict):  # several heads: average each
        outputs = {key: keras.layers.Average(name=f"flip_average_{key}")([plain[key], flipped[key]]) for key in plain}
    else:
        outputs = keras.layers.Average(name="flip_average")([plain, flipped])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_avg")


def split_base(base: keras.Model, cut: str) -> tuple[keras.Model, keras.Model]:
    """``(bottom, top)`` of the base network, cut after layer ``cut`` (a
    layer whose output is the only tensor crossing the cut, such as
    ``block_5_add``): ``top(bottom(x)) == base(x)``. The two share the base's
    layers, so training ``top`` trains the base. ValueError for an unknown
    layer name."""
    try:
        tensor = base.get_layer(cut).output
    except ValueError as exc:
        raise ValueError(f"no layer {cut!r} in {base.name}: {exc}") from exc
    return keras.Model(base.input, tensor, name="bottom"), keras.Model(tensor, base.output, name="top")


def head_on(top: keras.Model, spec: ModelSpec) -> keras.Model:
    """The classifier on cached features: ``top`` (BatchNorm in inference
    mode), then the same pooling, dropout and dense layers as ``build_model``
    names them, so their weights transfer by name."""
    inputs = keras.Input(shape=top.input_shape[1:], name="features")
    x = top(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    return keras.Model(inputs, heads(x, spec), name="fashion_top")
