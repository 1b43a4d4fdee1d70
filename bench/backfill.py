"""Backfill benchmark: the Beam pipeline (``backfill/``, FnApiRunner) on the
local stack against a plain single-process loop over the same processing
core, in the same run and on the same kind of objects; and the inference
stage alone (RunInference with the LiteRT handler) against the bare
``Classifier`` on the same preprocessed pixels.

``run`` (called by ``python -m bench backfill`` in the main venv, which has
no Apache Beam) runs ``python -m bench.backfill`` in the Beam venv
(``.venv-beam``) and reads the figures it prints as JSON on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.dev_paths import REPO_ROOT

PROJECT = "bench-backfill"
CATALOGUE = "bench-catalogue"
BATCH = 32


def run(store: Path, data: str | None, count: int, *, timeout: float = 1800) -> dict[str, Any]:
    """The section's figures, measured in the Beam venv. Raises RuntimeError when it fails."""
    from fashionctl.backfill import beam_python

    command = [beam_python(), "-m", "bench.backfill", "--store", str(store), "--count", str(count)]
    command += ["--data", data] if data else []
    done = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the backfill benchmark failed (exit {done.returncode})")
    return json.loads(lines[-1])


class LocalModel:
    """A picklable loader of a model folder (RunInference's ``load_model``)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self) -> Any:
        from shared.classifier import Classifier

        return Classifier.load(self.folder, num_threads=1)


#: the inference benchmark's preprocessed pixels, looked up by index inside the in-memory pipeline
_PIXELS: list[Any] = []


def _pixels_of(index: int) -> Any:
    return _PIXELS[index]


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


def measure(store: Path, data: str | None, count: int) -> dict[str, Any]:
    """Start the local stack with ``store``'s model, backfill ``count`` objects
    with the pipeline and ``count`` others with the plain loop, time the
    inference stage both ways; stop the stack."""
    import localcloud
    from bench import samples

    tools = localcloud.find_tools()
    images = samples.dataset_images(data, count)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        state_dir = Path(tmp) / "stack"
        settings = localcloud.default_settings(PROJECT)
        config = localcloud.StackConfig(state_dir=state_dir, ports=localcloud.Ports.free(), settings=settings, model_store=store)
        localcloud.up(config, tools)
        try:
            state = localcloud.State.load(state_dir)
            assert state is not None
            env = state.env
            os.environ["STORAGE_EMULATOR_HOST"] = env["STORAGE_EMULATOR_HOST"]
            os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
            localcloud.create_buckets(env["STORAGE_EMULATOR_HOST"], settings.project, [CATALOGUE])
            return _measure(settings, images)
        finally:
            localcloud.down(state_dir)


def _measure(settings: Any, images: list[tuple[str, bytes]]) -> dict[str, Any]:
    import apache_beam as beam
    import numpy as np
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from backfill.inference import LiteRTModelHandler, PinnedModels, current_version, load_version
    from backfill.pipeline import BackfillOptions
    from backfill.pipeline import run as backfill
    from backfill.source import Source
    from backfill.steps import firestore_client, storage_client
    from functions import wiring
    from shared import records as rec
    from shared.preprocess import prepare_image

    count = len(images)
    storage = storage_client(settings)
    bucket = storage.bucket(CATALOGUE)
    refs = {}
    for prefix in ("pipeline/", "loop/"):
        for name, data in images:
            blob = bucket.blob(prefix + name)
            blob.upload_from_string(data, content_type="image/jpeg")
            refs[blob.name] = int(blob.generation)
    version = current_version(storage, settings.models_bucket)
    folder = tempfile.mkdtemp(prefix="bench-model-")
    classifier = load_version(storage, settings.models_bucket, version, folder)

    started = time.perf_counter()
    summary = backfill(settings, BackfillOptions(source=Source(CATALOGUE, "pipeline/")))
    pipeline_seconds = time.perf_counter() - started
    done = sum(n for k, n in summary["counts"].items() if k.startswith("status_"))

    components = wiring.build(settings, storage=storage, db=firestore_client(settings))
    processor = wiring.batch_processor(components, PinnedModels(classifier))
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    for name, generation in sorted(refs.items()):
        if name.startswith("loop/"):
            outcome = processor.process(rec.ObjectRef(CATALOGUE, name, generation), trigger="bench")
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    loop_seconds = time.perf_counter() - started

    pixels = [prepare_image(data, classifier.size) for _, data in images]
    started = time.perf_counter()
    for one in pixels:
        classifier.classify_pixels(one[None])
    bare_one = time.perf_counter() - started
    started = time.perf_counter()
    for k in range(0, count, BATCH):
        classifier.classify_pixels(np.stack(pixels[k : k + BATCH]))
    bare_batched = time.perf_counter() - started
    handler = LiteRTModelHandler(LocalModel(str(Path(folder) / version)), version, max_batch_size=BATCH)
    # The pixels stay in this process (the FnApiRunner runs in memory here): the pipeline carries
    # indices and looks them up, so that it times inference, not the encoding of 150 kB arrays.
    _PIXELS[:] = pixels
    started = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create(range(count)) | beam.Map(_pixels_of) | RunInference(handler) | beam.combiners.Count.Globally()
    beam_inference = time.perf_counter() - started
    # the same pipeline without the inference step: Beam's start-up and overhead
    started = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create(range(count)) | beam.Map(_pixels_of) | beam.combiners.Count.Globally()
    beam_baseline = time.perf_counter() - started

    return {
        "objects": count,
        "model_version": version,
        "pipeline": {
            "seconds": round(pipeline_seconds, 2),
            "images_per_second": _rate(done, pipeline_seconds),
            "finished": done,
            "run_seconds": summary["seconds"],
        },
        "plain_loop": {
            "seconds": round(loop_seconds, 2),
            "images_per_second": _rate(sum(statuses.values()), loop_seconds),
            "statuses": statuses,
        },
        "inference": {
            "bare_classifier_one_by_one_images_per_second": _rate(count, bare_one),
            f"bare_classifier_batch_{BATCH}_images_per_second": _rate(count, bare_batched),
            "beam_runinference_images_per_second": _rate(count, beam_inference),
            # the difference of two pipeline runs: None when it is within the noise (not positive)
            "beam_runinference_stage_images_per_second": (
                _rate(count, beam_inference - beam_baseline) if beam_inference > beam_baseline else None
            ),
            "beam_runinference_seconds": round(beam_inference, 2),
            "beam_same_pipeline_without_inference_seconds": round(beam_baseline, 2),
        },
        "note": "pipeline seconds include Beam's start-up and the run document; both backfill paths write 4 documents per object (3 record writes + 1 counter shard)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill")
    parser.add_argument("--store", type=Path, required=True, help="the model store to serve (models/current.json)")
    parser.add_argument("--data", help="dataset folder; default synthetic images")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    result = measure(args.store, args.data, args.count)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
