"""``python -m training.seeds``: the spread of test accuracy over training
seeds, for the README's reproducibility figures.

Loads a training job's saved split (``--work-dir``/split.json, so the split
stays fixed), runs the frozen layers once (they are pretrained and the same
for every seed), then trains the recipe once per seed and scores each Keras
model on the test split, single pass and with the mirror-image average.
Prints one JSON line per seed and a summary (mean, min, max); writes them to
``--work-dir``/seeds.json. The recipe options are the job's own
(training/cli.py); only ``--seeds`` is added.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

import numpy as np

log = logging.getLogger("training.seeds")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from shared.logs import configure_logging
    from training.cli import config_from_args, parser

    p = parser()
    p.prog = "python -m training.seeds"
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds (default: 1 2 3)")
    args = p.parse_args(["prepare", *(argv if argv is not None else sys.argv[1:])])
    configure_logging(args.log_level)
    config = config_from_args(args)

    from training import evaluate as ev
    from training import pipeline
    from training.model import ModelSpec
    from training.train import compute_features, train

    dataset = pipeline.load_dataset(config)
    weights = None if config.weights == "none" else config.weights
    spec = ModelSpec(num_classes=len(dataset.split.labels), size=config.size, alpha=config.alpha, weights=weights)
    # the frozen layers are the same for every seed only when they are pretrained
    features = compute_features(dataset, spec, config.train) if config.train.cache_after and weights else None
    pixels, truth = dataset.pixels["test"], dataset.targets["test"]
    runs = []
    for seed in args.seeds:
        started = time.perf_counter()
        model, history = train(dataset, spec, dataclasses.replace(config.train, seed=seed), features)
        single = ev.predict_keras(model, pixels)
        flipped = (single + ev.predict_keras(model, pixels[:, :, ::-1])) / 2
        run = {
            "seed": seed,
            "test_accuracy_single_pass": round(float((single.argmax(1) == truth).mean()), 4),
            "test_accuracy_flip_average": round(float((flipped.argmax(1) == truth).mean()), 4),
            "best_val_accuracy": round(max(history.get("val_accuracy", [0.0])), 4),
            "epochs": len(history.get("loss", [])),
            "seconds": round(time.perf_counter() - started, 1),
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
    summary = {
        key: {"mean": round(float(np.mean(values)), 4), "min": min(values), "max": max(values)}
        for key in ("test_accuracy_single_pass", "test_accuracy_flip_average")
        for values in [[r[key] for r in runs]]
    }
    result = {"recipe": dataclasses.asdict(config.train), "test_images": len(truth), "runs": runs, "summary": summary}
    (config.work_dir / "seeds.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
