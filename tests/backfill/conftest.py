"""The backfill on real emulators: fake-gcs-server and the Firestore
emulator, through the real Google client libraries, the pipeline on Beam's
FnApiRunner. These tests need the Beam venv (``make venv-beam``:
``.venv-beam``, ``requirements-beam.txt``); ``make test`` runs them there.
Under another venv without Apache Beam they are not collected (the main run
of ``make test`` leaves them to the Beam one)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("apache_beam") is None:
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = next((REPO / "default-model" / "models").glob("*/manifest.json")).parent
CATALOGUE = "it-catalogue"
SMALL = Path(os.environ.get("FASHION_SHARED_DATA") or REPO.parent / "shared" / "data" / "fashion-product-images-small")


def catalogue_images(count: int) -> list[Path]:
    """The first ``count`` images of the shared small set, by name (read by path, never copied)."""
    images = sorted((SMALL / "images").glob("*.jpg"))
    if len(images) < count:
        pytest.skip(f"needs {count} images of the shared small set at {SMALL}")
    return images[:count]


@dataclass
class BackfillStack:
    storage_url: str
    firestore_host: str
    env: dict[str, str]
    model_version: str
    logs: Path

    def storage(self) -> Any:
        import localcloud
        from tests.emulators import PROJECT

        return localcloud.storage_client(self.storage_url, PROJECT)

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        from tests.emulators import PROJECT

        return firestore.Client(project=PROJECT, credentials=AnonymousCredentials())

    def settings(self, **overrides: Any) -> Any:
        from shared.settings import Settings

        return Settings.from_env({**self.env, **{k: str(v) for k, v in overrides.items()}})

    def upload(self, prefix: str, images: list[Path]) -> dict[str, int]:
        """Upload to the catalogue bucket; name -> generation."""
        bucket = self.storage().bucket(CATALOGUE)
        uploaded = {}
        for path in images:
            blob = bucket.blob(prefix + path.name)
            blob.upload_from_filename(str(path), content_type="image/jpeg")
            uploaded[blob.name] = int(blob.generation)
        return uploaded

    def records(self) -> dict[str, dict]:
        return {d.id: d.to_dict() for d in self.firestore().collection("classifications").stream()}

    def processed(self) -> dict[str, int]:
        from tests.pipeline.conftest import PROCESSED

        return {b.name: int(b.generation) for b in self.storage().list_blobs(PROCESSED)}

    def listed(self, bucket: str, prefix: str = "") -> list[str]:
        return [b.name for b in self.storage().list_blobs(bucket, prefix=prefix)]

    def counted_total(self) -> int:
        """The sum of every counter shard's ``total`` (all days)."""
        db = self.firestore()
        return sum(
            int((shard.to_dict() or {}).get("total") or 0)
            for day in db.collection("stats").list_documents()
            for shard in day.collection("shards").stream()
        )

    def run_cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """``python -m backfill ARGS`` in a subprocess (the Beam venv's python), the stack's settings."""
        return subprocess.run(
            [sys.executable, "-m", "backfill", *args],
            cwd=REPO,
            env={**os.environ, **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def candidate_model(source: Path, root: Path) -> Path:
    """A candidate model that disagrees with ``source``: the same network
    with its label list rotated by one (so most decisions change), as a new version."""
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["version"] = manifest["version"] + "-rotated"
    manifest["labels"] = manifest["labels"][1:] + manifest["labels"][:1]
    folder = root / manifest["version"]
    folder.mkdir(parents=True)
    shutil.copy(source / "model.tflite", folder / "model.tflite")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfillStack]:
    import localcloud
    from tests.emulators import PROJECT
    from tests.pipeline.conftest import emulated_cloud, function_env, publish_model

    logs = tmp_path_factory.mktemp("backfill")
    with emulated_cloud(logs, MODEL_DIR) as (storage_url, firestore_host), pytest.MonkeyPatch.context() as mp:
        localcloud.create_buckets(storage_url, PROJECT, [CATALOGUE])
        client = localcloud.storage_client(storage_url, PROJECT)
        candidate = candidate_model(MODEL_DIR, logs / "candidate")
        # publish the candidate, then the current model again so the pointer names it
        publish_model(client, candidate)
        version = publish_model(client, MODEL_DIR)
        env = function_env(storage_url, firestore_host, logs / "model-cache", threshold=0.6)
        mp.setenv("STORAGE_EMULATOR_HOST", storage_url)
        yield BackfillStack(storage_url, firestore_host, env, version, logs)
