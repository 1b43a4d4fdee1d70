"""LiteRT classifier: ``model.tflite`` + ``manifest.json`` -> top-k labels.

No TensorFlow: the interpreter comes from ai-edge-litert. The model file's
sha256 is checked against the manifest before the interpreter sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import ImageError, ModelError
from shared.imaging import DEFAULT_LIMITS, DecodeLimits
from shared.manifest import Manifest, read_manifest, sha256_bytes
from shared.model_layout import MANIFEST_FILE, resolve_model_dir
from shared.preprocess import prepare_image

#: the category head's output name in a model with attribute heads
#: (training/model.py's CATEGORY_OUTPUT; serving imports no training code)
CATEGORY_OUTPUT = "probabilities"


@dataclass(frozen=True)
class AttributePrediction:
    """One attribute of a photo (issue 19): its top class and score (0..1).

    ``value`` is ``None`` when ``confidence`` is below the attribute's
    ``threshold`` (or the threshold is 1.0: never reached on val): a
    low-confidence attribute is left empty, not guessed;
    ``best`` keeps the top class either way for a reviewer."""

    value: str | None
    confidence: float
    threshold: float
    best: str

    @property
    def low_confidence(self) -> bool:
        return self.value is None

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "confidence": self.confidence,
            "threshold": self.threshold,
            "best": self.best,
            "low_confidence": self.low_confidence,
        }


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    probabilities: dict[str, float]
    #: attribute name -> its prediction; empty for a model without attribute heads
    attributes: dict[str, AttributePrediction] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON shape; ``attributes`` appears only when the model has them
        (a category-only model's answer is unchanged)."""
        out = {
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": lab, "score": score} for lab, score in self.top_k],
        }
        if self.attributes:
            out["attributes"] = {name: a.to_dict() for name, a in self.attributes.items()}
        return out


