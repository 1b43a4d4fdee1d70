"""The training job's stages, each runnable alone (reading the previous
stage's files from the work folder) or all together in one process."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.classifier import Classifier, inspect_model
from shared.errors import ModelError
from shared.manifest import Manifest, read_manifest, sha256_bytes, write_manifest
from shared.model_layout import MANIFEST_FILE, METRICS_FILE, MODEL_FILE, POINTER, new_version
from shared.preprocess import PREPROCESSING
from training import data as data_stage
from training import evaluate as ev
from training import thresholds as thr
from training.config import JobConfig
from training.publish import GateDecision, decide, publish
from training.report import CHARTS, render_html, write_charts
from training.storage import open_store

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json"
KERAS_FILE = "model.keras"
HISTORY_FILE = "history.json"
#: The exported TFLite variants: name -> (file, quantization, flip averaging).
#: ``float16-single`` is the one network pass without the mirror-image average.
VARIANTS = {
    "int8": ("model_int8.tflite", "int8", True),
    "float16": ("model_float16.tflite", "float16", True),
    "float32": ("model_float32.tflite", "float32", True),
    "float16-single": ("model_float16-single.tflite", "float16", False),
}
VARIANT_FILES = {name: spec[0] for name, spec in VARIANTS.items()}


def variant_names(config: JobConfig) -> list[str]:
    """The variants this job exports: all four with flip averaging on; the
    single-pass ones only (int8, float16, float32) with it off."""
    if config.flip_average:
        return list(VARIANTS)
    return ["int8", "float16", "float32"]


def _flips(config: JobConfig, variant: str) -> bool:
    return config.flip_average and VARIANTS[variant][2]


REPORT_FILE = "report.html"


def _timed(stage: str):
    def wrap(fn):
        def inner(*args, **kwargs):
            start = time.perf_counter()
            log.info("stage %s: start", stage, extra={"stage": stage})
            result = fn(*args, **kwargs)
            seconds = round(time.perf_counter() - start, 1)
            log.info("stage %s: done in %.1f s", stage, seconds, extra={"stage": stage, "seconds": seconds})
            _record_time(args[0], stage, seconds)
            return result

        return inner

    return wrap


def _record_time(config: JobConfig, stage: str, seconds: float) -> None:
    path = config.work_dir / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[stage] = seconds
    path.write_text(json.dumps(timings, indent=2))


_GET_DATA = (
    "pass --data (a folder or gs:// URI in the Kaggle layout: styles.csv + images/). "
    "Get the dataset from https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-small"
)


def _require_data(config: JobConfig) -> str:
    if not config.data:
        raise SystemExit(f"no data: {_GET_DATA}")
    if "://" not in config.data and not (Path(config.data) / "styles.csv").is_file():
        raise SystemExit(f"no dataset at {config.data} (no styles.csv there): {_GET_DATA}")
    return config.data


@_timed("prepare")
def run_prepare(config: JobConfig) -> data_stage.Dataset:
    """The base dataset's split (or, with ``split_from``, the previous
    split's base items as they were), plus each added source
    (training/sources.py); the split is saved as ``split.json``."""
    from training import sources as src

    config.work_dir.mkdir(parents=True, exist_ok=True)
    base_store = open_store(_require_data(config))
    previous = _previous_split(config)
    if previous is not None:
        base_only = {name: [row for row in rows if src.source_of(row[0]) == src.BASE] for name, rows in previous.items.items()}
        kept = data_stage.Split(**{**previous.__dict__, "items": base_only, "sources": {}})
        dataset = data_stage.load_split(base_store, kept, size=config.size)
        log.info(
            "prepare: the base split of %s reused", config.split_from, extra={"stage": "prepare", "split_from": config.split_from}
        )
    else:
        dataset = data_stage.prepare(
            base_store,
            size=config.size,
            top_n=config.top_n,
            seed=config.seed,
            val=config.val_fraction,
            test=config.test_fraction,
            small_images=config.small_images,
        )
    if config.sources:
        dataset = src.prepare_all(
            dataset,
            base_store,
            src.parse_sources(config.sources),
            size=config.size,
            val=config.val_fraction,
            test=config.test_fraction,
            previous=previous,
        )
    (config.work_dir / SPLIT_FILE).write_text(dataset.split.to_json())
    return dataset


def _previous_split(config: JobConfig) -> data_stage.Split | None:
    if not config.split_from:
        return None
    store = open_store(
        str(Path(config.split_from).parent) if "://" not in config.split_from else config.split_from.rsplit("/", 1)[0]
    )
    return data_stage.Split.from_json(store.read_bytes(config.split_from.rsplit("/", 1)[-1]).decode())


def load_dataset(config: JobConfig, names: tuple[str, ...] = data_stage.SPLITS) -> data_stage.Dataset:
    """Decode the images named by the saved split (a stage run alone)."""
    split = data_stage.Split.from_json((config.work_dir / SPLIT_FILE).read_text())
    return data_stage.load_split(open_store(_require_data(config)), split, size=config.size, names=names)


def with_attributes(config: JobConfig, dataset: data_stage.Dataset) -> data_stage.Dataset:
    """``dataset`` with its attribute labels (issue 19) from the styles.csv
    of ``--data`` and of each added source (training/data.py); unchanged
    when it has them already."""
    if dataset.attributes is not None:
        return dataset
    values = data_stage.attribute_values(dataset.split, open_store(_require_data(config)))
    return data_stage.with_attributes(dataset, values)


def has_attribute_heads(model) -> bool:
    """Whether a Keras model has attribute heads (``attr_<name>`` outputs)."""
    from training.model import attribute_output

    return any(layer.name.startswith(attribute_output("")) for layer in model.layers)


def _attribute_schema(config: JobConfig, dataset: data_stage.Dataset, model) -> tuple[data_stage.Dataset, dict[str, Any]]:
    """The dataset with attribute labels and the schema of the heads
    ``model`` has (empty for a category-only model). SystemExit when the
    model's heads are not the data's (another dataset or rule)."""
    if not has_attribute_heads(model):
        return dataset, {}
    from training.model import attribute_output

    dataset = with_attributes(config, dataset)
    schema = dataset.attributes.schema
    have = {
        name: int(model.get_layer(attribute_output(name)).output.shape[-1])
        for name in schema
        if _has_layer(model, attribute_output(name))
    }
    want = {name: len(head["classes"]) for name, head in schema.items()}
    if have != want:
        raise SystemExit(f"the model's attribute heads {have} are not those of this data's labels {want}")
    return dataset, schema


def _has_layer(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


@_timed("train")
def run_train(config: JobConfig, dataset: data_stage.Dataset):
    from training.model import ModelSpec
    from training.sources import weighted_train
    from training.train import train

    weights = None if config.weights == "none" else config.weights
    init = None
    if config.init_from:
        import keras

        init = keras.models.load_model(config.init_from)
        weights = None  # every weight comes from the model it fine-tunes
        log.info("fine-tuning %s", config.init_from, extra={"stage": "train", "init_from": config.init_from})
    heads: dict[str, int] = {}
    if config.train.attributes:
        dataset = with_attributes(config, dataset)
        heads = {name: len(head["classes"]) for name, head in dataset.attributes.schema.items()}
        log.info(
            "attribute heads: %s",
            ", ".join(f"{name} ({n} classes)" for name, n in heads.items())
            or "none (the data has no attribute with two classes)",
            extra={"stage": "train", "attributes": {n: h["classes"] for n, h in dataset.attributes.schema.items()}},
        )
    spec = ModelSpec(
        num_classes=len(dataset.split.labels), size=config.size, alpha=config.alpha, weights=weights, attributes=heads
    )
    model, history = train(weighted_train(dataset, config.seed), spec, config.train, init=init)
    model.save(config.work_dir / KERAS_FILE)
    (config.work_dir / HISTORY_FILE).write_text(json.dumps(history))
    return model


def served_model(config: JobConfig, model, flip: bool | None = None):
    """The trained model as it will be served (with flip averaging, if on)."""
    if not (config.flip_average if flip is None else flip):
        return model
    from training.model import with_flip_averaging

    return with_flip_averaging(model)


def load_keras(config: JobConfig):
    import keras

    return keras.models.load_model(config.work_dir / KERAS_FILE)


@_timed("export")
def run_export(config: JobConfig, model, dataset: data_stage.Dataset) -> dict[str, Path]:
    from training.export import representative_sample, to_float16, to_float32, to_int8

    sample = representative_sample(dataset.pixels["train"], dataset.targets["train"], config.representative_count, config.seed)
    builders = {"int8": lambda m: to_int8(m, sample), "float16": to_float16, "float32": to_float32}
    paths = {}
    for variant in variant_names(config):
        path = config.work_dir / VARIANT_FILES[variant]
        path.write_bytes(builders[VARIANTS[variant][1]](served_model(config, model, _flips(config, variant))))
        paths[variant] = path
        log.info(
            "exported %s model: %.2f MB",
            variant,
            path.stat().st_size / 1e6,
            extra={"stage": "export", "variant": variant, "bytes": path.stat().st_size},
        )
    return paths


def build_manifest(
    model_bytes: bytes,
    *,
    version: str,
    labels: list[str],
    config: JobConfig,
    variant: str,
    split: data_stage.Split,
    metrics: dict[str, Any] | None = None,
    flip: bool | None = None,
    attributes: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of one exported variant; ``attributes``: the manifest's
    attribute heads (training.attributes.manifest_attributes; none: category only)."""
    details = inspect_model(model_bytes)
    return Manifest(
        version=version,
        labels=list(labels),
        input_size=config.size,
        input_dtype=details["input"]["dtype"],
        quantization={
            "type": VARIANTS[variant][1] if variant in VARIANTS else variant,
            "variant": variant,
            "input": details["input"],
            "output": details["output"],
        },
        model_sha256=sha256_bytes(model_bytes),
        base_network={
            "name": "MobileNetV2",
            "alpha": config.alpha,
            "weights": "imagenet" if config.weights == "imagenet" else Path(config.weights).name,
            "test_time_augmentation": "horizontal-flip average" if (config.flip_average if flip is None else flip) else "none",
        },
        training_data={
            "fingerprint": split.fingerprint,
            "source": split.source,
            "seed": split.seed,
            "counts": {k: len(v) for k, v in split.items.items()},
            "split_file": SPLIT_FILE,
            "rules": split.rules,
            **(
                {"sources": {k: {n: v for n, v in info.items() if n != "counts"} for k, info in split.sources.items()}}
                if split.sources
                else {}
            ),
        },
        metrics=metrics or {},
        preprocessing=dict(PREPROCESSING),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        attributes=dict(attributes or {}),
    )


