"""Export stage: Keras model -> TFLite variants (full-integer int8,
float16 weights, float32), and a measure of their speed on this machine."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)


def _saved_model(model: keras.Model, directory: str) -> str:
    model.export(directory, format="tf_saved_model", verbose=False)
    return directory


def to_float32(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(_saved_model(model, tmp))
        return converter.convert()


def to_float16(model: keras.Model) -> bytes:
    """float16 weights (half the file), float32 input, output and compute:
    XNNPACK unpacks the weights to float32 when it loads the model."""
    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(_saved_model(model, tmp))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def to_int8(model: keras.Model, representative: np.ndarray) -> bytes:
    """Full-integer quantization: uint8 pixels in, uint8 scores out, int8
    weights and activations, calibrated on ``representative`` pixels."""

    def samples() -> Iterator[list[np.ndarray]]:
        for pixels in representative:
            yield [pixels[None].astype(np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(_saved_model(model, tmp))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        return converter.convert()


def representative_sample(pixels: np.ndarray, targets: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A class-balanced sample of training pixels for calibration."""
    rng = np.random.default_rng(seed)
    classes = np.unique(targets)
    per_class = max(1, count // max(1, len(classes)))
    picks = [rng.permutation(np.flatnonzero(targets == c))[:per_class] for c in classes]
    index = rng.permutation(np.concatenate(picks)) if picks else np.array([], dtype=int)
    return pixels[index]


def invoke_ms(model_bytes: bytes, *, calls: int = 40) -> float:
    """The fastest of ``calls`` bare ``invoke()`` calls of a TFLite model on
    one thread, in milliseconds (LiteRT, default XNNPACK delegate). The
    minimum, not the median: on a shared machine other processes only ever
    add time, so the minimum is the most repeatable figure of the model's own cost."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    pixels = np.random.default_rng(0).integers(0, 256, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], pixels)
    interpreter.invoke()
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        interpreter.invoke()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 3)
