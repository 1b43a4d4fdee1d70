"""The composition root: builds the cloud clients, the model cache and the
:class:`~functions.processing.Processor` (every Storage and Firestore call
bounded by ``DEPENDENCY_DEADLINE_SECONDS``), for the functions
(``functions/main.py``), the local sweep (``fashionctl sweep``) and the tests.

:func:`components` and :func:`api` are the deliberate per-instance cache of
the deployed functions: built once per process, under a lock (requests
arrive on several threads), from the settings read once from the environment.
Nothing is built at import time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.logs import configure_logging
from shared.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.model_cache import ModelCache
    from functions.predict_api import PredictApi
    from functions.processing import Processor
    from functions.review_api import ReviewApi
    from functions.sweep import Sweeper


@dataclass(frozen=True)
class Components:
    """What the entry points work with; ``storage`` and ``db`` are
    google-cloud-storage and google-cloud-firestore clients."""

    settings: Settings
    storage: Any
    db: Any
    models: ModelCache
    processor: Processor


def model_cache(settings: Settings, storage: Any, *, candidate: bool = False) -> ModelCache:
    """The model cache, its Storage calls bounded like the core's;
    ``candidate``: the optional cache of the candidate model (shadow mode)."""
    from functions.dependencies import CALL_TIMEOUT, storage_retry
    from functions.model_cache import ModelCache
    from shared.model_layout import CANDIDATE_POINTER, POINTER

    return ModelCache(
        storage,
        settings.models_bucket,
        settings.model_cache_dir,
        settings.model_refresh_seconds,
        retry=storage_retry(settings.dependency_deadline_seconds),
        timeout=CALL_TIMEOUT,
        pointer=CANDIDATE_POINTER if candidate else POINTER,
        optional=candidate,
    )


def build(settings: Settings, *, storage: Any = None, db: Any = None) -> Components:
    """Everything wired from ``settings``. ``storage`` / ``db``: clients to use
    instead of the default ones (the local stack's emulator clients, a test's
    clients); by default ``storage.Client`` and ``firestore.Client`` of the
    settings' project (the emulators when ``STORAGE_EMULATOR_HOST`` /
    ``FIRESTORE_EMULATOR_HOST`` are set)."""
    from functions.processing import Processor

    if storage is None:
        from google.cloud import storage as gcs

        storage = gcs.Client(project=settings.project)
    if db is None:
        from google.cloud import firestore

        db = firestore.Client(project=settings.project, database=settings.firestore_database)
    models = model_cache(settings, storage)
    candidates = model_cache(settings, storage, candidate=True) if settings.shadow_on else None
    return Components(settings, storage, db, models, Processor(settings, storage, db, models, candidates=candidates))


def sweeper(components: Components) -> Sweeper:
    """The sweep core over the same clients and processor."""
    from functions.sweep import Sweeper

    return Sweeper(components.settings, components.storage, components.db, components.processor)


def predict_api(settings: Settings, storage: Any = None, db: Callable[[], Any] | None = None) -> PredictApi:
    """The prediction API: the current model, ``gcs_uri`` reads and ``/stats``.
    ``storage``: a google-cloud-storage client (default: ``storage.Client``);
    ``db``: returns the Firestore client, called on the first ``/stats`` read
    only (default: ``firestore.Client``, built then and kept), so that
    ``predict`` builds no Firestore client, and needs no credentials for
    one, until ``/stats`` is asked for."""
    from functions.gcs_fetch import gcs_fetcher
    from functions.predict_api import PredictApi
    from functions.stats_store import backlog_reader, stats_reader

    if storage is None:
        from google.cloud import storage as gcs

        storage = gcs.Client(project=settings.project)
    if db is None:

        @cache
        def db() -> Any:
            from google.cloud import firestore

            return firestore.Client(project=settings.project, database=settings.firestore_database)

    return PredictApi(
        settings,
        model_cache(settings, storage).get,
        gcs_fetcher(storage, settings),
        stats_reader(db),
        read_backlog=backlog_reader(db),
    )


def review_api(
    settings: Settings,
    storage: Any = None,
    db: Any = None,
    on_decided: Callable[[Any], None] | None = None,
) -> ReviewApi:
    """The review desk's API: the queue and decisions over ``storage`` and
    ``db`` (default: the settings' clients), the current model's labels (and
    each record's model's attribute labels, for attribute corrections), the
    reviewer from the verified IAP JWT when ``IAP_AUDIENCE`` is set (else
    ``REVIEWER``), HMAC-signed image URLs (or V4 signed ones with
    ``REVIEW_IMAGE_URLS=signed``). ``on_decided(record)``: called after each
    committed decision (default: none). The desk itself stages each
    decision's completion event, ``fashion.review.v1.decided``, in the
    decision's write and publishes it after the commit (a no-op while
    ``EVENTS_TOPIC`` is empty: functions/event_outbox.py)."""
    from functions.review_api import ReviewApi
    from functions.review_auth import IapIdentity, ImageUrlSigner, LocalIdentity
    from functions.review_desk import ReviewDesk

    if storage is None:
        from google.cloud import storage as gcs

        storage = gcs.Client(project=settings.project)
    if db is None:
        from google.cloud import firestore

        db = firestore.Client(project=settings.project, database=settings.firestore_database)
    models = model_cache(settings, storage)

    def labels() -> list[str]:
        return list(models.get().labels)

    def attribute_labels(version: str | None) -> dict[str, list[str]]:
        """{attribute: labels} of model ``version``'s manifest (the current model's for None)."""
        manifest = models.manifest_of(version) if version else models.get().manifest
        return {name: list(head["labels"]) for name, head in manifest.attributes.items()}

    identity = IapIdentity(settings.iap_audience) if settings.iap_audience else LocalIdentity(settings.reviewer_name)
    signer = ImageUrlSigner(settings.review_url_key.encode(), settings.review_url_ttl_seconds)
    desk = ReviewDesk(settings, storage, db, labels, attribute_labels=attribute_labels)
    return ReviewApi(settings, desk, signer, identity, labels, on_decided=on_decided)


# -- the per-process cache of the deployed functions ---------------------------------

_lock = threading.Lock()


@cache
def settings() -> Settings:
    """The settings, read once from the environment (and logging configured)."""
    loaded = Settings.from_env()
    configure_logging(loaded.log_level)
    return loaded


@cache
def _components() -> Components:
    return build(settings())


@cache
def _api() -> PredictApi:
    return predict_api(settings())


@cache
def _review() -> ReviewApi:
    return review_api(settings())


def review() -> ReviewApi:
    """This instance's review desk API, built on first use."""
    with _lock:
        return _review()


def components() -> Components:
    """This instance's components, built on first use."""
    with _lock:
        return _components()


def api() -> PredictApi:
    """This instance's prediction API, built on first use."""
    with _lock:
        return _api()


def batch_processor(components: Components, models: Any, *, keep_source: bool = False) -> Processor:
    """The processing core as the backfill pipeline (``backfill/``) uses it:
    the same clients and settings, the run's pinned model (``models.get()``),
    the decision written with the destination (one record write less per
    object: the model cannot change within a run) and, with ``keep_source``,
    the source object left in place."""
    from functions.processing import Processor

    return Processor(
        components.settings,
        components.storage,
        components.db,
        models,
        record_decision=False,
        delete_source=not keep_source,
    )
