"""An overwrite that lands while the first version's handler is in flight:
both versions end classified, the older handler never deletes the newer
upload, and the newer one ends at the name (issue 13.6). Runs the processing core in-process against the real emulators, with
the overwrite made at the moment the handler asks for the model (after its
download, before it classifies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

import localcloud
from functions.model_cache import ModelCache
from functions.processing import Processor
from shared.records import ObjectRef
from shared.settings import Settings
from tests.datasets import synthetic_product
from tests.emulators import PROJECT
from tests.pipeline.conftest import INCOMING, MODELS, PROCESSED, Pipeline


class OverwriteOnFirstUse:
    """The real model cache; the first ``get()`` uploads a new generation first."""

    def __init__(self, cache: ModelCache, overwrite: Any) -> None:
        self.cache, self.overwrite, self.fired = cache, overwrite, False

    def get(self) -> Any:
        if not self.fired:
            self.fired = True
            self.overwrite()
        return self.cache.get()


def _ref(blob: Any) -> ObjectRef:
    return ObjectRef(INCOMING, blob.name, int(blob.generation), int(blob.size), blob.content_type)


def test_both_versions_are_classified_and_the_newer_one_is_not_deleted(pipeline: Pipeline, tmp_path: Path):
    client = localcloud.storage_client(pipeline.storage_url, PROJECT)
    db = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
    settings = Settings(
        project=PROJECT,
        incoming_bucket=INCOMING,
        processed_bucket=PROCESSED,
        models_bucket=MODELS,
        confidence_threshold=0.0,
        model_cache_dir=str(tmp_path),
    )
    first_bytes, second_bytes = synthetic_product(0, 41, size=64), synthetic_product(1, 42, size=64)
    first = pipeline.upload("inflight/dress.jpg", first_bytes)
    newer: dict[str, Any] = {}

    def overwrite() -> None:
        newer["blob"] = pipeline.upload("inflight/dress.jpg", second_bytes)

    models = OverwriteOnFirstUse(ModelCache(client, MODELS, tmp_path), overwrite)
    core = Processor(settings, client, db, models)  # type: ignore[arg-type]

    older = core.process(_ref(first), trigger="event")
    assert models.fired and newer["blob"].generation != first.generation
    assert older.status == "classified"
    live = client.bucket(INCOMING).get_blob("inflight/dress.jpg")
    assert live is not None and live.generation == newer["blob"].generation  # the newer upload survived
    assert client.bucket(PROCESSED).blob(older.destination.split("/", 3)[3]).download_as_bytes() == first_bytes

    later = core.process(_ref(newer["blob"]), trigger="event")
    assert later.status == "classified"
    assert client.bucket(INCOMING).get_blob("inflight/dress.jpg") is None
    stored = client.bucket(PROCESSED).blob(later.destination.split("/", 3)[3]).download_as_bytes()
    assert stored == second_bytes
    if (later.status, later.label) == (older.status, older.label):
        # the newest upload of a name owns its destination: it replaced the
        # older copy, which the versioned processed bucket keeps as noncurrent
        assert later.destination == older.destination
    else:
        assert later.destination != older.destination
