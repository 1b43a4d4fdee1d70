"""Flask in and out for the HTTP functions: a request becomes an
:class:`~functions.predict_api.ApiRequest`, and every answer, errors
included, is JSON; every error is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import flask
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

if TYPE_CHECKING:  # the prediction API is imported on first use only, not by the classify function's import
    from functions.predict_api import ApiRequest


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape of every function."""
    from functions.predict_api import ApiError

    return ApiError(0, code, message).body()


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> flask.Response:
    """``body`` as JSON (anything else as ``str``); no body for 204."""
    text = "" if status == 204 else json.dumps(body, default=str, ensure_ascii=False)
    return flask.Response(text, status, headers or {}, mimetype="application/json")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> flask.Response:
    return json_response(error_body(code, message), status, headers)


def lower_headers(request: flask.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def api_request(request: flask.Request, limit: int) -> ApiRequest:
    """The request as the prediction API sees it. Raises ApiError 413
    ``request_too_large`` over ``limit`` bytes, 400 ``bad_request`` when malformed."""
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
    return ApiRequest(request.method, request.path, lower_headers(request), request.args.to_dict(), form, files, body)


def review_answer(request: flask.Request, api: Any) -> flask.Response:
    """The review desk's answer to a Flask request (``api``: a
    :class:`functions.review_api.ReviewApi`): the request read like the
    prediction API's (at most 1 MiB: decisions are small), the page's files
    and images as bytes, everything else JSON, all with its security headers."""
    from functions.predict_api import ApiError, ApiResponse
    from functions.review_api import RawResponse

    try:
        answer = api.handle(api_request(request, 1024 * 1024))
    except ApiError as exc:
        answer = api.secured(ApiResponse(exc.status, exc.body()))
    except Exception:
        logging.getLogger("functions").exception("unexpected failure on %s %s", request.method, request.path)
        answer = api.secured(ApiResponse(500, ApiError(0, "internal", "internal error").body()))
    if isinstance(answer, RawResponse):
        data = b"" if request.method == "HEAD" else answer.data
        return flask.Response(data, answer.status, answer.headers, content_type=answer.content_type)
    return json_response(answer.body, answer.status, answer.headers)
