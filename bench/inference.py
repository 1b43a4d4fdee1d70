"""Inference benchmark, one process pinned to one core (as a function
instance with one vCPU): the shared Classifier against the bare LiteRT
interpreter (our overhead) and against Keras ``model.predict`` (the
prototype's way), for every exported variant (int8, float16, float32, and
float16 without the mirror-image average), in the same run; says which
variant is served and whether it is the fastest.

The Classifier and the bare interpreter of one variant are measured call by
call in one loop (:func:`bench.measure.time_interleaved`), so that load from
other processes hits both alike, and compared on their fastest calls and
their medians. Both get the same preprocessed uint8 pixels (224x224x3, from
``prepare_image``). The bare call is the least LiteRT needs: ``set_tensor`` of
a tensor converted to the model's input type beforehand, ``invoke``,
``get_tensor``. ``Classifier.predict_arrays`` adds what serving does per call:
the shape check, the lock, converting uint8 pixels to the input type
(float32 for the float models), and turning the scores into probabilities
(dequantized for int8, clipped, renormalised)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from bench.artifacts import Artifacts, load_keras_served
from bench.measure import Latency, time_calls, time_interleaved
from bench.samples import Sample
from shared.classifier import Classifier
from shared.preprocess import prepare_image


@contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process to one core meanwhile; yields it (None where affinity
    is unsupported). The processes the later benchmarks start must not inherit it."""
    try:
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield min(cores)
    finally:
        os.sched_setaffinity(0, cores)


def _bare_interpreter(model_bytes: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    return interpreter


def _bare_invoke(interpreter: Any, pixels: np.ndarray) -> Any:
    """The least that can be done per image: set, invoke, get (the input
    already in the model's type)."""
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    data = pixels[None].astype(inp["dtype"])

    def call() -> np.ndarray:
        interpreter.set_tensor(inp["index"], data)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return call


def run(artifacts: Artifacts, product: Sample, photo: Sample, *, iterations: int, warmup: int) -> dict[str, Any]:
    with one_core() as core:
        return _run(artifacts, product, photo, core, iterations=iterations, warmup=warmup)


def _run(
    artifacts: Artifacts, product: Sample, photo: Sample, core: int | None, *, iterations: int, warmup: int
) -> dict[str, Any]:
    pixels = prepare_image(product.data, artifacts.manifest.input_size)
    results: dict[str, Any] = {"core": core, "iterations": iterations, "rows": {}}
    rows = results["rows"]

    def record(name: str, samples: list[float]) -> Latency:
        latency = Latency.from_samples(samples)
        rows[name] = latency.to_dict() | {"min_ms": round(1000 * min(samples), 3)}
        print(
            f"  {name:<38} min {rows[name]['min_ms']:8.2f} ms  p50 {latency.p50:8.2f} ms  p99 {latency.p99:8.2f} ms"
            f"  {latency.images_per_s:8.1f} images/s",
            flush=True,
        )
        return latency

    def measure(name: str, fn: Any, calls: int = iterations, warm: int = warmup) -> Latency:
        return record(name, time_calls(fn, calls, warm))

    size = artifacts.manifest.input_size
    measure("preprocess product JPEG", lambda: prepare_image(product.data, size))
    measure("preprocess 2-MP photo", lambda: prepare_image(photo.data, size))
    variants = artifacts.variants()
    for variant in variants:
        model_bytes, manifest = artifacts.variant(variant)
        classifier = Classifier(model_bytes, manifest)
        pair = {
            f"{variant} bare invoke()": _bare_invoke(_bare_interpreter(model_bytes), pixels),
            f"{variant} Classifier.predict_arrays": lambda c=classifier: c.predict_arrays(pixels),
        }
        samples = time_interleaved(pair, iterations, warmup)
        bare, wrapped = (record(name, samples[name]) for name in pair)
        measure(f"{variant} Classifier.classify (JPEG bytes)", lambda c=classifier: c.classify(product.data))
        bare_min, wrapped_min = (min(samples[name]) for name in pair)
        results[f"{variant}_overhead_ratio"] = round(wrapped.p50 / bare.p50, 3)
        results[f"{variant}_overhead"] = {
            "median_ratio": round(wrapped.p50 / bare.p50, 3),
            "min_ratio": round(wrapped_min / bare_min, 3),
            # each round's two calls ran back to back: the median of their ratios
            "paired_median_ratio": round(statistics.median(w / b for b, w in zip(*samples.values(), strict=True)), 3),
            "extra_ms_median": round(wrapped.p50 - bare.p50, 3),
            "extra_ms_min": round(1000 * (wrapped_min - bare_min), 3),
        }

    bare = {variant: rows[f"{variant} bare invoke()"]["p50_ms"] for variant in variants}
    served, why = artifacts.served_variant()
    fastest = min(bare, key=bare.__getitem__)
    results.update(variants=variants, served_variant=served, served_because=why, fastest_variant=fastest)
    results["served_is_fastest"] = served in bare and bare[served] <= min(bare.values()) * 1.02  # within timing noise
    print(f"  served: {served} ({why}); fastest bare invoke() here: {fastest}", flush=True)
    started = time.perf_counter()
    model = load_keras_served(artifacts.work_dir, artifacts.flip_average)
    results["keras_load_s"] = round(time.perf_counter() - started, 2)
    batch = pixels[None].astype(np.float32)
    # slow: fewer calls (a quarter) for the same precision of its percentiles
    keras = measure("Keras model.predict", lambda: model.predict(batch, verbose=0), max(5, iterations // 4), max(3, warmup // 4))
    results["speedup_vs_keras_predict"] = {
        variant: round(keras.p50 / rows[f"{variant} Classifier.predict_arrays"]["p50_ms"], 1) for variant in variants
    }
    return results