class Classifier:
    """Thread-safe wrapper around one LiteRT interpreter."""

    def __init__(self, model_bytes: bytes, manifest: Manifest, *, num_threads: int | None = None) -> None:
        digest = sha256_bytes(model_bytes)
        if digest != manifest.model_sha256:
            raise ModelError(
                f"model.tflite sha256 {digest} does not match the manifest's {manifest.model_sha256}: refusing to serve it"
            )
        from ai_edge_litert.interpreter import Interpreter

        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.size = manifest.input_size
        self._lock = threading.Lock()
        try:
            self._interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load the model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output, self._attribute_outputs = self._find_outputs()
        self._batch = int(self._input["shape"][0])
        self._check_against_manifest()

    @classmethod
    def load(cls, path: Path | str, *, num_threads: int | None = None) -> Classifier:
        """Load from a version folder or from a store root's current version."""
        model_dir = resolve_model_dir(Path(path))
        manifest = read_manifest(model_dir / MANIFEST_FILE)
        model_path = model_dir / manifest.model_file
        try:
            model_bytes = model_path.read_bytes()
        except FileNotFoundError as exc:
            raise ModelError(f"no model file at {model_path}") from exc
        return cls(model_bytes, manifest, num_threads=num_threads)

    @property
    def version(self) -> str:
        return self.manifest.version

    def _find_outputs(self) -> tuple[dict, dict[str, dict]]:
        """The category output's details and {attribute: output details}.
        The category output is the signature's :data:`CATEGORY_OUTPUT` when
        the model names it (a model with attribute heads), else the first
        output, as before; attribute outputs are found by the names the
        manifest gives (ModelError when one is missing)."""
        outputs = self._interpreter.get_output_details()
        by_index = {int(d["index"]): d for d in outputs}
        named = _signature_outputs(self._interpreter)
        category = by_index[named[CATEGORY_OUTPUT]] if CATEGORY_OUTPUT in named else outputs[0]
        if not self.manifest.attributes:
            return category, {}
        wanted = {name: head["output"] for name, head in self.manifest.attributes.items()}
        missing = sorted({CATEGORY_OUTPUT, *wanted.values()} - set(named))
        if missing:
            raise ModelError(f"the model has no outputs {missing} (it has {sorted(named)})")
        return category, {name: by_index[named[output]] for name, output in wanted.items()}

    def _check_against_manifest(self) -> None:
        shape = list(self._input["shape"])
        if shape[1:] != [self.size, self.size, 3]:
            raise ModelError(f"model input shape {shape} does not match input_size {self.size}")
        dtype = np.dtype(self._input["dtype"]).name
        if dtype != self.manifest.input_dtype:
            raise ModelError(f"model input dtype {dtype} does not match the manifest's {self.manifest.input_dtype}")
        classes = int(self._output["shape"][-1])
        if classes != len(self.labels):
            raise ModelError(f"model has {classes} outputs but the manifest lists {len(self.labels)} labels")
        for name, detail in self._attribute_outputs.items():
            labels = self.manifest.attributes[name]["labels"]
            if int(detail["shape"][-1]) != len(labels):
                raise ModelError(f"attribute {name!r} has {int(detail['shape'][-1])} outputs but {len(labels)} labels")

    # -- inference -----------------------------------------------------------

    def predict_arrays(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 pixels -> ``(N, classes)`` probabilities."""
        return self.predict_heads(pixels)[0]

    def predict_heads(self, pixels: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One invoke: ``(N, size, size, 3)`` uint8 pixels -> ``(N, classes)``
        category probabilities and {attribute: ``(N, attribute classes)``}
        probabilities (empty for a category-only model). ValueError for
        pixels of the wrong shape."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected (N, {self.size}, {self.size}, 3) pixels, got {pixels.shape}")
        with self._lock:
            if pixels.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], [pixels.shape[0], self.size, self.size, 3])
                self._interpreter.allocate_tensors()
                self._batch = pixels.shape[0]
            self._write_input(pixels)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])
            extra = {name: self._interpreter.get_tensor(d["index"]) for name, d in self._attribute_outputs.items()}
        return self._dequantize_output(raw, self._output), {
            name: self._dequantize_output(values, self._attribute_outputs[name]) for name, values in extra.items()
        }

    def _write_input(self, pixels: np.ndarray) -> None:
        """Put ``pixels`` into the input tensor. Pixels the model takes as
        they are (float32 input, or uint8 with scale 1 and zero point 0) are
        converted while being written into the interpreter's own buffer:
        no temporary array, whose allocation and first touch (600 KB of
        float32 at 224x224) cost about a tenth of the served model's
        invoke() (``make bench``, docs/benchmarks.md). No view of the buffer
        is kept past this call, as LiteRT requires before ``invoke()``."""
        dtype = np.dtype(self._input["dtype"])
        scale, zero_point = self._input["quantization"]
        if dtype == np.float32 or (dtype == np.uint8 and scale == 1.0 and zero_point == 0):
            np.copyto(self._interpreter.tensor(self._input["index"])(), pixels, casting="unsafe")
        else:
            self._interpreter.set_tensor(self._input["index"], self._quantize_input(pixels))

    def _quantize_input(self, pixels: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype == np.float32:
            return pixels.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        if dtype == np.uint8 and scale == 1.0 and zero_point == 0:
            return pixels.astype(np.uint8, copy=False)
        info = np.iinfo(dtype)
        q = np.rint(pixels.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize_output(self, raw: np.ndarray, detail: dict) -> np.ndarray:
        scores = raw.astype(np.float32)
        if np.dtype(detail["dtype"]) != np.float32:
            scale, zero_point = detail["quantization"]
            scores = (scores - zero_point) * scale
        scores = np.clip(scores, 0.0, None)
        totals = scores.sum(axis=-1, keepdims=True)
        return np.divide(scores, totals, out=np.full_like(scores, 1.0 / scores.shape[-1]), where=totals > 0)

    def prediction_from_scores(
        self, scores: np.ndarray, top_k: int = 3, attributes: dict[str, np.ndarray] | None = None
    ) -> Prediction:
        """One image's category scores ``(classes,)`` (and its attribute
        scores, attribute -> ``(attribute classes,)``) -> Prediction."""
        order = np.argsort(-scores, kind="stable")
        k = max(1, min(top_k, len(self.labels)))
        top = [(self.labels[i], round(float(scores[i]), 6)) for i in order[:k]]
        probabilities = {self.labels[i]: round(float(scores[i]), 6) for i in range(len(self.labels))}
        found = {name: self._attribute(name, values) for name, values in (attributes or {}).items()}
        return Prediction(label=top[0][0], confidence=top[0][1], top_k=top, probabilities=probabilities, attributes=found)

    def _attribute(self, name: str, scores: np.ndarray) -> AttributePrediction:
        head = self.manifest.attributes[name]
        best = int(np.argmax(scores))
        confidence = round(float(scores[best]), 6)
        threshold = float(head["threshold"])
        label = head["labels"][best]
        return AttributePrediction(
            value=label if confidence >= threshold and threshold < 1.0 else None,
            confidence=confidence,
            threshold=threshold,
            best=label,
        )

    def classify_pixels(self, pixels: np.ndarray, top_k: int = 3) -> list[Prediction]:
        categories, attributes = self.predict_heads(pixels)
        return [
            self.prediction_from_scores(s, top_k, {name: values[n] for name, values in attributes.items()})
            for n, s in enumerate(categories)
        ]

    def classify(self, data: bytes, *, top_k: int = 3, limits: DecodeLimits = DEFAULT_LIMITS) -> Prediction:
        """Image bytes -> Prediction. Raises ImageError for unusable input."""
        return self.classify_pixels(prepare_image(data, self.size, limits=limits), top_k)[0]

    def classify_batch(
        self, items: Sequence[bytes], *, top_k: int = 3, limits: DecodeLimits = DEFAULT_LIMITS
    ) -> list[Prediction | ImageError]:
        """Classify several images in one invoke; a bad image yields its
        ImageError in its slot and does not fail the others."""
        results: list[Prediction | ImageError] = []
        good: list[np.ndarray] = []
        slots: list[int] = []
        for data in items:
            try:
                good.append(prepare_image(data, self.size, limits=limits))
                slots.append(len(results))
                results.append(None)  # type: ignore[arg-type]
            except ImageError as exc:
                results.append(exc)
        if good:
            for slot, prediction in zip(slots, self.classify_pixels(np.stack(good), top_k), strict=True):
                results[slot] = prediction
        return results


def _signature_outputs(interpreter) -> dict[str, int]:
    """{output name: tensor index} of the model's one signature; empty for a
    model without signatures. No reference into the interpreter is kept."""
    try:
        runner = interpreter.get_signature_runner()
    except ValueError:
        return {}
    return {name: int(detail["index"]) for name, detail in runner.get_output_details().items()}


def inspect_model(model_bytes: bytes) -> dict:
    """Input/output shapes, dtypes and quantization parameters of a TFLite
    model, read with LiteRT (used to write the manifest); the output is the
    category's (:data:`CATEGORY_OUTPUT`) in a model with attribute heads."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    outputs = interpreter.get_output_details()
    category = _signature_outputs(interpreter).get(CATEGORY_OUTPUT)
    output = next((d for d in outputs if int(d["index"]) == category), outputs[0])
    details = {}
    for name, tensor in (("input", interpreter.get_input_details()[0]), ("output", output)):
        scale, zero_point = tensor["quantization"]
        details[name] = {
            "shape": [int(d) for d in tensor["shape"]],
            "dtype": np.dtype(tensor["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return details
