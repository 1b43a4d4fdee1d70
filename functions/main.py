"""Cloud Functions entry points: thin adapters over the processing core.

``classify_upload``: CloudEvent ``google.cloud.storage.object.v1.finalized``
on the incoming bucket. A transient failure raises, so the platform retries
(with a dead-letter topic behind the retries); everything else returns.
"""

from __future__ import annotations

import logging
import threading
from functools import cache

import functions_framework
from cloudevents.http import CloudEvent

from functions.records import ObjectRef
from shared.logs import configure_logging
from shared.settings import Settings

log = logging.getLogger("functions")


@cache
def settings() -> Settings:
    loaded = Settings.from_env()
    configure_logging(loaded.log_level)
    return loaded


_build_lock = threading.Lock()


@cache
def _processor():
    from google.cloud import firestore, storage

    from functions.model_cache import ModelCache
    from functions.processing import Processor

    config = settings()
    storage_client = storage.Client(project=config.project)
    db = firestore.Client(project=config.project, database=config.firestore_database)
    models = ModelCache(storage_client, config.models_bucket, config.model_cache_dir, config.model_refresh_seconds)
    return Processor(config, storage_client, db, models)


def processor():
    """The deliberate per-instance cache: clients and the model, built once
    (under a lock: requests arrive on several threads)."""
    with _build_lock:
        return _processor()


def object_from_event(data: dict) -> ObjectRef:
    """The storage object resource of a finalized event -> ObjectRef."""
    try:
        return ObjectRef(
            bucket=data["bucket"],
            name=data["name"],
            generation=int(data["generation"]),
            size=int(data["size"]) if data.get("size") not in (None, "") else None,
            content_type=data.get("contentType"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a storage object event: {exc}") from exc


@functions_framework.cloud_event
def classify_upload(event: CloudEvent) -> None:
    config = settings()
    context = {"event_id": event["id"], "event_type": event["type"]}
    try:
        ref = object_from_event(event.data or {})
    except ValueError as exc:
        log.error("ignoring malformed event: %s", exc, extra=context)  # retrying cannot fix it
        return
    context |= {"object": ref.name, "generation": str(ref.generation)}
    if ref.bucket != config.incoming_bucket:
        log.warning("ignoring an event for bucket %s", ref.bucket, extra=context)
        return
    from functions.processing import TransientError

    try:
        outcome = processor().process(ref, trigger="event", event_id=event["id"])
    except TransientError as exc:
        log.warning("transient failure, the platform will retry: %s", exc, extra=context)
        raise
    log.info(
        "%s: %s%s",
        ref.name,
        outcome.status,
        " (duplicate delivery)" if outcome.duplicate else "",
        extra=context | {"status": outcome.status, "destination": outcome.destination, "duplicate": outcome.duplicate},
    )
