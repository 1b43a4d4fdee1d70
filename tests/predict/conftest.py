"""The predict HTTP function served by functions-framework over HTTP, with
its model published to fake-gcs-server. Three instances: defaults (no API
key, no CORS), locked (API key and CORS on) and one with no model (503)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft7Validator

import localcloud
from functions.openapi import openapi_document
from shared.settings import Settings
from tests.emulators import PROJECT, fake_gcs_server, firestore_emulator, free_port
from tests.pipeline.conftest import publish_model

REPO = Path(__file__).resolve().parents[2]
MODELS, EMPTY_MODELS, PHOTOS, PRIVATE = "it-models", "it-empty-models", "it-photos", "it-private"
API_KEY = "test-key-0123456789"
ORIGIN = "https://shop.example"
MAX_IMAGE_BYTES = 200_000
MAX_REQUEST_BYTES = 500_000
MAX_BATCH = 4


@dataclass
class Service:
    url: str
    storage_url: str
    firestore_host: str
    labels: list[str]
    model_version: str

    def storage(self) -> Any:
        return localcloud.storage_client(self.storage_url, PROJECT)

    def firestore(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project=PROJECT, credentials=AnonymousCredentials())


def _env(storage_url: str, firestore_host: str, cache: Path, models: str, **overrides: Any) -> dict[str, str]:
    settings = Settings(
        project=PROJECT,
        incoming_bucket="it-incoming",
        processed_bucket="it-processed",
        models_bucket=models,
        confidence_threshold=0.5,
        model_cache_dir=str(cache),
        model_refresh_seconds=1.0,
        max_image_bytes=MAX_IMAGE_BYTES,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_batch_images=MAX_BATCH,
        gcs_allowed_buckets=PHOTOS,
        **overrides,
    )
    return localcloud.settings_env(settings) | {"STORAGE_EMULATOR_HOST": storage_url, "FIRESTORE_EMULATOR_HOST": firestore_host}


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[dict[str, Service]]:
    logs = tmp_path_factory.mktemp("predict")
    with (
        pytest.MonkeyPatch.context() as mp,
        firestore_emulator(logs) as firestore_host,
        fake_gcs_server(logs) as storage_url,
    ):
        mp.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)  # for the tests' own Firestore client
        client = localcloud.storage_client(storage_url, PROJECT)
        for name in (MODELS, EMPTY_MODELS, PHOTOS, PRIVATE):
            client.create_bucket(name)
        version = publish_model(client, Path(tiny_model_dir.int8_dir))
        envs = {
            "open": _env(storage_url, firestore_host, logs / "cache-open", MODELS),
            "locked": _env(storage_url, firestore_host, logs / "cache-locked", MODELS, api_key=API_KEY, cors_origins=ORIGIN),
            "empty": _env(storage_url, firestore_host, logs / "cache-empty", EMPTY_MODELS),
        }
        procs = {
            name: localcloud.start_http_function(
                REPO / "functions" / "main.py", "predict", free_port(), logs, env, name=f"predict-{name}"
            )
            for name, env in envs.items()
        }
        try:
            for proc in procs.values():
                localcloud.wait_until(proc, localcloud.http_answers(f"{proc.url}/health"), 60)
            labels = list(tiny_model_dir.labels)
            yield {name: Service(proc.url or "", storage_url, firestore_host, labels, version) for name, proc in procs.items()}
        finally:
            for proc in procs.values():
                localcloud.stop(proc)


@pytest.fixture(scope="session")
def api(services: dict[str, Service]) -> Service:
    return services["open"]


OPENAPI = openapi_document()


def check_response(response: requests.Response, path: str, method: str = "get") -> dict[str, Any]:
    """Assert the response is JSON and matches the OpenAPI document's schema
    for this path, method and status; return the body."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    operation = OPENAPI["paths"][path][method]
    assert str(response.status_code) in operation["responses"], f"{method} {path} -> {response.status_code} undocumented"
    schema = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    Draft7Validator({**schema, "components": OPENAPI["components"]}).validate(body)
    if response.status_code >= 400:
        assert set(body) == {"error"}
    return body


def check_error(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An error response: the status, the Error schema, no stack trace."""
    assert response.status_code == status, response.text
    body = response.json()
    Draft7Validator({**OPENAPI["components"]["schemas"]["Error"], "components": OPENAPI["components"]}).validate(body)
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code, body
    return body
