"""The review desk on real emulators: fake-gcs-server and the Firestore
emulator, the classify function (threshold 0.99, so that the tiny model's
answers all wait for review), the ``review`` function, a second ``review``
instance that crashes after its copy (FAILPOINTS), and a ``sweep`` function,
all served by functions-framework over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from functions.review_desk import ReviewDesk
from shared import records as rec
from shared.settings import Settings
from tests.cloudevents import post_blob_event
from tests.emulators import firestore_kind, free_port
from tests.images import make_photo_like
from tests.pipeline.conftest import (
    FIRESTORE_PREFERENCE,
    INCOMING,
    MODELS,
    PROCESSED,
    REPO,
    EmulatedCloud,
    emulated_cloud,
    function_env,
    require_transaction_isolation,
)

URL_KEY = "review-test-key-0123456789"
REVIEWER = "tester@example.com"
CSRF = {"X-Requested-With": "fashion-review"}
_counter = itertools.count()


@dataclass
class ReviewStack(EmulatedCloud):
    storage_url: str
    firestore_host: str
    classify_url: str
    review_url: str
    crash_url: str
    sweep_url: str
    labels: list[str]
    logs: Path
    firestore_kind: str | None

    # -- making items ---------------------------------------------------------------

    def item(self, name: str | None = None, metadata: dict[str, str] | None = None, seed: int | None = None) -> str:
        """Upload a photo to incoming, deliver its event, and return the id of
        its needs_review record."""
        n = next(_counter)
        name = name or f"item-{n:04d}.jpg"
        blob = self.storage().bucket(INCOMING).blob(name)
        blob.metadata = metadata
        blob.upload_from_string(make_photo_like(seed=n if seed is None else seed), content_type="image/jpeg")
        response = post_blob_event(self.classify_url, blob)
        assert response.status_code < 300, response.text
        doc_id = rec.classification_id(INCOMING, name, blob.generation)
        assert self.record(doc_id)["status"] == rec.NEEDS_REVIEW
        return doc_id

    # -- reading ---------------------------------------------------------------

    def record(self, doc_id: str) -> dict[str, Any]:
        return self.firestore().collection(rec.COLLECTION).document(doc_id).get().to_dict() or {}

    def processed(self) -> dict[str, Any]:
        return {b.name: b for b in self.storage().list_blobs(PROCESSED)}

    def snapshot(self, doc_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The record and the processed bucket's names -> md5 (what "nothing moved" compares)."""
        return self.record(doc_id), {name: b.md5_hash for name, b in self.processed().items()}

    # -- the API -----------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.review_url + path, timeout=60, **kwargs)

    def decide(
        self, *decisions: dict[str, Any], url: str | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            (url or self.review_url) + "/api/decisions",
            json={"decisions": list(decisions)},
            headers=CSRF if headers is None else headers,
            timeout=120,
        )

    def signed(self, doc_id: str, expires: int) -> str:
        signature = hmac.new(URL_KEY.encode(), f"{doc_id}\n{expires}".encode(), hashlib.sha256).hexdigest()
        return f"/api/items/{doc_id}/image?exp={expires}&sig={signature}"

    def desk(self, failpoints: str = "") -> ReviewDesk:
        """The core in this process over the same emulators (for crash tests)."""
        settings = Settings(
            project=localcloud.PROJECT,
            incoming_bucket=INCOMING,
            processed_bucket=PROCESSED,
            models_bucket=MODELS,
            failpoints=failpoints,
        )
        return ReviewDesk(settings, self.storage(), self.firestore(), lambda: list(self.labels))


def review_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    return base | {"REVIEWER": REVIEWER, "REVIEW_URL_KEY": URL_KEY, "REVIEW_URL_TTL_SECONDS": "120"} | extra


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[ReviewStack]:
    logs = tmp_path_factory.mktemp("review")
    with emulated_cloud(logs, Path(tiny_model_dir.int8_dir)) as (storage_url, firestore_host):
        env = function_env(storage_url, firestore_host, logs / "model-cache", threshold=0.99)
        main = REPO / "functions" / "main.py"
        procs = [
            localcloud.start_function(main, "classify_upload", free_port(), logs, env),
            localcloud.start_http_function(main, "review", free_port(), logs, review_env(env), name="review"),
            localcloud.start_http_function(
                main, "review", free_port(), logs, review_env(env, FAILPOINTS="review_after_copy=crash"), name="review-crash"
            ),
            localcloud.start_http_function(main, "sweep", free_port(), logs, env, name="sweep"),
        ]
        try:
            for proc in procs:
                localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            kind = firestore_kind(FIRESTORE_PREFERENCE)
            require_transaction_isolation(kind)
            urls = [p.url or "" for p in procs]
            yield ReviewStack(storage_url, firestore_host, *urls, list(tiny_model_dir.labels), logs, kind)
        finally:
            for proc in procs:
                localcloud.stop(proc)


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
