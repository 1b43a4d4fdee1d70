"""Cloud Functions entry points: thin adapters over the core.

``classify_upload``: CloudEvent ``google.cloud.storage.object.v1.finalized``
on the incoming bucket; a transient failure raises (the platform retries).
``predict``: the HTTP prediction API (routes in functions/predict_api.py).
``sweep``: called by Cloud Scheduler (OIDC); the core in functions/sweep.py.
``review``: the review desk's API and page (functions/review_api.py).
What they work with is built once per instance by functions/wiring.py; every
HTTP error is ``{"error": {"code", "message"}}`` (functions/flask_adapter.py).
"""

from __future__ import annotations

import logging
import time

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import HTTPException

from functions import wiring
from functions.flask_adapter import error_response, json_response, lower_headers

log = logging.getLogger("functions")


@functions_framework.cloud_event
def classify_upload(event: CloudEvent) -> None:
    from functions.events import object_from_event
    from functions.processing import TransientError

    config = wiring.settings()
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
    try:
        outcome = wiring.components().processor.process(ref, trigger="event", event_id=event["id"])
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


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    from functions.flask_adapter import api_request
    from functions.predict_api import ApiError, ApiRequest

    started = time.perf_counter()
    service = wiring.api()
    try:
        response = service.handle(api_request(request, service.settings.max_request_bytes))
    except ApiError as exc:  # refused before routing: too large, malformed
        response = service.refuse(ApiRequest(request.method, request.path, lower_headers(request)), exc, started)
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, request.path)  # the trace goes to the log only
        error = ApiError(500, "internal", "internal error")
        response = service.refuse(ApiRequest(request.method, request.path, lower_headers(request)), error, started)
    log.info(
        "%s %s -> %d",
        request.method,
        request.path,
        response.status,
        extra={"status": response.status, "latency_ms": round((time.perf_counter() - started) * 1000, 3)},
    )
    return json_response(response.body, response.status, response.headers)


@functions_framework.http
def sweep(request: flask.Request) -> flask.Response:
    """POST {dry_run, min_age, max_age, budget, limit, report_days} -> the run's document."""
    from functions.sweep import SweepFailed, SweepOptions, publish_report

    context = {"request_id": request.headers.get("X-Cloud-Trace-Context") or request.headers.get("X-Request-Id")}
    if request.method != "POST":
        return error_response(405, "method_not_allowed", "use POST", {"Allow": "POST"})
    try:
        body = request.get_json(force=True) if request.get_data() else {}
        options = SweepOptions.from_request(body, wiring.settings())
    except (ValueError, TypeError, OverflowError, RecursionError, HTTPException) as exc:  # int(1e400); "[[[[..." too deep
        log.warning("bad sweep request: %s", exc, extra=context)
        return error_response(400, "bad_request", str(exc))
    core = wiring.components()
    try:
        report = wiring.sweeper(core).run(options, log_context=context)
    except SweepFailed as exc:
        return error_response(503, "dependency_unavailable", f"{exc}; retry later")
    result = report.to_dict()
    if options.report_days and not options.dry_run:
        result["report"] = publish_report(core.settings, core.storage, core.db, options.report_days, report.run_id, context)
    return json_response(result, 200)


@functions_framework.http
def review(request: flask.Request) -> flask.Response:
    from functions.flask_adapter import review_answer

    return review_answer(request, wiring.review())


@functions_framework.errorhandler(HTTPException)
def _framework_error(exc: HTTPException) -> flask.Response:
    """What Flask or functions-framework answer before any entry point runs (a
    path with a newline, /robots.txt, a malformed CloudEvent) is JSON like our
    own errors; the prediction API counts it and adds its CORS headers."""
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if flask.has_request_context() and flask.current_app.name == predict.__name__:
        from functions.predict_api import ApiError, ApiRequest

        try:
            service = wiring.api()
        except Exception:
            log.exception("the prediction API could not be built")
        else:
            request = ApiRequest(flask.request.method, flask.request.path, lower_headers(flask.request))
            answer = service.refuse(request, ApiError(status, code, message))
            return json_response(answer.body, answer.status, answer.headers)
    return error_response(status, code, message)


@functions_framework.errorhandler(Exception)
def _crash(exc: Exception) -> flask.Response:
    """An exception out of an entry point (the classify function's "retry later",
    or a bug): 500 with the crash header (the platform retries), in the one
    error shape, the trace only in the log."""
    from functions.processing import TransientError

    if isinstance(exc, TransientError):
        body = ("retry_later", f"{exc}; the platform retries")
    else:
        log.error("unexpected failure", exc_info=exc)
        body = ("internal", "internal error")
    return error_response(500, *body, {"X-Google-Status": "crash"})
