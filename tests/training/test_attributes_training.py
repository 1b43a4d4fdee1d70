"""Joint training of the attribute heads (issue 19) on a few dozen images of
the small set, the masked loss, the val thresholds and the per-attribute report."""

from __future__ import annotations

import numpy as np
import pytest

from shared.dev_paths import DEV_DATA as SMALL
from shared.manifest import Manifest
from shared.thresholds import NEVER

pytest.importorskip("tensorflow", reason="TensorFlow is needed to train the tiny models")


SIZE = 32


def test_masked_loss_ignores_missing_labels_and_weights_classes():
    from training.attributes import MaskedSparseCrossEntropy

    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], np.float32)
    plain = float(MaskedSparseCrossEntropy()(np.array([0, 1]), scores[:2]))
    assert plain == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-4)
    assert float(MaskedSparseCrossEntropy()(np.array([0, 1, -1]), scores)) == pytest.approx(plain, rel=1e-4)
    weighted = float(MaskedSparseCrossEntropy([1.0, 3.0])(np.array([0, 1]), scores[:2]))
    assert weighted == pytest.approx(-(np.log(0.9) + 3 * np.log(0.8)) / 4, rel=1e-4)
    assert float(MaskedSparseCrossEntropy()(np.array([-1, -1]), scores[:2])) == 0.0


def test_threshold_and_report_skip_missing_targets():
    from training.attributes import attribute_metrics, choose_threshold

    scores = np.array([[0.95, 0.05]] * 12 + [[0.4, 0.6]] * 4 + [[0.9, 0.1]] * 3, np.float32)
    targets = np.array([0] * 12 + [0] * 4 + [-1] * 3)
    chosen = choose_threshold(scores, targets, precision=0.9, min_images=10)
    assert chosen["reached"] and chosen["threshold"] == pytest.approx(0.95) and chosen["val_images"] == 16
    assert choose_threshold(scores, targets, precision=0.99, min_images=20)["threshold"] == NEVER
    report = attribute_metrics(scores, targets, ["a", "b"], chosen["threshold"])
    assert report["accuracy"] == pytest.approx(12 / 16) and report["missing"] == 3
    assert report["confusion_matrix"] == [[12, 4], [0, 0]]
    assert report["coverage"] == pytest.approx(12 / 16) and report["accuracy_when_filled"] == 1.0
    assert 0 < report["macro_f1"] <= 1


