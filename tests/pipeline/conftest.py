"""A classify function on real emulators: fake-gcs-server and the Firestore
emulator, the function served by functions-framework over HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, pointer_payload, version_prefix
from shared.settings import Settings
from tests.cloudevents import post_blob_event
from tests.emulators import PROJECT, fake_gcs_server, firestore_emulator, firestore_kind, free_port, unavailable

REPO = Path(__file__).resolve().parents[2]
INCOMING, PROCESSED, MODELS = "it-incoming", "it-processed", "it-models"
#: Fields every finished ``classifications/<id>`` document has (DESIGN.md's contract).
CONTRACT_FIELDS = frozenset(
    {
        "source",
        "status",
        "label",
        "confidence",
        "top_k",
        "model_version",
        "destination",
        "timings_ms",
        "error",
        "created_at",
        "updated_at",
        "finished_at",
        "trigger",
        "attempts",
    }
)
#: which Firestore emulator these tests run on: auto (the Cloud CLI's when
#: present, else the npm fallback), official or npm
FIRESTORE_PREFERENCE = os.environ.get("FASHION_FIRESTORE_EMULATOR") or "auto"
if FIRESTORE_PREFERENCE not in localcloud.FIRESTORE_KINDS:
    raise ValueError(
        f"FASHION_FIRESTORE_EMULATOR={FIRESTORE_PREFERENCE!r}: expected one of {', '.join(localcloud.FIRESTORE_KINDS)}"
    )


def require_transaction_isolation(kind: str | None) -> None:
    """Skip a test whose correctness rests on Firestore transactions being
    isolated, on the npm emulator (which does not isolate them); fail it where
    emulators are required (FASHION_REQUIRE_EMULATORS=1) unless the npm
    emulator was asked for (FASHION_FIRESTORE_EMULATOR=npm)."""
    if kind == "npm":
        (pytest.skip if FIRESTORE_PREFERENCE == "npm" else unavailable)(
            "needs Firestore transaction isolation, which the npm fallback (@firestore-emulator/server) "
            "does not emulate: concurrent deliveries could all claim the object (the Cloud CLI emulator is absent "
            "here, or FASHION_FIRESTORE_EMULATOR=npm)"
        )


class EmulatedCloud:
    """Clients for the emulators a test stack runs (needs ``storage_url``)."""

    storage_url: str

    def storage(self) -> Any:
        return localcloud.storage_client(self.storage_url, PROJECT)

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project=PROJECT, credentials=AnonymousCredentials())

    def upload(self, name: str, data: bytes, content_type: str = "image/jpeg") -> Any:
        blob = self.storage().bucket(INCOMING).blob(name)
        blob.upload_from_string(data, content_type=content_type)
        return blob

    def incoming(self) -> list[str]:
        return [b.name for b in self.storage().list_blobs(INCOMING)]


@dataclass
class Pipeline(EmulatedCloud):
    storage_url: str
    firestore_host: str
    function_url: str
    env: dict[str, str]
    labels: list[str]
    logs: Path
    firestore_kind: str | None = None  # "official" or "npm"

    def post_event(self, blob: Any, event_id: str | None = None, timeout: float = 120) -> requests.Response:
        """What Eventarc sends: a binary-mode CloudEvent with the object resource."""
        return post_blob_event(self.function_url, blob, event_id=event_id, timeout=timeout)

    def documents(self) -> list[dict]:
        return [d.to_dict() | {"id": d.id} for d in self.firestore().collection("classifications").stream()]

    def processed(self) -> dict[str, Any]:
        return {b.name: b for b in self.storage().list_blobs(PROCESSED)}


def publish_model(client: Any, model_dir: Path) -> str:
    version = json.loads((model_dir / MANIFEST_FILE).read_text())["version"]
    bucket = client.bucket(MODELS)
    for name in (MODEL_FILE, MANIFEST_FILE):
        bucket.blob(version_prefix(version) + name).upload_from_filename(str(model_dir / name))
    bucket.blob(POINTER).upload_from_string(pointer_payload(version), content_type="application/json")
    return version


def function_env(storage_url: str, firestore_host: str, cache: Path, threshold: float = 0.5) -> dict[str, str]:
    settings = Settings(
        project=PROJECT,
        incoming_bucket=INCOMING,
        processed_bucket=PROCESSED,
        models_bucket=MODELS,
        confidence_threshold=threshold,
        model_cache_dir=str(cache),
        model_refresh_seconds=1.0,
    )
    return localcloud.settings_env(settings) | {
        "STORAGE_EMULATOR_HOST": storage_url,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
    }


@contextmanager
def emulated_cloud(logs: Path, model_dir: Path) -> Iterator[tuple[str, str]]:
    """The Firestore emulator and fake-gcs-server with the incoming, processed
    and models buckets and ``model_dir`` published; yields their addresses
    (FIRESTORE_EMULATOR_HOST is set meanwhile, for the tests' own clients)."""
    with (
        pytest.MonkeyPatch.context() as mp,
        firestore_emulator(logs, kind=FIRESTORE_PREFERENCE) as firestore_host,
        fake_gcs_server(logs) as storage_url,
    ):
        mp.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)
        client = localcloud.storage_client(storage_url, PROJECT)
        localcloud.create_buckets(storage_url, PROJECT, [INCOMING, PROCESSED, MODELS], versioned=(PROCESSED,))
        publish_model(client, model_dir)
        yield storage_url, firestore_host


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("pipeline")
    with emulated_cloud(logs, Path(tiny_model_dir.int8_dir)) as (storage_url, firestore_host):
        env = function_env(storage_url, firestore_host, logs / "model-cache")
        port = free_port()
        proc = localcloud.start_function(REPO / "functions" / "main.py", "classify_upload", port, logs, env)
        try:
            localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            kind = firestore_kind(FIRESTORE_PREFERENCE)
            yield Pipeline(storage_url, firestore_host, proc.url or "", env, list(tiny_model_dir.labels), logs, kind)
        finally:
            localcloud.stop(proc)
