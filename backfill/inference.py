"""The model a run is pinned to, and the RunInference model handler over the
shared LiteRT :class:`~shared.classifier.Classifier` (no TensorFlow).

The launcher resolves the version once (``--model`` or the models bucket's
pointer at launch) and every worker loads exactly that version, so a model
published during the run changes nothing in it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from shared.classifier import Classifier
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, check_version, parse_pointer, version_prefix


def current_version(storage: Any, models_bucket: str) -> str:
    """The version the models bucket's pointer names now (the launch-time pin).
    Raises google.api_core NotFound when there is no pointer, ValueError when it does not parse."""
    return parse_pointer(storage.bucket(models_bucket).blob(POINTER).download_as_bytes())


def load_version(storage: Any, models_bucket: str, version: str, cache_dir: str | None = None) -> Classifier:
    """Download ``version``'s ``model.tflite`` and ``manifest.json`` from the
    models bucket (into ``cache_dir``, default a fresh temporary folder) and
    load it; the sha256 in the manifest is checked by the Classifier.
    Raises google.api_core NotFound for an unknown version, ModelError for a bad model."""
    version = check_version(version)
    folder = Path(cache_dir or tempfile.mkdtemp(prefix="backfill-model-")) / version
    folder.mkdir(parents=True, exist_ok=True)
    bucket = storage.bucket(models_bucket)
    for name in (MANIFEST_FILE, MODEL_FILE):
        path = folder / name
        if not path.is_file():
            bucket.blob(version_prefix(version) + name).download_to_filename(str(path))
    return Classifier.load(folder, num_threads=1)


class PinnedModels:
    """What :class:`functions.processing.Processor` asks for its model
    (``get()``), always the run's pinned classifier."""

    def __init__(self, classifier: Classifier) -> None:
        self._classifier = classifier

    def get(self) -> Classifier:
        return self._classifier


class LiteRTModelHandler(ModelHandler[np.ndarray, PredictionResult, Classifier]):
    """RunInference over the shared Classifier: examples are ``(size, size, 3)``
    uint8 pixels from :func:`shared.preprocess.prepare_image`; each result's
    ``inference`` is a :class:`shared.classifier.Prediction` (``top_k`` labels,
    scores 0..1) and ``model_id`` the pinned version. One batch is one
    ``invoke()`` of ``(N, size, size, 3)``.

    ``loader``: returns the Classifier (called once per worker process by
    RunInference's shared model); ``version`` names it for the results."""

    def __init__(self, loader: Any, version: str, *, top_k: int = 3, min_batch_size: int = 1, max_batch_size: int = 32) -> None:
        self._loader = loader
        self._version = version
        self._top_k = top_k
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self) -> Classifier:
        return self._loader()

    def run_inference(
        self, batch: Sequence[np.ndarray], model: Classifier, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        predictions = model.classify_pixels(np.stack(batch), self._top_k)
        return [PredictionResult(x, p, self._version) for x, p in zip(batch, predictions, strict=True)]

    def batch_elements_kwargs(self) -> dict[str, int]:
        return dict(self._batching)

    def get_metrics_namespace(self) -> str:
        return "backfill_litert"


class BucketModelLoader:
    """A picklable ``loader`` for :class:`LiteRTModelHandler`: the pinned
    version from the models bucket, with a Storage client made on the worker."""

    def __init__(self, project: str, models_bucket: str, version: str) -> None:
        self.project, self.models_bucket, self.version = project, models_bucket, version

    def __call__(self) -> Classifier:
        from google.cloud import storage

        return load_version(storage.Client(project=self.project), self.models_bucket, self.version)
