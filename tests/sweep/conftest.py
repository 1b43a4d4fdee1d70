"""Sweep functions on real emulators: fake-gcs-server and the Firestore
emulator, two instances of the ``sweep`` HTTP function (so that overlapping
runs really overlap), served by functions-framework."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from tests.emulators import firestore_kind, free_port
from tests.pipeline.conftest import (
    FIRESTORE_PREFERENCE,
    INCOMING,
    PROCESSED,
    REPO,
    EmulatedCloud,
    emulated_cloud,
    function_env,
)


@dataclass
class SweepStack(EmulatedCloud):
    storage_url: str
    firestore_host: str
    urls: list[str]
    env: dict[str, str]
    logs: Path
    firestore_kind: str | None

    def sweep(self, instance: int = 0, timeout: float = 120, **options: Any) -> dict:
        response = requests.post(self.urls[instance], json={"min_age": 0, **options}, timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    def documents(self, prefix: str) -> list[dict]:
        docs = (d.to_dict() | {"id": d.id} for d in self.firestore().collection("classifications").stream())
        return [d for d in docs if d["source"]["name"].startswith(prefix)]

    def processed(self, prefix: str) -> list[str]:
        return [b.name for b in self.storage().list_blobs(PROCESSED) if b.name.rsplit("/", 1)[-1].startswith(prefix)]

    def clear_incoming(self) -> None:
        for blob in self.storage().list_blobs(INCOMING):
            blob.delete()


@pytest.fixture(scope="package")
def sweep_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[SweepStack]:
    logs = tmp_path_factory.mktemp("sweep")
    with emulated_cloud(logs, Path(tiny_model_dir.int8_dir)) as (storage_url, firestore_host):
        env = function_env(storage_url, firestore_host, logs / "model-cache")
        procs = []
        try:
            for k in range(2):
                source = REPO / "functions" / "main.py"
                procs.append(localcloud.start_http_function(source, "sweep", free_port(), logs, env, name=f"sweep-{k}"))
            for proc in procs:
                localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            urls = [proc.url or "" for proc in procs]
            yield SweepStack(storage_url, firestore_host, urls, env, logs, firestore_kind(FIRESTORE_PREFERENCE))
        finally:
            for proc in procs:
                localcloud.stop(proc)


@pytest.fixture
def swept(sweep_stack: SweepStack) -> SweepStack:
    """The stack with an empty incoming bucket: each test sees only its own uploads."""
    sweep_stack.clear_incoming()
    return sweep_stack
