"""Cloud Functions entry points: thin adapters over the processing core.

``classify_upload``: CloudEvent ``google.cloud.storage.object.v1.finalized``
on the incoming bucket. A transient failure raises, so the platform retries
(with a dead-letter topic behind the retries); everything else returns.

``predict``: the HTTP prediction API (routes in functions/predict_api.py).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

import flask
import functions_framework
from cloudevents.http import CloudEvent
from google.api_core.exceptions import Forbidden, GoogleAPIError, NotFound
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from functions.records import GCS_NAME_LIMIT, ObjectRef
from shared.logs import configure_logging
from shared.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.predict_api import ApiRequest, PredictApi

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

    from functions.processing import Processor

    config = settings()
    storage_client = storage.Client(project=config.project)
    db = firestore.Client(project=config.project, database=config.firestore_database)
    models = _model_cache(config, storage_client)
    return Processor(config, storage_client, db, models)


def _model_cache(config: Settings, storage_client: Any) -> Any:
    """The model cache both entry points use: Storage calls bounded like the core's."""
    from functions.model_cache import ModelCache
    from functions.processing import CALL_TIMEOUT, storage_retry

    return ModelCache(
        storage_client,
        config.models_bucket,
        config.model_cache_dir,
        config.model_refresh_seconds,
        retry=storage_retry(config.dependency_deadline_seconds),
        timeout=CALL_TIMEOUT,
    )


def processor():
    """The deliberate per-instance cache: clients and the model, built once
    (under a lock: requests arrive on several threads)."""
    with _build_lock:
        return _processor()


#: Cloud Storage generations are positive signed 64-bit integers.
_MAX_GENERATION = 2**63 - 1