@_timed("evaluate")
def run_evaluate(config: JobConfig, model, dataset: data_stage.Dataset) -> dict[str, Any]:
    """Score Keras and every exported variant (through the shared Classifier,
    the serving path) on the test split, time each variant's bare invoke()
    on one thread, and pick the served variant: the fastest of those whose
    accuracy is within ``max_accuracy_loss`` of the best variant's."""
    from training.attributes import manifest_attributes
    from training.export import invoke_ms

    dataset, schema = _attribute_schema(config, dataset, model)
    attributes = manifest_attributes(schema, {}) if schema else {}
    labels = dataset.split.labels
    pixels, truth = dataset.pixels["test"], dataset.targets["test"]
    plain = ev.predict_keras_heads(model, pixels)
    mirrored = ev.predict_keras_heads(model, pixels[:, :, ::-1])
    keras_heads = {False: plain, True: {name: (plain[name] + mirrored[name]) / 2 for name in plain}}
    keras_scores = {flip: heads[ev.CATEGORY_OUTPUT] for flip, heads in keras_heads.items()}
    keras_pred = {flip: scores.argmax(axis=1) for flip, scores in keras_scores.items()}
    served_flip = config.flip_average
    results: dict[str, Any] = {
        "keras": ev.classification_metrics(truth, keras_pred[served_flip], labels),
        "keras_single_pass": ev.classification_metrics(truth, keras_pred[False], labels),
        "variants": {},
    }
    version = config.version or new_version()
    predictions: dict[str, np.ndarray] = {}
    head_scores: dict[str, dict[str, np.ndarray]] = {}
    for variant in variant_names(config):
        flip = _flips(config, variant)
        model_bytes = (config.work_dir / VARIANT_FILES[variant]).read_bytes()
        manifest = build_manifest(
            model_bytes,
            version=version,
            labels=labels,
            config=config,
            variant=variant,
            split=dataset.split,
            flip=flip,
            attributes=attributes,
        )
        scores, head_scores[variant] = ev.predict_classifier_heads(Classifier(model_bytes, manifest), pixels)
        predicted = scores.argmax(axis=1)
        predictions[variant] = predicted
        metrics = ev.classification_metrics(truth, predicted, labels)
        if schema:
            metrics["attributes"] = {
                name: {
                    "accuracy": m["accuracy"],
                    "macro_f1": m["macro_f1"],
                    "agreement": ev.agreement(
                        head_scores[variant][name].argmax(1), keras_heads[flip][attr_output(name)].argmax(1)
                    ),
                }
                for name, m in _attribute_reports(head_scores[variant], dataset, schema).items()
            }
        metrics.update(
            agreement=ev.agreement(predicted, keras_pred[flip]),
            model_bytes=len(model_bytes),
            invoke_ms=invoke_ms(model_bytes),
            flip_average=flip,
        )
        results["variants"][variant] = metrics
        log.info(
            "evaluate %s: accuracy %.4f, macro-F1 %.4f, agreement with Keras %.4f, invoke %.2f ms",
            variant,
            metrics["accuracy"],
            metrics["macro_f1"],
            metrics["agreement"],
            metrics["invoke_ms"],
            extra={"stage": "evaluate", "variant": variant, "accuracy": metrics["accuracy"], "invoke_ms": metrics["invoke_ms"]},
        )
    served, why = choose_served(results["variants"], config.max_accuracy_loss)
    chosen = results["variants"][served]
    results["per_source"] = _per_source(dataset, predictions[served], keras_pred[_flips(config, served)])
    if schema:  # the served variant's per-attribute report; thresholds (and so coverage) come in the thresholds stage
        keras_attributes = {name: keras_heads[_flips(config, served)][attr_output(name)] for name in schema}
        results["attributes"] = _attribute_reports(head_scores[served], dataset, schema)
        results["keras_attributes"] = {
            name: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for name, m in _attribute_reports(keras_attributes, dataset, schema).items()
        }
    results.update(
        version=version,
        labels=labels,
        served_variant=served,
        served_because=why,
        served=chosen,
        test_accuracy=chosen["accuracy"],
        agreement=chosen["agreement"],
        model_bytes=chosen["model_bytes"],
        split_counts=data_stage.summary(dataset.split),
        skipped=dataset.split.skipped,
        seed=dataset.split.seed,
        source=dataset.split.source,
    )
    model_bytes = (config.work_dir / VARIANT_FILES[served]).read_bytes()
    manifest = build_manifest(
        model_bytes,
        version=version,
        labels=labels,
        config=config,
        variant=served,
        split=dataset.split,
        flip=_flips(config, served),
        metrics={
            "test_accuracy": round(chosen["accuracy"], 4),
            "macro_f1": round(chosen["macro_f1"], 4),
            "keras_agreement": round(chosen["agreement"], 4),
            "test_images": chosen["images"],
            "keras_test_accuracy": round(
                ev.classification_metrics(truth, keras_pred[_flips(config, served)], labels)["accuracy"], 4
            ),
            "invoke_ms": chosen["invoke_ms"],
            "per_source_test_accuracy": {name: round(v["accuracy"], 4) for name, v in results["per_source"].items()},
            **(
                {
                    "attributes": {
                        name: {"test_accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}
                        for name, m in results["attributes"].items()
                    }
                }
                if schema
                else {}
            ),
        },
        attributes=attributes,
    )
    (config.work_dir / MODEL_FILE).write_bytes(model_bytes)
    write_manifest(manifest, config.work_dir / MANIFEST_FILE)
    _write_metrics(config, results)
    log.info(
        "serving the %s model: test accuracy %.2f%% (%s)",
        served,
        100 * chosen["accuracy"],
        why,
        extra={"stage": "evaluate", "served_variant": served, "test_accuracy": chosen["accuracy"]},
    )
    return results


def attr_output(name: str) -> str:
    """The output name of attribute ``name``'s head (training.model.attribute_output)."""
    from training.model import attribute_output

    return attribute_output(name)


def _attribute_reports(
    scores: dict[str, np.ndarray],
    dataset: data_stage.Dataset,
    schema: dict[str, Any],
    thresholds: dict[str, float] | None = None,
    split: str = "test",
) -> dict[str, dict[str, Any]]:
    """Per attribute on ``split``: training.attributes.attribute_metrics of
    its scores (``scores``: attribute or output name -> (N, classes)) at its
    threshold (default NEVER: nothing counted as filled), with ``classes``
    and ``threshold`` added (what the report's section reads)."""
    from shared.thresholds import NEVER
    from training.attributes import attribute_metrics

    out = {}
    for name, head in schema.items():
        values = scores[name] if name in scores else scores[attr_output(name)]
        threshold = (thresholds or {}).get(name, NEVER)
        m = attribute_metrics(values, dataset.attributes.targets[split][name], head["classes"], threshold)
        out[name] = m | {"classes": list(head["classes"]), "threshold": threshold}
    return out


def _per_source(dataset: data_stage.Dataset, served: np.ndarray, keras: np.ndarray) -> dict[str, dict[str, Any]]:
    """Test accuracy of the served variant and of Keras on each source's fixed test set."""
    from training.sources import masks_by_source

    truth = dataset.targets["test"]
    out = {}
    for name, mask in masks_by_source(dataset.split).items():
        n = int(mask.sum())
        out[name] = {
            "accuracy": float((served[mask] == truth[mask]).mean()) if n else 0.0,
            "keras_accuracy": float((keras[mask] == truth[mask]).mean()) if n else 0.0,
            "images": n,
        }
    return out


def choose_served(variants: dict[str, dict[str, Any]], max_loss: float) -> tuple[str, str]:
    """The fastest variant (``invoke_ms``) among those whose ``accuracy`` is
    within ``max_loss`` of the best; ties go to the smaller file. Returns
    (name, the reason in words)."""
    best = max(v["accuracy"] for v in variants.values())
    eligible = {name: v for name, v in variants.items() if v["accuracy"] >= best - max_loss - 1e-12}
    served = min(eligible, key=lambda name: (eligible[name]["invoke_ms"], eligible[name]["model_bytes"]))
    others = ", ".join(f"{name} {v['invoke_ms']:.2f} ms" for name, v in variants.items() if name != served)
    why = (
        f"fastest bare invoke() on one thread ({variants[served]['invoke_ms']:.2f} ms; {others}) of the variants "
        f"within {100 * max_loss:.1f} points of the best test accuracy ({100 * best:.2f}%)"
    )
    return served, why


def _write_metrics(config: JobConfig, metrics: dict[str, Any]) -> None:
    timings = config.work_dir / "timings.json"
    if timings.is_file():
        metrics["stage_seconds"] = json.loads(timings.read_text())
        metrics["train_seconds"] = metrics["stage_seconds"].get("train", 0.0)
    (config.work_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value)} is not JSON serializable")


