"""The HTTP prediction API, independent of Flask: an :class:`ApiRequest` in,
an :class:`ApiResponse` out. ``functions/main.py`` adapts Flask to it.

Every error is JSON ``{"error": {"code": ..., "message": ...}}`` with a 4xx
status (503 while no model is ready); bad input never yields a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.base64_input import Base64InputError, decode_image_string, max_encoded_chars
from functions.model_cache import ModelUnavailable
from functions.openapi import openapi_document
from shared.classifier import Classifier, Prediction
from shared.errors import ImageError
from shared.records import BAND_AUTO, merge_totals, sum_shards
from shared.settings import Settings
from shared.thresholds import EVERY_CLASS, FROM_OVERRIDE, ClassThresholds, ThresholdPolicy

log = logging.getLogger(__name__)

#: ImageError reason -> HTTP status
IMAGE_ERROR_STATUS = {
    ImageError.EMPTY: 400,
    ImageError.TOO_LARGE: 413,
    ImageError.NOT_AN_IMAGE: 415,
    ImageError.UNSUPPORTED_FORMAT: 415,
    ImageError.TOO_MANY_PIXELS: 422,
    ImageError.TRUNCATED: 422,
    ImageError.CORRUPT: 422,
    ImageError.TOO_SMALL: 422,
}
OPEN_PATHS = frozenset({"/health"})  # answered without an API key
MAX_STATS_DAYS = 90
#: days ("YYYY-MM-DD") -> {day: [counter shard documents]}
StatsReader = Callable[[list[str]], Mapping[str, Iterable[Mapping[str, Any]]]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    args: Mapping[str, str] = field(default_factory=dict)  # query string
    form: Mapping[str, str] = field(default_factory=dict)  # multipart text fields
    files: Mapping[str, list[bytes]] = field(default_factory=dict)  # multipart files by field name
    body: bytes = b""  # the raw body when it is not multipart

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)


@dataclass(frozen=True)
class Options:
    top_k: int
    threshold: float | None  # the request's auto threshold for every class; None: the model's per-class ones
    attributes: bool = False  # the request asked for the model's attributes (issue 19)

    def policy(self, classifier: Classifier, settings: Settings) -> ThresholdPolicy:
        """The thresholds this request applies: the manifest's per-class ones
        under the settings' overrides, or the request's ``threshold`` for
        every class (each class keeping its measured check threshold, capped at it)."""
        overrides = settings.threshold_overrides
        if self.threshold is not None:
            overrides = {EVERY_CLASS: ClassThresholds(self.threshold, float("nan"), FROM_OVERRIDE)}
        manifest = classifier.manifest
        return ThresholdPolicy(
            manifest.thresholds, list(manifest.labels), fallback=settings.confidence_threshold, overrides=overrides
        )


class Metrics:
    """This instance's request counters and recent prediction latencies."""

    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=window)
        self.since = datetime.now(UTC).isoformat()

    def record(self, route: str, status: int, latency_ms: float) -> None:
        with self._lock:
            self._counts[f"{route} {status}"] += 1
            if route.startswith("POST /predict"):
                self._latencies.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts, latencies = dict(self._counts), sorted(self._latencies)
        return {
            "since": self.since,
            "requests_total": sum(counts.values()),
            "requests": counts,
            "latency_ms": {f"p{p}": _percentile(latencies, p) for p in (50, 90, 99)} | {"count": len(latencies)},
        }


def _percentile(ordered: list[float], p: int) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 3)