@pytest.mark.training
def test_joint_training_on_small_set_images_and_serving(tmp_path):
    """A few dozen real images: the heads train jointly (every head's loss
    falls), the export gives every head and the manifest carries them."""
    if not SMALL.exists():
        pytest.skip(f"{SMALL} is not on this machine")
    import keras

    from shared.classifier import Classifier, inspect_model
    from shared.manifest import sha256_bytes, write_manifest
    from shared.model_layout import MANIFEST_FILE, MODEL_FILE
    from shared.preprocess import prepare_image
    from training.attributes import attribute_metrics, choose_threshold, compile_joint, fit_joint, manifest_attributes
    from training.data import Split, attribute_labels, read_attributes, read_styles, top_classes
    from training.export import to_int8
    from training.model import ModelSpec, heads

    rows, _ = read_styles((SMALL / "styles.csv").read_bytes())
    labels = top_classes(rows, 3)
    picked: list[tuple[str, str]] = []
    for lab in labels:
        picked += [(i, l2) for i, l2 in rows if l2 == lab][:16]
    split = Split(labels=labels, seed=0, fractions={}, items={"train": picked[::2], "val": picked[1::2], "test": []})
    values = read_attributes((SMALL / "styles.csv").read_bytes())
    attrs = attribute_labels(values, split, min_count=3)
    assert "colour" in attrs.schema and len(attrs.schema) >= 2  # an attribute with one class left has no head
    pixels = {
        n: np.stack([prepare_image((SMALL / "images" / f"{i}.jpg").read_bytes(), SIZE) for i, _ in split.items[n]])
        for n in ("train", "val")
    }
    category = {n: np.array([labels.index(lab) for _, lab in split.items[n]]) for n in ("train", "val")}

    keras.utils.set_random_seed(3)
    spec = ModelSpec(
        num_classes=len(labels), size=SIZE, weights=None, attributes={a: len(h["classes"]) for a, h in attrs.schema.items()}
    )
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, heads(x, spec))
    compile_joint(model, attrs.schema, learning_rate=1e-2)
    history = fit_joint(model, pixels["train"], category["train"], attrs.targets["train"], epochs=15, batch_size=8)
    for name in ["probabilities_loss", *(f"attr_{a}_loss" for a in attrs.schema)]:
        assert np.isfinite(history[name]).all() and history[name][-1] < history[name][0], name

    val_scores = model.predict(pixels["val"].astype(np.float32), verbose=0)
    thresholds = {a: choose_threshold(val_scores[f"attr_{a}"], attrs.targets["val"][a], min_images=3) for a in attrs.schema}
    reports = {
        a: attribute_metrics(
            val_scores[f"attr_{a}"], attrs.targets["val"][a], attrs.schema[a]["classes"], thresholds[a]["threshold"]
        )
        for a in attrs.schema
    }
    assert all(len(r["confusion_matrix"]) == len(attrs.schema[a]["classes"]) for a, r in reports.items())

    data = to_int8(model, pixels["train"].astype(np.float32))
    (tmp_path / MODEL_FILE).write_bytes(data)
    manifest = Manifest(
        version="tiny-joint",
        labels=labels,
        input_size=SIZE,
        input_dtype=inspect_model(data)["input"]["dtype"],
        quantization={"type": "int8"},
        model_sha256=sha256_bytes(data),
        attributes=manifest_attributes(attrs.schema, thresholds),
    )
    write_manifest(manifest, tmp_path / MANIFEST_FILE)
    prediction = Classifier.load(tmp_path).classify((SMALL / "images" / f"{split.items['val'][0][0]}.jpg").read_bytes())
    assert set(prediction.attributes) == set(attrs.schema)
    for a, result in prediction.attributes.items():
        assert result.best in attrs.schema[a]["classes"]
        assert (result.value is None) == (result.confidence < result.threshold or result.threshold >= NEVER)


def test_report_has_a_section_per_attribute():
    from training.attributes import attribute_metrics
    from training.report import attributes_html

    scores = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], np.float32)
    colour = attribute_metrics(scores, np.array([0, 1, 1]), ["black", "blue"], 0.8) | {
        "classes": ["black", "blue"],
        "threshold": 0.8,
    }
    page = attributes_html({"colour": colour})
    assert "<td>colour</td><td>66.7%</td>" in page
    assert "<tr><th>blue</th><td>1</td><td>1</td></tr>" in page  # one blue taken for black
    assert attributes_html(None) == attributes_html({}) == ""


def test_category_loss_matches_the_single_head_recipe():
    """The multi-head category loss (label smoothing, class weights averaged
    over the batch) equals Keras' CategoricalCrossentropy with class_weight,
    which the single-head recipe uses."""
    import keras

    from training.attributes import MaskedSparseCrossEntropy, joint_losses

    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]], np.float32)
    targets = np.array([0, 1, 2, 1])
    weights = [0.5, 2.0, 1.5]
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        np.eye(3)[targets], scores, sample_weight=np.array(weights)[targets]
    )
    ours = MaskedSparseCrossEntropy(weights, label_smoothing=0.1, normalize="samples")(targets, scores)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)
    losses, loss_weights = joint_losses({"colour": {"class_weights": [1.0, 3.0]}}, category_weights=weights, label_smoothing=0.1)
    assert loss_weights == {"probabilities": 1.0, "attr_colour": 0.25}
    assert losses["probabilities"].label_smoothing == 0.1 and losses["attr_colour"].class_weights == [1.0, 3.0]
    again = MaskedSparseCrossEntropy.from_config(losses["probabilities"].get_config())
    assert (again.normalize, again.class_weights, again.label_smoothing) == ("samples", weights, 0.1)
    with pytest.raises(ValueError, match="normalize"):
        MaskedSparseCrossEntropy(normalize="mean")


