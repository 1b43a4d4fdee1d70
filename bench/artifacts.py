"""The models the benchmarks run: the training job's outputs (its work
folder holds the Keras model and both TFLite variants; its store holds the
published version the functions load)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.classifier import inspect_model
from shared.manifest import Manifest, read_manifest, sha256_bytes
from shared.model_layout import MANIFEST_FILE, POINTER

KERAS_FILE = "model.keras"
#: The training job's exported variants (training/pipeline.py VARIANTS); a
#: work folder holds int8 and float32 at least.
VARIANT_FILES = {
    "int8": "model_int8.tflite",
    "float16": "model_float16.tflite",
    "float32": "model_float32.tflite",
    "float16-single": "model_float16-single.tflite",
}
REQUIRED = (KERAS_FILE, MANIFEST_FILE, VARIANT_FILES["int8"], VARIANT_FILES["float32"])


@dataclass(frozen=True)
class Artifacts:
    work_dir: Path  # the training job's work folder
    store: Path  # the model store it published to (models/current.json)

    @classmethod
    def at(cls, root: Path) -> Artifacts:
        return cls(root / "train-work", root / "model-store")

    def complete(self) -> bool:
        return all((self.work_dir / name).is_file() for name in REQUIRED) and (self.store / POINTER).is_file()

    def variants(self) -> list[str]:
        """The exported variants present in the work folder, in VARIANT_FILES order."""
        return [name for name, file in VARIANT_FILES.items() if (self.work_dir / file).is_file()]

    def served_variant(self) -> tuple[str | None, str]:
        """The variant the training job chose to serve and its reason (metrics.json)."""
        import json

        path = self.work_dir / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        return metrics.get("served_variant"), metrics.get("served_because", "")

    @property
    def manifest(self) -> Manifest:
        return read_manifest(self.work_dir / MANIFEST_FILE)

    def variant(self, name: str) -> tuple[bytes, Manifest]:
        """A TFLite variant's bytes and a manifest describing it (the served
        manifest with this variant's checksum and input type)."""
        model_bytes = (self.work_dir / VARIANT_FILES[name]).read_bytes()
        details = inspect_model(model_bytes)
        manifest = dataclasses.replace(
            self.manifest,
            model_sha256=sha256_bytes(model_bytes),
            input_dtype=details["input"]["dtype"],
            quantization={"type": name, "input": details["input"], "output": details["output"]},
            base_network={
                **self.manifest.base_network,
                "test_time_augmentation": "none" if name.endswith("-single") else "horizontal-flip average",
            },
        )
        return model_bytes, manifest

    @property
    def flip_average(self) -> bool:
        return self.manifest.base_network.get("test_time_augmentation", "none") != "none"


def load_keras_served(work_dir: Path, flip_average: bool) -> Any:
    """The same network as the TFLite model, in Keras (TensorFlow imported here)."""
    import keras

    from training.model import with_flip_averaging

    model = keras.models.load_model(work_dir / KERAS_FILE)
    return with_flip_averaging(model) if flip_average else model