def _load_metrics(config: JobConfig) -> dict[str, Any]:
    return json.loads((config.work_dir / METRICS_FILE).read_text())


@_timed("gate")
def run_gate(config: JobConfig, dataset: data_stage.Dataset | None = None) -> GateDecision:
    """The quality gate. When the store has a current model that reads the
    same labels at the same input size, both models are scored on this
    run's fixed test sets, per source (training.model_loop.gate_on_split);
    otherwise the candidate's test accuracy is judged against the floor and
    the current model's recorded accuracy (training.publish.decide)."""
    from training import model_loop

    metrics = _load_metrics(config)
    store = open_store(config.out)
    decision = None
    current_version = model_loop.pointed(store, POINTER) if store.exists(POINTER) else None
    if current_version:
        try:
            current = model_loop.load_classifier(store, current_version)
        except ModelError as exc:
            log.warning("the current model cannot be scored: %s", exc, extra={"stage": "gate"})
            current = None
        if current is not None and current.size == config.size and sorted(current.labels) == sorted(metrics["labels"]):
            dataset = dataset or load_dataset(config, names=("test",))
            mine = {name: {"accuracy": v["accuracy"], "images": v["images"]} for name, v in metrics["per_source"].items()}
            decision = model_loop.gate_on_split(current, current, dataset, config.gate, candidate_scores=mine)
    if decision is None:
        decision = decide(store, metrics["test_accuracy"], config.gate)
    metrics["gate"] = decision.to_dict() | {"store": config.out}
    _write_metrics(config, metrics)
    return decision


