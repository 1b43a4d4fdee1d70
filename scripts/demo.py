"""``make demo``: get a model (train one when the store has none), then
classify a sample of real held-out images with the serving Classifier and
show the results.

This is the offline part of the demo; the event pipeline on local emulators
(upload -> classify -> Firestore -> sorted bucket) is built in the next step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from shared.classifier import Classifier
from shared.errors import ModelError
from shared.labels import slugify
from shared.model_layout import MANIFEST_FILE, resolve_model_dir


def get_model(args: argparse.Namespace) -> Path:
    if args.model_dir:
        return resolve_model_dir(Path(args.model_dir))
    try:
        found = resolve_model_dir(Path(args.out))
        print(f"Using the current model in {found} (delete {args.out} to train a new one).")
        return found
    except ModelError:
        pass
    print(f"No model in {args.out}: running the training job on {args.data} (a few minutes on 2 cores)...", flush=True)
    command = [sys.executable, "-m", "training", "run", "--data", args.data, "--weights", args.weights, "--out", args.out]
    code = subprocess.call(command)
    if code not in (0, 3):
        raise SystemExit(f"training failed with exit code {code}")
    return resolve_model_dir(Path(args.out))


def sample(model_dir: Path, data: Path, per_class: int) -> list[tuple[Path, str]]:
    """Images from the model's own test split, so none was seen in training."""
    split_file = model_dir / "split.json"
    if not split_file.is_file():
        return [(p, "?") for p in sorted((data / "images").glob("*.jpg"))[: per_class * 10]]
    split = json.loads(split_file.read_text())
    chosen, seen = [], {}
    for image_id, label in split["items"]["test"]:
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            chosen.append((data / "images" / f"{image_id}.jpg", label))
    return sorted(chosen, key=lambda item: item[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--out", required=True, help="model store")
    p.add_argument("--model-dir", help="use this model instead of the store's current one")
    p.add_argument("--per-class", type=int, default=2)
    args = p.parse_args(argv)

    model_dir = get_model(args)
    classifier = Classifier.load(model_dir)
    metrics = json.loads((model_dir / MANIFEST_FILE).read_text()).get("metrics", {})
    print(
        f"\nModel {classifier.version}: {classifier.manifest.quantization.get('type')} "
        f"test accuracy {metrics.get('test_accuracy', float('nan')):.1%} "
        f"(report: {model_dir / 'report.html'})\n"
    )
    rows, correct, latencies = [], 0, []
    for path, truth in sample(model_dir, Path(args.data), args.per_class):
        start = time.perf_counter()
        prediction = classifier.classify(path.read_bytes())
        latencies.append((time.perf_counter() - start) * 1000)
        ok = prediction.label == truth
        correct += ok
        rows.append(
            (
                path.name,
                truth,
                prediction.label,
                prediction.confidence,
                "ok" if ok else "MISS",
                f"{slugify(prediction.label)}/{path.name}",
            )
        )
    print(f"{'file':<12} {'true category':<14} {'predicted':<14} {'confidence':>10}  {'':4}  would be filed as")
    for name, truth, label, confidence, mark, destination in rows:
        print(f"{name:<12} {truth:<14} {label:<14} {confidence:>10.1%}  {mark:4}  {destination}")
    latencies.sort()
    print(
        f"\n{correct}/{len(rows)} correct; decode+classify per image: "
        f"median {latencies[len(latencies) // 2]:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
