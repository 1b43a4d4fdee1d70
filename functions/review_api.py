"""The review desk's HTTP API, independent of Flask: an
:class:`~functions.predict_api.ApiRequest` in, an ``ApiResponse`` (JSON) or a
:class:`RawResponse` (the page, an image) out. ``functions/main.py`` adapts
Flask to it; the core is :mod:`functions.review_desk`.

Routes (docs/review.md): ``GET /api/queue``, ``GET /api/items/<id>``,
``GET /api/items/<id>/image``, ``POST /api/decisions``, ``GET /api/labels`` (categories and attribute labels),
``GET /api/me``, and the page's static files (``GET /`` is
``review_page/index.html``). Every answer carries a strict
Content-Security-Policy and ``X-Content-Type-Options: nosniff``; every error
is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from functions.dependencies import DEPENDENCY_ERRORS, transient_cause
from functions.model_cache import ModelUnavailable
from functions.predict_api import ApiError, ApiRequest, ApiResponse
from functions.review_auth import ImageUrlSigner, Unauthorized, csrf_problem
from functions.review_desk import DecisionRequest, QueueQuery, ReviewDesk, ReviewError
from shared import records as rec
from shared.attributes import ATTRIBUTES
from shared.review_backlog import band_of, margin_of
from shared.settings import Settings

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent / "review_page"
MAX_DECISIONS = 200  #: decisions in one request
SIGNED_URL_HOST = "https://storage.googleapis.com"
_STATUS = {ReviewError.NOT_FOUND: 404, ReviewError.INVALID: 400, ReviewError.CONFLICT: 409, ReviewError.UNAVAILABLE: 503}
_ITEM = re.compile(r"^/api/items/([A-Za-z0-9_-]{1,128})(/image)?$")
_ASSET = re.compile(r"^/([A-Za-z0-9_-][A-Za-z0-9._-]{0,100}(?:/[A-Za-z0-9_-][A-Za-z0-9._-]{0,100}){0,2})$")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
#: what an image is served as; anything else an uploader declared goes out as bytes (never text/html)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"})
Identity = Callable[[dict], str]


@dataclass(frozen=True)
class RawResponse:
    """A non-JSON answer: the page's files, an image."""

    status: int
    data: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def rfc3339(moment: Any) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else None


def review_body(review: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``review`` map as JSON (timestamps RFC 3339), earlier decisions included."""
    if review is None:
        return None
    body = {key: rfc3339(value) if isinstance(value, datetime) else value for key, value in review.items()}
    if isinstance(review.get(rec.REVIEW_PREVIOUS), list):
        body[rec.REVIEW_PREVIOUS] = [review_body(dict(p)) for p in review[rec.REVIEW_PREVIOUS] if isinstance(p, dict)]
    return body


def attributes_body(record: rec.Classification) -> dict[str, Any]:
    """An item's ``attributes``: {name: {value (the effective one: the
    reviewer's correction over the model's), source ("reviewer", "model", or
    None: left empty), corrected (a person set it), model (the model's own
    answer: {value, best, confidence (of ``best``), threshold}; None for an
    attribute only a reviewer set)}}, plus, for older readers, the model's
    confidence, threshold, best and low_confidence (the model left it empty)
    repeated at the top level (``confidence`` is always the model's score of
    ``best``, never of a reviewer's ``value``); {} for a category-only model."""
    final = record.final_attributes
    corrected = rec.attribute_corrections(record.review)
    sources = rec.attribute_sources(record.attributes, record.review)
    body = {}
    for name, value in sorted(final.items(), key=lambda pair: attribute_order(pair[0])):
        model = record.attributes.get(name) or {}
        answer = (
            {
                "value": model.get("value"),
                "best": model.get("best"),
                "confidence": model.get("confidence"),
                "threshold": model.get("threshold"),
            }
            if model
            else None
        )
        body[name] = {
            "value": value,
            "source": sources.get(name),
            "corrected": name in corrected,
            "model": answer,
            "confidence": model.get("confidence"),
            "threshold": model.get("threshold"),
            "best": model.get("best"),
            "low_confidence": bool(model) and model.get("value") is None,
        }
    return body


def attribute_order(name: str) -> tuple[int, str]:
    """Sort key: the attributes of :data:`shared.attributes.ATTRIBUTES` in
    their order (gender, colour, usage, season), any other name after them by
    name (Firestore maps come back in no fixed order; the page lists them so)."""
    known = list(ATTRIBUTES)
    return (known.index(name) if name in known else len(known), name)


def signed_gcs_url(storage: Any, credentials: Any, bucket: str, name: str, ttl: int) -> str:
    """A V4 signed GET URL in the cloud, signed through the IAM signBlob API
    with the function's own service account (``credentials``: its refreshed
    default credentials; it needs roles/iam.serviceAccountTokenCreator on
    itself). Not run locally."""
    return (
        storage.bucket(bucket)
        .blob(name)
        .generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=ttl),
            method="GET",
            service_account_email=getattr(credentials, "service_account_email", None),
            access_token=credentials.token,
        )
    )