@_timed("thresholds")
def run_thresholds(config: JobConfig, dataset: data_stage.Dataset | None = None) -> dict[str, Any]:
    """Choose each class's auto and check thresholds on the validation split
    through the served model (training/thresholds.py) and write them into
    the manifest of the work folder, or of ``--model-dir`` (an existing
    trained model: its split.json names the validation images, read from
    ``--data``; its report is rendered again when its inputs are there).
    The model file, and so its sha256, is left as it is."""
    directory = Path(config.thresholds.model_dir) if config.thresholds.model_dir else config.work_dir
    manifest = read_manifest(directory / MANIFEST_FILE)
    classifier = Classifier((directory / manifest.model_file).read_bytes(), manifest)
    if dataset is None:
        split = data_stage.Split.from_json((directory / SPLIT_FILE).read_text())
        names = ("val", "test") if manifest.attributes else ("val",)
        dataset = data_stage.load_split(open_store(_require_data(config)), split, size=manifest.input_size, names=names)
    if list(dataset.split.labels) != list(manifest.labels):
        raise SystemExit(f"the split's labels {dataset.split.labels} are not the model's {manifest.labels}")
    predicted, confidence = thr.served_results(classifier, dataset.pixels["val"])
    thresholds = thr.measure(manifest.labels, dataset.targets["val"], predicted, confidence, config.thresholds)
    thresholds["variant"] = manifest.quantization.get("variant", manifest.quantization.get("type"))
    manifest.thresholds = thresholds
    if manifest.attributes:
        _attribute_thresholds(config, directory, manifest, classifier, dataset)
    write_manifest(manifest, directory / MANIFEST_FILE)
    thr.log_summary(thresholds)
    if directory != config.work_dir and all((directory / n).is_file() for n in (METRICS_FILE, HISTORY_FILE, SPLIT_FILE)):
        import tempfile

        with tempfile.TemporaryDirectory() as charts:
            render_report(directory, Path(charts))
    return thresholds