def _integer(value: object) -> int:
    """A JSON integer or a decimal string, as Cloud Storage sends them; not a float or a bool."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def object_from_event(data: dict) -> ObjectRef:
    """The storage object resource of a finalized event -> ObjectRef. Raises
    ValueError for anything that cannot name an object version (retrying
    cannot fix it): a name that is not a non-empty string of at most 1024
    UTF-8 bytes, a generation outside 1..2**63-1, a size that is not a
    non-negative integer."""
    try:
        bucket, name, generation = data["bucket"], data["name"], _integer(data["generation"])
        size = None if data.get("size") in (None, "") else _integer(data["size"])
        if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or name in ("", ".", ".."):
            raise ValueError("bucket and name must be non-empty strings")
        if len(name.encode()) > GCS_NAME_LIMIT:
            raise ValueError(f"the object name is longer than {GCS_NAME_LIMIT} bytes")
        if not 1 <= generation <= _MAX_GENERATION or (size is not None and size < 0):
            raise ValueError(f"generation {generation} or size {size} is out of range")
    except (KeyError, TypeError, ValueError, UnicodeError) as exc:
        raise ValueError(f"not a storage object event: {exc}") from exc
    content_type = data.get("contentType")
    return ObjectRef(
        bucket=bucket,
        name=name,
        generation=generation,
        size=size,
        content_type=content_type if isinstance(content_type, str) else None,
    )


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


# --------------------------------------------------------------------------
# HTTP prediction API: a thin Flask adapter over functions.predict_api


@cache
def _api() -> PredictApi:
    from google.cloud import storage

    from functions.predict_api import PredictApi
    from functions.processing import CALL_TIMEOUT, storage_retry

    config = settings()
    storage_client = storage.Client(project=config.project)
    models = _model_cache(config, storage_client)
    # bounded like every other Storage call (DEPENDENCY_DEADLINE_SECONDS), not the client's 120 s
    calls = {"retry": storage_retry(config.dependency_deadline_seconds), "timeout": CALL_TIMEOUT}

    def fetch_gcs(bucket: str, name: str) -> bytes:
        from functions.predict_api import ApiError

        blob = storage_client.bucket(bucket).blob(name)
        try:
            blob.reload(**calls)
            if blob.size is not None and blob.size > config.max_image_bytes:
                raise ApiError(413, "too_large", f"the object is {blob.size} bytes; the limit is {config.max_image_bytes}")
            return blob.download_as_bytes(**calls)
        except NotFound:
            raise ApiError(404, "not_found", f"gs://{bucket}/{name} does not exist") from None
        except Forbidden:
            raise ApiError(403, "forbidden", f"this service may not read gs://{bucket}/{name}") from None
        except (GoogleAPIError, ConnectionError, TimeoutError) as exc:
            log.warning("cannot read gs://%s/%s: %s", bucket, name, exc)
            raise ApiError(503, "storage_unavailable", "Cloud Storage is unavailable; retry later") from None

    return PredictApi(config, models.get, fetch_gcs, _stats_reader(config))


def _stats_reader(config: Settings) -> Callable[[list[str]], dict[str, list[dict]]]:
    """Reads ``stats/<day>/shards/*`` (functions/records.py) for the given days."""

    def read(days: list[str]) -> dict[str, list[dict]]:
        from functions.predict_api import ApiError
        from functions.records import STATS

        db = _firestore(config.project, config.firestore_database)
        try:
            return {day: [s.to_dict() or {} for s in db.collection(STATS, day, "shards").stream(timeout=10)] for day in days}
        except (GoogleAPIError, ConnectionError, TimeoutError) as exc:
            log.warning("cannot read the statistics: %s", exc)
            raise ApiError(503, "stats_unavailable", "the statistics store is unavailable; retry later") from None

    return read


@cache
def _firestore(project: str, database: str) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=project, database=database)


def api() -> PredictApi:
    with _build_lock:
        return _api()


def _api_request(request: flask.Request, limit: int) -> ApiRequest:
    from functions.predict_api import ApiError, ApiRequest

    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "request_too_large", f"the request is {request.content_length} bytes; the limit is {limit}")
    # Read the body once, at most one byte past the limit (a chunked body has
    # no Content-Length), and keep it: the multipart parser and
    # functions-framework's own read after the response (it drains every
    # request) then use these bytes. Reading the size-capped stream a second
    # time raises once it is exhausted, which answered a body of exactly the
    # limit, or a chunked one over it, with a 500.
    request.max_content_length = limit + 1
    headers = {k.lower(): v for k, v in request.headers.items()}
    multipart = request.mimetype == "multipart/form-data"
    try:
        raw = request.get_data(cache=True)
        if len(raw) > limit:
            raise RequestEntityTooLarge()
        files = {name: [f.read() for f in request.files.getlist(name)] for name in request.files} if multipart else {}
        form = {k: v for k, v in request.form.items()} if multipart else {}
        body = b"" if multipart else raw
    except RequestEntityTooLarge:
        raise ApiError(413, "request_too_large", f"the request is larger than {limit} bytes") from None
    except (ValueError, HTTPException) as exc:
        raise ApiError(400, "bad_request", f"malformed request: {exc}") from None
    return ApiRequest(request.method, request.path, headers, request.args.to_dict(), form, files, body)


@functions_framework.errorhandler(HTTPException)
def _framework_error(exc: HTTPException) -> flask.Response:
    """What Flask or functions-framework answer before any entry point runs
    (a path with a newline that no route matches, /robots.txt and
    /favicon.ico, a malformed CloudEvent) is JSON like our own errors, not
    Flask's HTML page."""
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return _json_response({"error": {"code": code, "message": exc.description or exc.name}}, status)


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    from functions.predict_api import ApiError, ApiResponse

    started = time.perf_counter()
    service = api()
    try:
        response = service.handle(_api_request(request, service.settings.max_request_bytes))
    except ApiError as exc:
        response = ApiResponse(exc.status, exc.body())
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, request.path)  # the trace goes to the log only
        response = ApiResponse(500, ApiError(500, "internal", "internal error").body())
    log.info(
        "%s %s -> %d",
        request.method,
        request.path,
        response.status,
        extra={"status": response.status, "latency_ms": round((time.perf_counter() - started) * 1000, 3)},
    )
    body = "" if response.status == 204 else response.json()
    return flask.Response(body, response.status, response.headers, mimetype="application/json")


# --------------------------------------------------------------------------
# HTTP sweep: called by Cloud Scheduler (OIDC); a thin adapter over functions.sweep


def _json_response(body: dict, status: int, headers: dict[str, str] | None = None) -> flask.Response:
    import json

    return flask.Response(json.dumps(body, default=str), status, headers or {}, mimetype="application/json")


@functions_framework.http
def sweep(request: flask.Request) -> flask.Response:
    """POST {dry_run, min_age, max_age, budget, limit} -> the run's document."""
    from functions.sweep import Sweeper, SweepOptions

    context = {"request_id": request.headers.get("X-Cloud-Trace-Context") or request.headers.get("X-Request-Id")}
    if request.method != "POST":
        return _json_response({"error": "use POST"}, 405, {"Allow": "POST"})
    try:
        body = request.get_json(force=True) if request.get_data() else {}
        options = SweepOptions.from_request(body, settings())
    except (ValueError, TypeError, OverflowError, RecursionError, HTTPException) as exc:  # int(1e400); "[[[[..." too deep
        log.warning("bad sweep request: %s", exc, extra=context)
        return _json_response({"error": str(exc)}, 400)
    core = processor()
    try:
        report = Sweeper(core.settings, core.storage, core.db, core).run(options, log_context=context)
    except (GoogleAPIError, ConnectionError, TimeoutError) as exc:
        log.exception("sweep failed: %s", exc, extra=context)
        return _json_response({"error": "a dependency is unavailable; retry later"}, 503)
    result = report.to_dict()
    if options.report_days and not options.dry_run:
        result["report"] = _publish_report(core, options.report_days, report.run_id, context)
    return _json_response(result, 200)


def _publish_report(core: Any, days: int, run_id: str, context: dict) -> list[str] | dict[str, str]:
    """The operations report into ``reports/<run_id>/`` of the processed
    bucket (matplotlib is imported here only, never on the event path)."""
    from reporting import collect

    config = core.settings
    try:
        built = collect.make_report(core.db, core.storage, models_bucket=config.models_bucket, days=days, project=config.project)
        uris = collect.upload(built, core.storage, config.processed_bucket, run_id)
    except (GoogleAPIError, ConnectionError, TimeoutError) as exc:
        log.warning("the sweep's report failed: %s", exc, extra=context)
        return {"error": f"report not written: {type(exc).__name__}"}
    log.info("report written to %s", uris[0] if uris else "-", extra=context | {"report": uris})
    return uris