@pytest.mark.training
def test_cached_feature_path_trains_every_head_with_rows_aligned():
    """train() on cached features with attribute heads: the attribute
    targets are tiled per view with the category's (compute_features), each
    row keeps its labels through the shuffle (a head whose labels follow the
    features learns them, a head of noise labels cannot), and every head's
    weights reach the full model."""
    import keras

    from training.config import TrainConfig
    from training.data import AttributeLabels, Dataset, Split
    from training.model import ModelSpec, build_model, split_base
    from training.train import Features, compute_features, train

    rng = np.random.default_rng(0)
    n, cut = 48, "block_16_project_BN"  # a late cut: the random (weights=None) layers above it keep the signal
    category = np.arange(n) % 2
    twin = category.copy()  # an attribute equal to the category: learnable only if its rows stay aligned
    twin[::7] = -1  # some missing
    noise = rng.integers(0, 3, n)
    items = {name: [(str(k), ("a", "b")[category[k]]) for k in range(n)] for name in ("train", "val", "test")}
    labels = AttributeLabels(
        schema={
            "gender": {"classes": ["x", "y"], "class_weights": [1.0, 1.0]},
            "usage": {"classes": ["p", "q", "r"], "class_weights": [1.0, 1.0, 1.0]},
        },
        targets={name: {"gender": twin, "usage": noise} for name in ("train", "val", "test")},
    )
    pixels = rng.integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.uint8)
    data = Dataset(
        split=Split(labels=["a", "b"], seed=0, fractions={}, items=items),
        pixels=dict.fromkeys(items, pixels),
        targets=dict.fromkeys(items, category),
        attributes=labels,
    )
    spec = ModelSpec(num_classes=2, size=SIZE, weights=None, attributes={"gender": 2, "usage": 3})
    config = TrainConfig(
        head_epochs=6,
        fine_tune_epochs=0,
        batch_size=8,
        head_lr=1e-2,
        augment="product",
        views=2,
        cache_after=cut,
        patience=10,
        attribute_loss_weight=1.0,
    )
    tiled = compute_features(data, spec, config)
    assert len(tiled.train) == 2 * n
    np.testing.assert_array_equal(tiled.train_attributes["gender"], np.tile(twin, 2))
    np.testing.assert_array_equal(tiled.train_targets, np.tile(category, 2))

    bottom, _ = split_base(build_model(spec)[1], cut)
    shape = tuple(int(d) for d in bottom.output.shape[1:])
    signal = np.where(category == 1, 2.0, -2.0)[:, None, None, None]
    made = (rng.normal(0, 1, (n, *shape)) + signal).astype(np.float16)  # features that carry the category
    features = Features(cache_after=cut, train=made, train_targets=category, val=made, train_attributes=labels.targets["train"])
    model, history = train(data, spec, config, features)
    assert {"attr_gender_loss", "attr_usage_loss", "probabilities_loss", "accuracy", "val_accuracy"} <= set(history)
    assert len(history["val_accuracy"]) == len(history["phase"]) == 6
    assert history["attr_gender_loss"][-1] < 0.35 and history["attr_gender_loss"][-1] < history["attr_usage_loss"][-1] / 2
    scores = model.predict(pixels[:4].astype(np.float32), verbose=0)
    assert {k: v.shape for k, v in scores.items()} == {"probabilities": (4, 2), "attr_gender": (4, 2), "attr_usage": (4, 3)}
    with pytest.raises(ValueError, match="attribute heads"):
        train(data, ModelSpec(num_classes=2, size=SIZE, weights=None, attributes={"gender": 2}), config, features)
    keras.backend.clear_session()