def _attribute_thresholds(
    config: JobConfig, directory: Path, manifest: Manifest, classifier: Classifier, dataset: data_stage.Dataset
) -> None:
    """Each attribute's threshold chosen on the val split through the served
    model (training.attributes.choose_threshold), written into
    ``manifest.attributes`` with what it does on val; when ``directory``
    holds metrics.json and the test split is loaded, its per-attribute test
    report is measured again at these thresholds (share filled in, accuracy
    of those filled in). SystemExit when the manifest's attribute labels are
    not the data's."""
    from training.attributes import choose_threshold

    dataset = with_attributes(config, dataset)
    schema = dataset.attributes.schema
    mismatch = {
        name: (head["labels"], schema.get(name, {}).get("classes"))
        for name, head in manifest.attributes.items()
        if schema.get(name, {}).get("classes") != head["labels"]
    }
    if mismatch:
        raise SystemExit(f"the model's attribute labels are not this data's (model, data): {mismatch}")
    heads = {name: schema[name] for name in manifest.attributes}
    _, val_scores = ev.predict_classifier_heads(classifier, dataset.pixels["val"])
    chosen = {}
    for name in heads:
        chosen[name] = choose_threshold(val_scores[name], dataset.attributes.targets["val"][name])
        manifest.attributes[name].update(
            threshold=chosen[name]["threshold"],
            threshold_rule=(
                f"lowest top-1 score at which the val results at or above it are right at least "
                f"{chosen[name]['target_precision']:.0%} of the time, with at least {_min_threshold_images()} of them "
                "(1.0: not reached, always left empty)"
            ),
            val={k: v for k, v in chosen[name].items() if k != "threshold"},
        )
        log.info(
            "attribute %s: threshold %.4f (%s of %s val images filled in, precision %s)",
            name,
            chosen[name]["threshold"],
            chosen[name]["val_kept"],
            chosen[name]["val_images"],
            chosen[name]["val_precision"],
            extra={"stage": "thresholds", "attribute": name, **chosen[name]},
        )
    if (directory / METRICS_FILE).is_file() and len(dataset.pixels["test"]) == len(dataset.targets["test"]) > 0:
        metrics = json.loads((directory / METRICS_FILE).read_text())
        _, test_scores = ev.predict_classifier_heads(classifier, dataset.pixels["test"])
        thresholds = {name: c["threshold"] for name, c in chosen.items()}
        metrics["attributes"] = _attribute_reports(test_scores, dataset, heads, thresholds)
        (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=_jsonable))
        for name, m in metrics["attributes"].items():
            manifest.metrics.setdefault("attributes", {}).setdefault(name, {}).update(
                test_accuracy=round(m["accuracy"], 4),
                macro_f1=round(m["macro_f1"], 4),
                test_coverage=round(m["coverage"], 4),
                test_accuracy_when_filled=None if m["accuracy_when_filled"] is None else round(m["accuracy_when_filled"], 4),
            )


