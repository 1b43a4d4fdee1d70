"""What the per-class thresholds do on a model's test split, against one
global threshold: per predicted class, the share of images auto-filed and
the error rate among them (auto-filed but truly another class), and the
shares left for a quick check and a full review.

``python -m training.thresholds_report --model-dir <version folder> --data <dataset>``
prints a Markdown table (the README's); ``--json`` prints the figures. The
test images are those the folder's ``split.json`` lists (for models of this
job: only images at least the input size, no upscaled thumbnail), read from
``--data`` by path, each classified through the shared Classifier.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared import thresholds as th
from shared.classifier import Classifier
from shared.dev_paths import DEV_DATA_12K, EMBEDDED_MODEL_STORE
from shared.manifest import read_manifest
from shared.model_layout import MANIFEST_FILE, resolve_model_dir
from shared.records import BAND_AUTO, BAND_CHECK, BANDS
from training import data as data_stage
from training.storage import open_store
from training.thresholds import served_results

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Row:
    """One predicted class's figures (``label`` "all" for the whole split)."""

    label: str
    images: int  # test images predicted as the class
    auto: float  # per-class thresholds: auto threshold (th.NEVER: never)
    bands: dict[str, int]  # per-class thresholds: images per band
    auto_errors: int  # per-class thresholds: auto-filed images truly of another class
    global_auto: int  # one global threshold: images auto-filed
    global_errors: int  # one global threshold: of those, truly of another class


def _share(n: int, of: int) -> str:
    return f"{100 * n / of:.1f}%" if of else "-"


def _error(errors: int, filed: int) -> str:
    return f"{100 * errors / filed:.1f}% ({errors}/{filed})" if filed else "-"


def tabulate(
    labels: list[str],
    truth: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    policy: th.ThresholdPolicy,
    global_threshold: float,
) -> list[Row]:
    """Rows per predicted class, then one for all (``truth``, ``predicted``:
    (N,) class indices; ``confidence``: (N,) top-1 scores as serving rounds them)."""
    single = th.ThresholdPolicy(None, labels, fallback=global_threshold)
    rows = []
    for k, label in [*enumerate(labels), (-1, "all")]:
        mine = np.flatnonzero(predicted == k) if k >= 0 else np.arange(len(truth))
        bands = {band: 0 for band in BANDS}
        auto_errors = global_auto = global_errors = 0
        for i in mine:
            name = labels[predicted[i]]
            band, _ = policy.band(name, float(confidence[i]))
            wrong = bool(truth[i] != predicted[i])
            bands[band] += 1
            auto_errors += band == BAND_AUTO and wrong
            if single.band(name, float(confidence[i]))[0] == BAND_AUTO:
                global_auto += 1
                global_errors += wrong
        auto = policy.for_label(label).auto if k >= 0 else float("nan")
        rows.append(Row(label, len(mine), auto, bands, auto_errors, global_auto, global_errors))
    return rows


def markdown(rows: list[Row], global_threshold: float) -> str:
    """The README's table."""
    g = f"{global_threshold:g}"
    lines = [
        f"| predicted class | test images | auto threshold | auto-filed | its error rate | quick check | full review "
        f"| auto-filed at {g} | its error rate at {g} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        auto = "" if r.label == "all" else ("never" if r.auto >= th.NEVER else f"{r.auto:.3f}")
        filed = r.bands[BAND_AUTO]
        lines.append(
            f"| {'**all**' if r.label == 'all' else r.label} | {r.images} | {auto} | {_share(filed, r.images)} "
            f"| {_error(r.auto_errors, filed)} | {_share(r.bands[BAND_CHECK], r.images)} "
            f"| {_share(r.bands['review'], r.images)} | {_share(r.global_auto, r.images)} "
            f"| {_error(r.global_errors, r.global_auto)} |"
        )
    return "\n".join(lines)


def evaluate(model_dir: Path, data: str, global_threshold: float, overrides: str = "") -> tuple[list[Row], dict[str, Any]]:
    """Classify ``model_dir``'s test split (images from ``data``) and tabulate;
    also returns a description of the run (model, images, thresholds)."""
    directory = resolve_model_dir(model_dir)
    manifest = read_manifest(directory / MANIFEST_FILE)
    classifier = Classifier((directory / manifest.model_file).read_bytes(), manifest)
    split = data_stage.Split.from_json((directory / SPLIT_FILE).read_text())
    dataset = data_stage.load_split(open_store(data), split, size=manifest.input_size, names=("test",))
    predicted, confidence = served_results(classifier, dataset.pixels["test"])
    policy = th.ThresholdPolicy(
        manifest.thresholds, list(manifest.labels), fallback=global_threshold, overrides=th.parse_overrides(overrides)
    )
    rows = tabulate(list(manifest.labels), dataset.targets["test"], predicted, confidence, policy, global_threshold)
    about = {
        "model_version": manifest.version,
        "test_images": len(predicted),
        "has_thresholds": bool(manifest.thresholds),
        "global_threshold": global_threshold,
        "thresholds": {label: policy.for_label(label).to_dict() for label in manifest.labels},
    }
    return rows, about


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.thresholds_report", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=EMBEDDED_MODEL_STORE, help="a version folder or model store")
    parser.add_argument("--data", default=str(DEV_DATA_12K), help="the dataset the model's split.json refers to")
    parser.add_argument("--global-threshold", type=float, default=0.6, help="the single threshold to compare with")
    parser.add_argument("--class-thresholds", default="", help="CLASS_THRESHOLDS overrides to apply (shared/thresholds.py)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rows, about = evaluate(args.model_dir, args.data, args.global_threshold, args.class_thresholds)
    if args.json:
        print(json.dumps({"about": about, "rows": [r.__dict__ for r in rows]}, indent=2))
    else:
        print(
            f"model {about['model_version']}, {about['test_images']} test images; "
            f"per-class thresholds from its manifest{'' if about['has_thresholds'] else ' (none: the global one)'}"
        )
        print(markdown(rows, args.global_threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