class PredictApi:
    """Routing, validation and responses. ``models`` returns the current
    classifier or raises ModelUnavailable; ``fetch_gcs`` returns an object's
    bytes (or raises ApiError) for ``gcs_uri`` inputs."""

    def __init__(
        self,
        settings: Settings,
        models: Callable[[], Classifier],
        fetch_gcs: Callable[[str, str], bytes] | None = None,
        read_stats: StatsReader | None = None,
        today: Callable[[], datetime] = lambda: datetime.now(UTC),
        read_backlog: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self._models = models
        self._fetch_gcs = fetch_gcs
        self._read_stats = read_stats
        self._today = today
        self._read_backlog = read_backlog  # the review backlog for /stats (functions/stats_store.py)
        self.metrics = Metrics()
        self._routes: dict[str, dict[str, Callable[[ApiRequest], ApiResponse]]] = {
            "/": {"GET": self._describe},
            "/health": {"GET": lambda _r: ApiResponse(200, {"status": "ok"})},
            "/ready": {"GET": self._ready},
            "/classes": {"GET": self._classes},
            "/model": {"GET": self._model},
            "/stats": {"GET": self._stats},
            "/openapi.json": {"GET": lambda _r: ApiResponse(200, openapi_document())},
            "/predict": {"POST": self._predict},
            "/predict_batch": {"POST": self._predict_batch},
        }

    # -- entry ---------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResponse:
        started = time.perf_counter()
        response = self._handle(request)
        self.metrics.record(self._route_name(request), response.status, (time.perf_counter() - started) * 1000)
        return response

    def refuse(self, request: ApiRequest, error: ApiError, started: float | None = None) -> ApiResponse:
        """The answer to a request refused before routing (too large,
        malformed, refused by the web framework) or failing unexpectedly:
        counted in ``/stats`` and given the CORS headers like every other
        answer. ``request``: what is known of it (method, path, headers);
        ``started``: its ``time.perf_counter()`` at arrival."""
        response = self._with_cors(request, ApiResponse(error.status, error.body()))
        latency = 0.0 if started is None else (time.perf_counter() - started) * 1000
        self.metrics.record(self._route_name(request), response.status, latency)
        return response

    def _route_name(self, request: ApiRequest) -> str:
        route = request.path.rstrip("/") or "/"
        return f"{request.method} {route if route in self._routes else 'other'}"

    def _handle(self, request: ApiRequest) -> ApiResponse:
        try:
            response = self._dispatch(request)
        except ApiError as exc:
            response = ApiResponse(exc.status, exc.body())
        except ModelUnavailable as exc:
            log.warning("no model ready: %s", exc)
            response = ApiResponse(503, ApiError(503, "model_unavailable", "the model is not loaded yet; retry later").body())
        return self._with_cors(request, response)

    def _dispatch(self, request: ApiRequest) -> ApiResponse:
        path = request.path.rstrip("/") or "/"
        methods = self._routes.get(path)
        if methods is None:
            raise ApiError(404, "not_found", f"no route {path}")
        if request.method == "OPTIONS" and self.settings.allowed_origins:
            return ApiResponse(204, {})
        handler = methods.get(request.method)
        if handler is None:
            raise ApiError(405, "method_not_allowed", f"{path} accepts {', '.join(sorted(methods))}")
        self._authorize(path, request)
        return handler(request)

    def _authorize(self, path: str, request: ApiRequest) -> None:
        key = self.settings.api_key
        if not key or path in OPEN_PATHS:
            return
        given = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise ApiError(401, "unauthorized", "a valid API key is required (header X-API-Key)")

    def _with_cors(self, request: ApiRequest, response: ApiResponse) -> ApiResponse:
        origins = self.settings.allowed_origins
        origin = request.headers.get("origin", "")
        if not origins or not origin or ("*" not in origins and origin not in origins):
            return response
        headers = {
            "Access-Control-Allow-Origin": "*" if "*" in origins else origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, X-API-Key, Authorization",
            "Vary": "Origin",
        }
        return ApiResponse(response.status, response.body, response.headers | headers)

    # -- informational routes ------------------------------------------------

    def _describe(self, _request: ApiRequest) -> ApiResponse:
        return ApiResponse(
            200,
            {
                "service": "fashion-classifier",
                "description": "Classifies fashion product photos into categories with a LiteRT MobileNetV2.",
                "endpoints": sorted(self._routes),
                "openapi": "/openapi.json",
            },
        )

    def _ready(self, _request: ApiRequest) -> ApiResponse:
        classifier = self._models()  # ModelUnavailable -> 503; loading verifies the sha256
        return ApiResponse(200, {"status": "ready", "model_version": classifier.version})

    def _classes(self, _request: ApiRequest) -> ApiResponse:
        classifier = self._models()
        return ApiResponse(200, {"classes": list(classifier.labels), "model_version": classifier.version})

    def _model(self, _request: ApiRequest) -> ApiResponse:
        classifier = self._models()
        return ApiResponse(200, {"model_version": classifier.version, "manifest": classifier.manifest.to_dict()})

    def _stats(self, request: ApiRequest) -> ApiResponse:
        try:
            count = int(request.args.get("days", 7))
        except ValueError as exc:
            raise ApiError(400, "bad_request", "days must be an integer") from exc
        if not 1 <= count <= MAX_STATS_DAYS:
            raise ApiError(400, "bad_request", f"days must be between 1 and {MAX_STATS_DAYS}")
        if self._read_stats is None:
            raise ApiError(503, "stats_unavailable", "no statistics store is configured")
        today = self._today()
        days = [(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(count)]
        shards = self._read_stats(days)
        per_day = {day: sum_shards(shards.get(day, ())) for day in days}
        totals = sum_shards(())
        for day in per_day.values():
            merge_totals(totals, day)
        body = {"days": per_day, "totals": totals, "instance": self.metrics.snapshot()}
        if self._read_backlog is not None:
            body["review"] = self._read_backlog(count)  # waiting now; decided in the same days
        return ApiResponse(200, body)

    # -- prediction ----------------------------------------------------------

    def _predict(self, request: ApiRequest) -> ApiResponse:
        if request.content_type == "multipart/form-data":
            files = request.files.get("file") or []
            if len(files) != 1:
                raise ApiError(400, "bad_request", "send exactly one image as the multipart field 'file'")
            data, params = files[0], dict(request.form)
        else:
            payload = self._json(request)
            data, params = self._image_from_json(payload), payload
        options = self._options(request, params)
        classifier = self._models()
        self._check_size(data)
        started = time.perf_counter()
        try:
            prediction = classifier.classify(data, top_k=options.top_k, limits=self.settings.decode_limits)
        except ImageError as exc:
            raise ApiError(IMAGE_ERROR_STATUS.get(exc.reason, 422), exc.reason, exc.message) from exc
        return ApiResponse(200, self._result(prediction, classifier, options, started))

    def _predict_batch(self, request: ApiRequest) -> ApiResponse:
        if request.content_type == "multipart/form-data":
            items: list[bytes | ApiError] = list(request.files.get("files") or [])
            params: Mapping[str, Any] = request.form
        else:
            payload = self._json(request)
            images = payload.get("images")
            if not isinstance(images, list):
                raise ApiError(400, "bad_request", "send JSON {'images': [<base64>, ...]} or multipart fields 'files'")
            items, params = [self._batch_item(image) for image in images], payload
        if not items:
            raise ApiError(400, "bad_request", "the batch holds no images")
        if len(items) > self.settings.max_batch_images:
            raise ApiError(413, "too_many_images", f"{len(items)} images; the limit is {self.settings.max_batch_images}")
        options = self._options(request, params)
        classifier = self._models()
        started = time.perf_counter()
        results = self._classify_items(classifier, items, options)
        body = [self._item_body(i, r, classifier, options, started) for i, r in enumerate(results)]
        return ApiResponse(200, {"results": body, "model_version": classifier.version, "count": len(body)})

    def _classify_items(
        self, classifier: Classifier, items: list[bytes | ApiError], options: Options
    ) -> list[Prediction | ApiError]:
        checked: list[bytes | ApiError] = []
        for item in items:
            try:
                checked.append(item if isinstance(item, ApiError) else self._check_size(item))
            except ApiError as exc:
                checked.append(exc)
        good = [item for item in checked if isinstance(item, bytes)]
        predicted = iter(classifier.classify_batch(good, top_k=options.top_k, limits=self.settings.decode_limits))
        return [item if isinstance(item, ApiError) else self._as_result(next(predicted)) for item in checked]

    @staticmethod
    def _as_result(result: Prediction | ImageError) -> Prediction | ApiError:
        if isinstance(result, ImageError):
            return ApiError(IMAGE_ERROR_STATUS.get(result.reason, 422), result.reason, result.message)
        return result

    def _item_body(
        self, index: int, result: Prediction | ApiError, classifier: Classifier, options: Options, started: float
    ) -> dict[str, Any]:
        if isinstance(result, ApiError):
            return {"index": index, "status": result.status} | result.body()
        return {"index": index, "status": 200} | self._result(result, classifier, options, started)

    def _result(self, prediction: Prediction, classifier: Classifier, options: Options, started: float) -> dict[str, Any]:
        band, used = options.policy(classifier, self.settings).band(prediction.label, prediction.confidence)
        return {
            "category": prediction.label,
            "confidence": prediction.confidence,
            "all_probabilities": prediction.probabilities,
            "top_k": [{"label": label, "score": score} for label, score in prediction.top_k],
            "needs_review": band != BAND_AUTO,
            "band": band,
            "threshold": used.auto,
            "check_threshold": used.check,
            "threshold_source": used.source,
            "model_version": classifier.version,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        } | (attributes_body(prediction, classifier) if options.attributes else {})

    # -- input parsing -------------------------------------------------------

    @staticmethod
    def _json(request: ApiRequest) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")
        try:
            payload = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from exc
        except RecursionError:  # "[[[[..." nested deeper than the parser's recursion limit
            raise ApiError(400, "bad_request", "the JSON body is nested too deeply") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "bad_request", "the JSON body must be an object")
        return payload

    def _image_from_json(self, payload: Mapping[str, Any]) -> bytes:
        if "image" in payload and "gcs_uri" in payload:
            raise ApiError(400, "bad_request", "send either 'image' or 'gcs_uri', not both")
        if "image" in payload:
            return self._decode_base64(payload["image"])
        if "gcs_uri" in payload:
            return self._from_gcs(payload["gcs_uri"])
        raise ApiError(400, "bad_request", "send JSON {'image': <base64>} or {'gcs_uri': 'gs://bucket/object'}")

    def _batch_item(self, item: Any) -> bytes | ApiError:
        try:
            return self._decode_base64(item)
        except ApiError as exc:
            return exc

    def _decode_base64(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise ApiError(400, "bad_request", "'image' must be a base64 string")
        if len(value) > max_encoded_chars(self.settings.max_image_bytes):
            raise ApiError(413, ImageError.TOO_LARGE, f"the image is larger than {self.settings.max_image_bytes} bytes")
        try:
            return decode_image_string(value)
        except Base64InputError as exc:
            raise ApiError(400, "bad_request", f"'image' is not base64 or a base64 data URL: {exc}") from exc

    def _from_gcs(self, uri: Any) -> bytes:
        if not isinstance(uri, str) or not uri.startswith("gs://") or "/" not in uri[5:]:
            raise ApiError(400, "bad_request", "'gcs_uri' must look like gs://bucket/object")
        bucket, name = uri[5:].split("/", 1)
        if not bucket or not name:
            raise ApiError(400, "bad_request", "'gcs_uri' must look like gs://bucket/object")
        if bucket not in self.settings.allowed_buckets or self._fetch_gcs is None:
            raise ApiError(403, "forbidden", f"bucket {bucket!r} is not on this service's allow-list")
        return self._fetch_gcs(bucket, name)

    def _check_size(self, data: bytes) -> bytes:
        if len(data) > self.settings.max_image_bytes:
            raise ApiError(
                413, ImageError.TOO_LARGE, f"the image is {len(data)} bytes; the limit is {self.settings.max_image_bytes}"
            )
        return data

    def _options(self, request: ApiRequest, params: Mapping[str, Any]) -> Options:
        top_k = params.get("top_k", request.args.get("top_k", self.settings.top_k))
        threshold = params.get("threshold", request.args.get("threshold"))
        attributes = parse_flag(params.get("attributes", request.args.get("attributes")), "attributes")
        try:
            top_k = int(top_k)
            threshold = None if threshold is None else float(threshold)
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(1e400), JSON's infinity
            raise ApiError(400, "bad_request", "top_k must be an integer and threshold a number") from exc
        if isinstance(params.get("top_k"), bool) or not 1 <= top_k <= 100:
            raise ApiError(400, "bad_request", "top_k must be between 1 and 100")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ApiError(400, "bad_request", "threshold must be between 0 and 1")
        return Options(top_k=top_k, threshold=threshold, attributes=attributes)


#: the true and false spellings of a flag in a query string or a form field
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def parse_flag(value: Any, name: str) -> bool:
    """A request flag: JSON ``true``/``false``, or ``true``/``1``/``yes`` and
    ``false``/``0``/``no`` as text; absent (None) is false. ApiError 400 otherwise."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ApiError(400, "bad_request", f"{name} must be true or false")


def attributes_body(prediction: Prediction, classifier: Classifier) -> dict[str, Any]:
    """What ``attributes=true`` adds to an answer: ``attributes``, {name:
    {value, confidence, threshold, best, low_confidence}} (``value`` null
    below the attribute's threshold: left empty, never guessed); for a model
    without attribute heads an empty object and ``attributes_note`` saying so
    (the category answer stands: the request is not refused)."""
    if not classifier.manifest.attributes:
        note = f"model {classifier.version} has no attribute heads: it predicts the category only"
        return {"attributes": {}, "attributes_note": note}
    return {"attributes": {name: a.to_dict() for name, a in prediction.attributes.items()}}