def _min_threshold_images() -> int:
    from training.attributes import MIN_THRESHOLD_IMAGES

    return MIN_THRESHOLD_IMAGES


@_timed("report")
def run_report(config: JobConfig) -> Path:
    return render_report(config.work_dir, config.work_dir)


def render_report(directory: Path, charts_dir: Path) -> Path:
    """``directory``'s report.html from its metrics, manifest, history and
    split; the charts are drawn into ``charts_dir`` (and inlined)."""
    metrics = json.loads((directory / METRICS_FILE).read_text())
    manifest = read_manifest(directory / MANIFEST_FILE)
    history = json.loads((directory / HISTORY_FILE).read_text())
    split = data_stage.Split.from_json((directory / SPLIT_FILE).read_text())
    index = {label: k for k, label in enumerate(split.labels)}
    distribution = {
        name: {
            label: int(n)
            for label, n in zip(
                split.labels, np.bincount([index[lab] for _, lab in rows], minlength=len(split.labels)), strict=True
            )
        }
        for name, rows in split.items.items()
    }
    write_charts(
        charts_dir,
        history=history,
        labels=split.labels,
        served=metrics["served"],
        keras_metrics=metrics["keras"],
        distribution=distribution,
    )
    path = directory / REPORT_FILE
    path.write_text(render_html(charts_dir, metrics, manifest.to_dict()), encoding="utf-8")
    log.info("report written to %s", path, extra={"stage": "report", "path": str(path)})
    return path


