"""``make embed-model``: make a model store's current model the embedded
default (``default-model/``, committed with the repository).

Copies the current version's files (model, manifest, metrics, report, split,
history, charts) into ``default-model/models/<version>/``, replaces any
version there before, and writes ``default-model/models/current.json``.
Refuses a model whose file does not match its manifest's checksum.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from shared.dev_paths import EMBEDDED_MODEL_STORE, TRAINED_MODEL_STORE
from shared.errors import ModelError
from shared.manifest import read_manifest, sha256_bytes
from shared.model_layout import MANIFEST_FILE, MODELS_PREFIX, POINTER, pointer_payload, resolve_model_dir

#: Embedded model files; everything else in a version folder stays behind.
FILES = ("model.tflite", "manifest.json", "metrics.json", "report.html", "split.json", "history.json")


def embed(store: Path, target: Path = EMBEDDED_MODEL_STORE) -> str:
    """Copy ``store``'s current model into ``target``; returns its version.
    ModelError when ``store`` holds no usable model."""
    version_dir = resolve_model_dir(store)
    manifest = read_manifest(version_dir / MANIFEST_FILE)
    if sha256_bytes((version_dir / manifest.model_file).read_bytes()) != manifest.model_sha256:
        raise ModelError(f"{version_dir / manifest.model_file} does not match its manifest's sha256")
    shutil.rmtree(target / MODELS_PREFIX, ignore_errors=True)
    destination = target / MODELS_PREFIX / manifest.version
    destination.mkdir(parents=True)
    for name in FILES:
        if (version_dir / name).is_file():
            shutil.copyfile(version_dir / name, destination / name)
    (target / POINTER).write_text(pointer_payload(manifest.version))
    return manifest.version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.embed_model", description=__doc__)
    p.add_argument("--store", type=Path, default=TRAINED_MODEL_STORE, help="the model store to take the current model from")
    p.add_argument("--target", type=Path, default=EMBEDDED_MODEL_STORE, help="default %(default)s")
    args = p.parse_args(argv)
    try:
        version = embed(args.store, args.target)
    except ModelError as exc:
        print(f"embed-model: {exc}", file=sys.stderr)
        return 1
    print(f"embedded model {version} from {args.store} in {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
