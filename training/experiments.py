"""``python -m training.experiments NAME... [job options]``: named variants
of the job's recipe, trained and scored on one fixed split, so that every
claim about the recipe comes from a command.

The split is the one in ``--work-dir``/split.json (copy the embedded
model's there: ``default-model/models/<version>/split.json``), so every
variant sees the same train, val and test images. The frozen layers' outputs
(up to ``--cache-after``) are pretrained and the same for every variant of
one input size, so they are computed once and kept on disk in
``--work-dir``/features/ (float16 ``.npy``): the training views, val, test,
and the test split's "outside the studio" proxy (:mod:`training.photo_eval`).

Each run prints one JSON line (and appends it to ``--work-dir``/experiments.jsonl):
the variant's recipe changes, best val accuracy and its epoch, Keras test
accuracy and per-class recall on the test split and on the proxy (computed
from the cached float16 features, as the model was trained on them), and the
wall time; the model is kept in ``--work-dir``/experiments/NAME/model.keras.

``--score PATH...`` scores existing Keras models (such as the job's own
``model.keras``) the same way, without training. ``--ensemble A B ...``
averages the scores of several models (experiment names or ``.keras`` paths)
inside one TFLite model (float16 weights, one pass; the frozen layers, the
same in every member, run once), and measures it through the shared
Classifier against its first member exported the same way: test accuracy,
and bare ``invoke()`` latency on one thread, the two models called in turn in
one loop so that the machine's load hits both alike (fastest and median).

``--exports A B ...`` exports each model (experiment names or ``.keras``
paths, of any input size) as the job exports its one-pass variants, int8
(uint8 in and out, calibrated on the job's class-balanced sample of
training images, decoded at the model's own size) and float16 weights, and
measures every export through the shared Classifier at the model's own
input size: test accuracy, agreement with the Keras model on the same
pixels, size, and bare ``invoke()`` latency on one thread, all the exports
called in turn in one loop (fastest and median), as ``--ensemble`` does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("training.experiments")

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "FeatureCache",
    "Session",
    "calibration_indices",
    "ensemble_model",
    "features_head",
    "main",
    "run_exports",
]


@dataclass(frozen=True)
class Experiment:
    """One named variant of the recipe: ``train`` overrides fields of
    :class:`training.config.TrainConfig`; ``size`` the input size (pixels)."""

    name: str
    about: str
    train: dict[str, Any] = field(default_factory=dict)
    size: int | None = None


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("default", "the job's recipe as it is"),
        Experiment("ls0", "label smoothing 0 (default 0.1)", {"label_smoothing": 0.0}),
        Experiment("long", "up to 12 fine-tuning epochs, patience 4 (default 6 and 3)", {"fine_tune_epochs": 12, "patience": 4}),
        Experiment(
            "photo2",
            "each training image plus one view through the `photo` augmentation (--views 2 --augment photo)",
            {"views": 2, "augment": "photo"},
        ),
        Experiment("seed1", "the default recipe with seed 1 (an ensemble member)", {"seed": 1}),
        Experiment("seed2", "the default recipe with seed 2 (an ensemble member)", {"seed": 2}),
        Experiment("size192", "192x192 input (default 224)", size=192),
        Experiment(
            "attributes",
            "the default recipe plus the attribute heads (issue 19: gender, colour family, usage, season)",
            {"attributes": True},
        ),
    )
}


class FeatureCache:
    """The frozen layers' outputs, computed once per input size and kept as
    float16 ``.npy`` files in ``folder``."""

    def __init__(self, folder: Path, dataset: Any, spec: Any, cut: str) -> None:
        from training.model import build_model, split_base

        self.folder, self.dataset, self.spec, self.cut = folder, dataset, spec, cut
        folder.mkdir(parents=True, exist_ok=True)
        _, base = build_model(spec)
        self.bottom, _ = split_base(base, cut)

    def get(self, what: str, pixels_fn: Any, augment: Any = None) -> np.ndarray:
        """Features of ``pixels_fn()`` (uint8 (N, size, size, 3)), from the
        file ``<size>-<cut>-<what>.npy`` when present, else computed and saved."""
        from training.train import cached_features

        path = self.folder / f"{self.spec.size}-{self.cut}-{what}.npy"
        if path.is_file():
            return np.load(path)
        out = cached_features(self.bottom, pixels_fn(), augment=augment, what=what)
        np.save(path, out)
        return out

    def features(self, config: Any) -> Any:
        """:class:`training.train.Features` for a recipe, the same values
        :func:`training.train.compute_features` gives (one plain view, then
        ``views - 1`` views through one augmenter seeded with the recipe's seed)."""
        from training.train import Features, augmenter, tiled_attributes

        pixels = self.dataset.pixels
        views = config.views if config.augment != "none" else 1
        parts = [self.get("train", lambda: pixels["train"])]
        aug = augmenter(config.seed, config.augment) if views > 1 else None
        for v in range(1, views):
            what = f"train-{config.augment}-seed{config.seed}-view{v + 1}"
            parts.append(self.get(what, lambda: pixels["train"], augment=aug))
        return Features(
            cache_after=self.cut,
            train=np.concatenate(parts) if len(parts) > 1 else parts[0],
            train_targets=np.tile(self.dataset.targets["train"], views),
            val=self.get("val", lambda: pixels["val"]),
            train_attributes=tiled_attributes(self.dataset, views) if config.attributes else {},
        )

    def test_sets(self, proxy_seed: int) -> dict[str, np.ndarray]:
        """Features of the test split and of its photo-like proxy."""
        from training.photo_eval import photo_like

        test = self.dataset.pixels["test"]
        return {
            "test": self.get("test", lambda: test),
            "photo_proxy": self.get(f"test-photo{proxy_seed}", lambda: photo_like(test, proxy_seed)),
        }


def features_head(model: Any, cut: str, *, attributes: bool = False) -> Any:
    """The part of a trained full model (pixels in) above ``cut``, as a
    model taking the cached features: the same layers and weights. Its
    output is the category's scores; with ``attributes``, a dict {output
    name: scores} of every head the model has (``attr_<name>`` layers)."""
    import keras

    from training.model import CATEGORY_OUTPUT, split_base

    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    _, top = split_base(base, cut)
    inputs = keras.Input(shape=top.input_shape[1:], name="features")
    x = model.get_layer("pool")(top(inputs, training=False))
    if not attributes:
        return keras.Model(inputs, model.get_layer(CATEGORY_OUTPUT)(x), name="features_head")
    names = [CATEGORY_OUTPUT, *(layer.name for layer in model.layers if layer.name.startswith("attr_"))]
    return keras.Model(inputs, {name: model.get_layer(name)(x) for name in names}, name="features_head")


def _scores(head: Any, features: np.ndarray) -> Any:
    """(N, classes) scores, or {output name: scores} for a head with several outputs."""
    out = head.predict(features.astype(np.float32), batch_size=256, verbose=0)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _summary(scores: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from training.evaluate import classification_metrics

    m = classification_metrics(truth, scores.argmax(axis=1), labels)
    return {
        "accuracy": round(m["accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4),
        "recall": {label: c["recall"] for label, c in m["per_class"].items()},
    }


def _best_val(history: dict[str, list]) -> tuple[float, int]:
    values = history.get("val_accuracy", [])
    if not values:
        return 0.0, 0
    best = int(np.argmax(values))
    return round(float(values[best]), 4), best + 1


def _emit(config: Any, record: dict[str, Any]) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with (config.work_dir / "experiments.jsonl").open("a") as out:
        out.write(line + "\n")


@dataclass
class Session:
    """What the runs of one command share: the job's settings, the photo
    proxy's seed, the command line, and a dataset and feature cache per
    input size (built on first use)."""

    config: Any  # training.config.JobConfig
    proxy_seed: int
    command: str
    sizes: dict[tuple[int, tuple[str, ...]], tuple[FeatureCache, Any, list[str]]] = field(default_factory=dict)

    def context(self, size: int, splits: tuple[str, ...] = ("train", "val", "test")) -> tuple[FeatureCache, Any, list[str]]:
        """``(cache, dataset, labels)`` for one input size, the dataset
        holding only ``splits``' images (scoring needs no training images:
        their features are on disk)."""
        key = (size, splits)
        if key not in self.sizes:
            from training import data as data_stage
            from training.model import ModelSpec
            from training.pipeline import SPLIT_FILE, _require_data
            from training.storage import open_store

            config = self.config
            split = data_stage.Split.from_json((config.work_dir / SPLIT_FILE).read_text())
            store = open_store(_require_data(config))
            dataset = data_stage.load_split(store, split, size=size, names=splits)
            dataset = data_stage.with_attributes(dataset, data_stage.attribute_values(split, store))
            weights = None if config.weights == "none" else config.weights
            spec = ModelSpec(num_classes=len(split.labels), size=size, alpha=config.alpha, weights=weights)
            cache = FeatureCache(config.work_dir / "features", dataset, spec, config.train.cache_after)
            self.sizes[key] = (cache, dataset, list(split.labels))
        return self.sizes[key]


def run_experiment(name: str, session: Session) -> dict[str, Any]:
    """Train one named variant and score it; returns its JSON record."""
    from training.train import train

    config = session.config
    experiment = EXPERIMENTS[name]
    recipe = dataclasses.replace(config.train, **experiment.train)
    cache, dataset, labels = session.context(experiment.size or config.size)
    spec = cache.spec
    if recipe.attributes:
        heads = {name: len(head["classes"]) for name, head in dataset.attributes.schema.items()}
        spec = dataclasses.replace(spec, attributes=heads)
    started = time.perf_counter()
    model, history = train(dataset, spec, recipe, cache.features(recipe))
    seconds = round(time.perf_counter() - started, 1)
    folder = config.work_dir / "experiments" / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "history.json").write_text(json.dumps(history))
    return _score(model, cache, session.proxy_seed, labels, history) | {
        "experiment": name,
        "about": experiment.about,
        "changes": {**experiment.train, **({"size": experiment.size} if experiment.size else {})},
        "epochs": len(history.get("loss", [])),
        "train_seconds": seconds,
        "command": session.command,
        "model": str(folder / "model.keras"),
    }


def _score(model: Any, cache: FeatureCache, proxy_seed: int, labels: list[str], history: dict | None) -> dict[str, Any]:
    multi = any(layer.name.startswith("attr_") for layer in model.layers)
    head = features_head(model, cache.cut, attributes=multi)
    sets = cache.test_sets(proxy_seed)
    truth = cache.dataset.targets["test"]
    val_scores = _scores(head, cache.get("val", lambda: cache.dataset.pixels["val"]))
    scores = {name: _scores(head, features) for name, features in sets.items()}
    best_val, best_epoch = _best_val(history or {})
    record = {
        "val_accuracy": round(float((_category(val_scores).argmax(1) == cache.dataset.targets["val"]).mean()), 4),
        "best_val_accuracy_in_history": best_val,
        "best_epoch": best_epoch,
        **{name: _summary(_category(s), truth, labels) for name, s in scores.items()},
    }
    if multi:
        record["attributes"] = _attribute_summary(val_scores, scores["test"], cache.dataset.attributes)
    return record


def _category(scores: Any) -> np.ndarray:
    from training.model import CATEGORY_OUTPUT

    return scores[CATEGORY_OUTPUT] if isinstance(scores, dict) else scores


def _attribute_summary(val_scores: dict[str, np.ndarray], test_scores: dict[str, np.ndarray], labels: Any) -> dict[str, Any]:
    """Per attribute on the test split (Keras, cached float16 features):
    accuracy, macro-F1 and per-class recall over its known labels, and the
    share filled in and their accuracy at the threshold chosen on val
    (:func:`training.attributes.choose_threshold`)."""
    from training.attributes import attribute_metrics, choose_threshold
    from training.model import attribute_output

    out = {}
    for name, head in labels.schema.items():
        output = attribute_output(name)
        chosen = choose_threshold(val_scores[output], labels.targets["val"][name])
        m = attribute_metrics(test_scores[output], labels.targets["test"][name], head["classes"], chosen["threshold"])
        out[name] = {
            "accuracy": round(m["accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "images": m["images"],
            "missing": m["missing"],
            "val_threshold": chosen["threshold"],
            "coverage": round(m["coverage"], 4),
            "accuracy_when_filled": None if m["accuracy_when_filled"] is None else round(m["accuracy_when_filled"], 4),
            "recall": {label: c["recall"] for label, c in m["per_class"].items()},
        }
    return out


def _load(reference: str, config: Any) -> Any:
    import keras

    path = Path(reference)
    if not path.suffix:
        path = config.work_dir / "experiments" / reference / "model.keras"
    return keras.models.load_model(path, compile=False)


def ensemble_model(members: list[Any], cut: str) -> Any:
    """One Keras model (pixels in, scores out) averaging ``members``'
    scores; the layers up to ``cut``, which must be the same in every member
    (they are pretrained and frozen), run once. ValueError when they differ."""
    import keras

    from training.model import split_base

    def base_of(model: Any) -> Any:
        return next(layer for layer in model.layers if isinstance(layer, keras.Model))

    bottoms = [split_base(base_of(m), cut)[0] for m in members]
    reference = bottoms[0].get_weights()
    for k, bottom in enumerate(bottoms[1:], start=2):
        if any(not np.array_equal(a, b) for a, b in zip(reference, bottom.get_weights(), strict=True)):
            raise ValueError(f"member {k}'s layers up to {cut} differ from the first member's: no shared bottom")
    inputs = keras.Input(shape=members[0].input_shape[1:], name="pixels")
    shared = bottoms[0](members[0].get_layer("to_unit_range")(inputs), training=False)
    heads = [features_head(m, cut) for m in members]
    for k, head in enumerate(heads):
        head.name = f"member_{k + 1}"
    outputs = keras.layers.Average(name="ensemble_average")([head(shared) for head in heads])
    return keras.Model(inputs, outputs, name=f"ensemble_of_{len(members)}")


def interleaved_invoke_ms(models: dict[str, bytes], calls: int = 200) -> dict[str, dict[str, float]]:
    """Bare ``invoke()`` of each TFLite model on one thread, the models
    called in turn within one loop (so load on the machine hits them alike);
    fastest and median of ``calls`` each, in milliseconds."""
    from ai_edge_litert.interpreter import Interpreter

    runners = {}
    for name, model_bytes in models.items():
        interpreter = Interpreter(model_content=model_bytes, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(
            detail["index"], np.random.default_rng(0).integers(0, 256, detail["shape"]).astype(detail["dtype"])
        )
        interpreter.invoke()
        runners[name] = interpreter
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(calls):
        for name, interpreter in runners.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"min_ms": round(1000 * min(t), 3), "median_ms": round(1000 * statistics.median(t), 3), "calls": calls}
        for name, t in times.items()
    }


def run_ensemble(references: list[str], session: Session) -> dict[str, Any]:
    """Average ``references``' models in one TFLite model and measure
    whether it pays (accuracy and latency against its first member)."""
    from shared.classifier import Classifier
    from training import evaluate as ev
    from training.export import to_float16
    from training.pipeline import build_manifest

    config = session.config
    cache, dataset, labels = session.context(config.size, ("val", "test"))
    members = [_load(r, config) for r in references]
    sets = cache.test_sets(session.proxy_seed)
    truth = dataset.targets["test"]
    val = cache.get("val", lambda: dataset.pixels["val"])
    heads = [features_head(m, cache.cut) for m in members]
    keras_scores = {
        name: [_scores(h, f) for h in heads] for name, f in {"val": val, **sets}.items()
    }  # per set: one (N, classes) array per member
    record: dict[str, Any] = {"experiment": "ensemble", "members": references, "command": session.command, "keras": {}}
    for name, per_member in keras_scores.items():
        target = dataset.targets["val"] if name == "val" else truth
        record["keras"][name] = {
            "members": [round(float((s.argmax(1) == target).mean()), 4) for s in per_member],
            "ensemble": round(float((np.mean(per_member, axis=0).argmax(1) == target).mean()), 4),
        }
    record["keras"]["photo_proxy_recall"] = _summary(np.mean(keras_scores["photo_proxy"], axis=0), truth, labels)["recall"]
    record["keras"]["test_recall"] = _summary(np.mean(keras_scores["test"], axis=0), truth, labels)["recall"]
    tflite = {"single": to_float16(members[0]), "ensemble": to_float16(ensemble_model(members, cache.cut))}
    folder = config.work_dir / "experiments" / "ensemble"
    folder.mkdir(parents=True, exist_ok=True)
    record["tflite"] = {}
    for name, model_bytes in tflite.items():
        (folder / f"model_{name}.tflite").write_bytes(model_bytes)
        manifest = build_manifest(
            model_bytes,
            version="experiment",
            labels=labels,
            config=config,
            variant="float16-single",
            split=dataset.split,
            flip=False,
        )
        classifier = Classifier(model_bytes, manifest)
        predicted = ev.predict_classifier(classifier, dataset.pixels["test"]).argmax(axis=1)
        record["tflite"][name] = {"test_accuracy": round(float((predicted == truth).mean()), 4), "bytes": len(model_bytes)}
    for name, timing in interleaved_invoke_ms(tflite).items():
        record["tflite"][name].update(timing)
    return record


def calibration_indices(targets: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices into the training split of the images the job calibrates
    int8 on (:func:`training.export.representative_sample`'s choice, in its
    order), so that only those images need decoding."""
    from training.export import representative_sample

    return representative_sample(np.arange(len(targets)), targets, count, seed)


def _export_data(config: Any, size: int) -> Any:
    """The calibration sample (as ``train``) and the test split, decoded at
    ``size``: the split's other images are not read."""
    from training import data as data_stage
    from training.pipeline import SPLIT_FILE, _require_data
    from training.storage import open_store

    split = data_stage.Split.from_json((config.work_dir / SPLIT_FILE).read_text())
    index = {label: k for k, label in enumerate(split.labels)}
    targets = np.array([index[label] for _, label in split.items["train"]], dtype=np.int64)
    picks = calibration_indices(targets, config.representative_count, config.seed)
    sample = dataclasses.replace(split, items={**split.items, "train": [split.items["train"][i] for i in picks]})
    dataset = data_stage.load_split(open_store(_require_data(config)), sample, size=size, names=("train", "test"))
    dataset.split = split
    return dataset


def run_exports(references: list[str], session: Session) -> dict[str, Any]:
    """Export ``references``' models one pass as int8 and float16 TFLite and
    measure each through the shared Classifier at its own input size:
    test accuracy, agreement with Keras, size and interleaved ``invoke()`` time."""
    from shared.classifier import Classifier
    from training import evaluate as ev
    from training.export import to_float16, to_int8
    from training.pipeline import build_manifest

    config = session.config
    record: dict[str, Any] = {"experiment": "exports", "models": references, "command": session.command, "exports": {}}
    tflite: dict[str, bytes] = {}
    folder = config.work_dir / "experiments" / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    data_by_size: dict[int, Any] = {}
    for reference in references:
        model = _load(reference, config)
        size = int(model.input_shape[1])
        if size not in data_by_size:
            data_by_size[size] = _export_data(config, size)
        dataset = data_by_size[size]
        truth = dataset.targets["test"]
        keras_top1 = ev.predict_keras(model, dataset.pixels["test"]).argmax(axis=1)
        sized = dataclasses.replace(config, size=size)
        for kind, model_bytes in (("int8", to_int8(model, dataset.pixels["train"])), ("float16", to_float16(model))):
            name = f"{Path(reference).stem if Path(reference).suffix else reference}-{size}-{kind}"
            (folder / f"{name}.tflite").write_bytes(model_bytes)
            manifest = build_manifest(
                model_bytes,
                version="experiment",
                labels=list(dataset.split.labels),
                config=sized,
                variant="int8" if kind == "int8" else "float16-single",
                split=dataset.split,
                flip=False,
            )
            predicted = ev.predict_classifier(Classifier(model_bytes, manifest), dataset.pixels["test"]).argmax(axis=1)
            record["exports"][name] = {
                "model": reference,
                "size": size,
                "kind": kind,
                "test_accuracy": round(float((predicted == truth).mean()), 4),
                "keras_test_accuracy": round(float((keras_top1 == truth).mean()), 4),
                "agreement_with_keras": round(ev.agreement(predicted, keras_top1), 4),
                "bytes": len(model_bytes),
                "calibration_images": len(dataset.pixels["train"]) if kind == "int8" else 0,
            }
            tflite[name] = model_bytes
    for name, timing in interleaved_invoke_ms(tflite).items():
        record["exports"][name].update(timing)
    return record


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for an unknown experiment)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from shared.logs import configure_logging
    from training.cli import config_from_args, parser
    from training.photo_eval import DEFAULT_SEED

    argv = list(sys.argv[1:] if argv is None else argv)
    names = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    p = parser()
    p.prog = "python -m training.experiments NAME..."
    p.description = __doc__
    p.epilog = "experiments: " + "; ".join(f"{e.name}: {e.about}" for e in EXPERIMENTS.values())
    p.add_argument("--score", nargs="+", default=[], metavar="MODEL", help="score existing Keras models, no training")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="MEMBER", help="experiment names or .keras paths")
    p.add_argument(
        "--exports", nargs="+", default=[], metavar="MODEL", help="export one pass as int8 and float16 and time them together"
    )
    p.add_argument("--proxy-seed", type=int, default=DEFAULT_SEED, help="seed of the photo-like test proxy")
    args = p.parse_args(["prepare", *argv])
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not (names or args.score or args.ensemble or args.exports):
        p.print_help(sys.stderr)
        print(
            f"\nunknown experiment(s): {unknown}" if unknown else "\nname an experiment, --score, --ensemble or --exports",
            file=sys.stderr,
        )
        return 2
    configure_logging(args.log_level)
    config = config_from_args(args)
    session = Session(config, args.proxy_seed, "python -m training.experiments " + " ".join([*names, *argv]))
    for reference in args.score:
        cache, _, labels = session.context(config.size, ("val", "test"))
        started = time.perf_counter()
        record = {
            "experiment": "score",
            "model": reference,
            **_score(_load(reference, config), cache, session.proxy_seed, labels, None),
        }
        _emit(config, record | {"seconds": round(time.perf_counter() - started, 1), "command": session.command})
    for name in names:
        _emit(config, run_experiment(name, session))
    if args.ensemble:
        _emit(config, run_ensemble(args.ensemble, session))
    if args.exports:
        _emit(config, run_exports(args.exports, session))
    return 0


if __name__ == "__main__":
    sys.exit(main())