@_timed("publish")
def run_publish(config: JobConfig) -> bool:
    metrics = _load_metrics(config)
    store = open_store(config.out)
    gate = dict(metrics.get("gate") or {})
    if gate.pop("store", None) == config.out:
        decision = GateDecision(**gate)
    else:  # decided against another store, or not at all: decide against this one
        decision = decide(store, metrics["test_accuracy"], config.gate)
    names = [MODEL_FILE, MANIFEST_FILE, METRICS_FILE, REPORT_FILE, SPLIT_FILE, HISTORY_FILE, *CHARTS]
    artifacts = {name: config.work_dir / name for name in names if (config.work_dir / name).is_file()}
    return publish(
        store, metrics["version"], artifacts, decision, force=config.force_publish, as_candidate=config.publish_as == "candidate"
    )


def run_all(config: JobConfig) -> bool:
    """prepare -> train -> export -> evaluate -> thresholds -> gate -> report -> publish.
    Returns whether the new model became the current one."""
    timings = config.work_dir / "timings.json"
    if timings.is_file():
        timings.unlink()
    dataset = run_prepare(config)
    model = run_train(config, dataset)
    run_export(config, model, dataset)
    run_evaluate(config, model, dataset)
    run_thresholds(config, dataset)
    run_gate(config, dataset)
    run_report(config)
    return run_publish(config)


def describe(config: JobConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