class ReviewApi:
    """Routing, validation and answers over a :class:`ReviewDesk`.
    ``identity(headers) -> reviewer`` raises Unauthorized; ``labels()`` the
    categories; ``on_decided(record)`` runs after each committed decision."""

    def __init__(
        self,
        settings: Settings,
        desk: ReviewDesk,
        signer: ImageUrlSigner,
        identity: Any,
        labels: Callable[[], list[str]],
        *,
        page_dir: Path = PAGE_DIR,
        on_decided: Callable[[rec.Classification], None] | None = None,
    ) -> None:
        self.settings = settings
        self.desk = desk
        self.signer = signer
        self.identity = identity
        self.labels = labels
        self.page_dir = page_dir
        self.on_decided = on_decided
        self._credentials: Any = None  # built on the first signed URL
        image_hosts = " " + SIGNED_URL_HOST if settings.review_image_urls == "signed" else ""
        self.security_headers = {
            "Content-Security-Policy": (
                f"default-src 'self'; img-src 'self'{image_hosts}; script-src 'self'; style-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }

    # -- entry -------------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResponse | RawResponse:
        """Any request -> its answer, with the security headers. Never raises."""
        try:
            response = self._dispatch(request)
        except ApiError as exc:
            response = ApiResponse(exc.status, exc.body())
        except ReviewError as exc:
            response = ApiResponse(_STATUS[exc.kind], ApiError(0, exc.code, exc.message).body())
        except ModelUnavailable:
            response = ApiResponse(
                503, ApiError(0, "model_unavailable", "the model's labels are not loaded yet; retry later").body()
            )
        except DEPENDENCY_ERRORS as exc:
            log.warning("review %s %s: a dependency failed: %s", request.method, request.path, exc)
            response = ApiResponse(503, ApiError(0, "dependency_unavailable", "a dependency is unavailable; retry later").body())
        return self.secured(response)

    def secured(self, response: ApiResponse | RawResponse) -> ApiResponse | RawResponse:
        """``response`` with the security headers (JSON answers also ``Cache-Control: no-store``)."""
        extra = {"Cache-Control": "no-store"} if isinstance(response, ApiResponse) else {}
        headers = {**self.security_headers, **extra, **response.headers}
        if isinstance(response, RawResponse):
            return RawResponse(response.status, response.data, response.content_type, headers)
        return ApiResponse(response.status, response.body, headers)

    def _dispatch(self, request: ApiRequest) -> ApiResponse | RawResponse:
        path = request.path
        if not path.startswith("/api/"):
            return self._static(request)
        try:
            reviewer = self.identity.reviewer(request.headers)
        except Unauthorized as exc:
            raise ApiError(401, "unauthorized", str(exc)) from None
        routes: dict[str, dict[str, Callable[[ApiRequest, str], ApiResponse | RawResponse]]] = {
            "/api/queue": {"GET": self._queue},
            "/api/decisions": {"POST": self._decisions},
            "/api/labels": {"GET": self._labels},
            "/api/me": {"GET": lambda _r, user: ApiResponse(200, {"reviewer": user})},
        }
        methods = routes.get(path)
        if methods is None:
            match = _ITEM.match(path)
            if match is None:
                raise ApiError(404, "not_found", "no such route")
            handler = self._image if match.group(2) else self._item
            methods = {"GET": lambda r, _u: handler(r, match.group(1))}
        method = methods.get(request.method)
        if method is None:
            raise ApiError(405, "method_not_allowed", f"{path} accepts {', '.join(sorted(methods))}")
        return method(request, reviewer)

    # -- the page ----------------------------------------------------------------

    def _static(self, request: ApiRequest) -> RawResponse:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "method_not_allowed", "the page accepts GET")
        name = "index.html" if request.path in ("", "/") else None
        match = _ASSET.match(request.path)
        if name is None and match and ".." not in match.group(1):
            name = match.group(1)
        file = (self.page_dir / name).resolve() if name else None
        if file is None or self.page_dir.resolve() not in file.parents or not file.is_file():
            raise ApiError(404, "not_found", "no such file")
        content_type = _CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
        return RawResponse(200, file.read_bytes(), content_type, {"Cache-Control": "no-cache"})

    # -- the API -----------------------------------------------------------------

    def _queue(self, request: ApiRequest, _reviewer: str) -> ApiResponse:
        page = self.desk.queue(QueueQuery.from_args(request.args))
        return ApiResponse(
            200,
            {
                "items": [self.item(r) for r in page.items],
                "next_page_token": page.next_page_token,
                "progress": {"done_today": page.done_today, "remaining": page.remaining},
            },
        )

    def _labels(self, _request: ApiRequest, _reviewer: str) -> ApiResponse:
        """The current model's categories and, for a model with attribute
        heads, its attribute labels (``attributes``: {name: [labels]}; absent
        for a category-only model, whose answer is as before)."""
        attributes = dict(sorted(self.desk.attribute_labels(None).items(), key=lambda pair: attribute_order(pair[0])))
        return ApiResponse(200, {"labels": list(self.labels())} | ({"attributes": attributes} if attributes else {}))

    def _item(self, _request: ApiRequest, doc_id: str) -> ApiResponse:
        record = self.desk.get(doc_id)
        body = self.item(record) | {
            "status": record.status,
            "review": review_body(record.review),
            "metadata": self.desk.metadata(record),
        }
        return ApiResponse(200, body)

    def _image(self, request: ApiRequest, doc_id: str) -> RawResponse:
        problem = self.signer.check(doc_id, request.args.get("exp"), request.args.get("sig"))
        if problem:
            raise ApiError(403, "forbidden", problem)
        data, content_type = self.desk.image(self.desk.get(doc_id))
        kind = (content_type or "").split(";")[0].strip().lower()
        headers = {"Cache-Control": "private, max-age=60", "Content-Disposition": "inline"}
        return RawResponse(200, data, kind if kind in _IMAGE_TYPES else "application/octet-stream", headers)

    def _decisions(self, request: ApiRequest, reviewer: str) -> ApiResponse:
        problem = csrf_problem(request.headers)
        if problem:
            raise ApiError(403, "forbidden", problem)
        try:
            payload = json.loads(request.body or b"null")
        except (ValueError, RecursionError):
            raise ApiError(400, "bad_request", 'the body must be JSON {"decisions": [...]}') from None
        items = payload.get("decisions") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "bad_request", 'the body must be JSON {"decisions": [...]} with at least one decision')
        if len(items) > MAX_DECISIONS:
            raise ApiError(413, "too_many_decisions", f"{len(items)} decisions; the limit is {MAX_DECISIONS}")
        results = [self._decide_one(item, reviewer) for item in items]
        if len(results) == 1 and not results[0][1]["ok"]:
            status, body = results[0]
            return ApiResponse(status, {"error": body["error"]})
        return ApiResponse(200, {"results": [body for _status, body in results]})

    def _decide_one(self, item: Any, reviewer: str) -> tuple[int, dict[str, Any]]:
        doc_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        try:
            request = DecisionRequest.from_dict(item)
            result = self.desk.decide(request, reviewer, self.on_decided)
        except ReviewError as exc:
            return _STATUS[exc.kind], {"id": doc_id, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        except (*DEPENDENCY_ERRORS, ValueError) as exc:
            cause = transient_cause(exc) if isinstance(exc, ValueError) else exc
            if cause is None:
                raise
            log.warning("decision on %s: a dependency failed: %s", doc_id, cause)
            message = "a dependency is unavailable; retry the same decision"
            return 503, {"id": doc_id, "ok": False, "error": {"code": "dependency_unavailable", "message": message}}
        record = result.record
        return 200, {
            "id": request.id,
            "ok": True,
            "status": record.status,
            "destination": record.destination.to_dict() if record.destination else None,
            "review": review_body(record.review),
            "unchanged": result.unchanged,
        }

    def item(self, record: rec.Classification) -> dict[str, Any]:
        """The queue's Item of the contract; ``attributes`` (:func:`attributes_body`)
        only for a record with attributes (a category-only model's items are as before)."""
        source = record.source
        band = band_of(record) if record.status == rec.NEEDS_REVIEW else record.band
        return {
            "id": record.id,
            "source": {"bucket": source.bucket, "name": source.name, "generation": str(source.generation)} if source else None,
            "label": record.label,
            "confidence": record.confidence,
            "top_k": [{"label": e.get("label"), "score": e.get("score")} for e in record.top_k if isinstance(e, dict)],
            "band": band,
            "sku": record.sku,
            "created_at": rfc3339(record.created_at),
            "destination": record.destination.to_dict() if record.destination else None,
            "image_url": self.image_url(record),
            "margin": margin_of(record),
        } | ({"attributes": attributes_body(record)} if record.final_attributes else {})

    def image_url(self, record: rec.Classification) -> str | None:
        if record.destination is None or record.id is None:
            return None
        if self.settings.review_image_urls == "signed":
            bucket = record.destination.bucket or self.settings.processed_bucket
            credentials = self._signing_credentials()
            return signed_gcs_url(self.desk.storage, credentials, bucket, record.destination.name, self.signer.ttl)
        return self.signer.url(record.id)

    def _signing_credentials(self) -> Any:
        """The function's default credentials, refreshed when expired (for V4 signed URLs)."""
        import google.auth
        from google.auth.transport.requests import Request

        if self._credentials is None:
            self._credentials, _ = google.auth.default()
        if not self._credentials.valid:
            self._credentials.refresh(Request())
        return self._credentials
