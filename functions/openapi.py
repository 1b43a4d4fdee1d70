"""The OpenAPI 3 document of the predict function (served at /openapi.json;
the tests validate every response against it)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_PREDICTION = {
    "type": "object",
    "required": [
        "category",
        "confidence",
        "all_probabilities",
        "top_k",
        "needs_review",
        "band",
        "threshold",
        "check_threshold",
        "threshold_source",
        "model_version",
        "latency_ms",
    ],
    "properties": {
        "category": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "all_probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "top_k": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "score"],
                "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
            },
        },
        "needs_review": {"type": "boolean", "description": "true unless the band is auto"},
        "band": {
            "type": "string",
            "enum": ["auto", "check", "review"],
            "description": "auto: at or above the category's auto threshold (the pipeline files it under <category>/); "
            "check: at or above its check threshold (a quick check); review: below both",
        },
        "threshold": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "the auto threshold applied to the predicted category (1 = never auto-filed)",
        },
        "check_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "threshold_source": {
            "type": "string",
            "enum": ["manifest", "override", "global"],
            "description": "manifest: the model's per-class thresholds; override: CLASS_THRESHOLDS or the request's "
            "threshold; global: CONFIDENCE_THRESHOLD (the model measured none for the category)",
        },
        "model_version": {"type": "string"},
        "latency_ms": {"type": "number", "minimum": 0},
        "attributes": {
            "type": "object",
            "description": "only with attributes=true: the model's attributes (gender, colour family, usage, season) by name; "
            "an empty object for a model without attribute heads (attributes_note says so)",
            "additionalProperties": {
                "type": "object",
                "required": ["value", "confidence", "threshold", "best", "low_confidence"],
                "properties": {
                    "value": {
                        "type": ["string", "null"],
                        "description": "the class; null when confidence is below threshold (left empty, never guessed)",
                    },
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "best": {"type": "string", "description": "the top class, even when value is null"},
                    "low_confidence": {"type": "boolean"},
                },
            },
        },
        "attributes_note": {"type": "string", "description": "why attributes is empty (a model without attribute heads)"},
    },
}
_BATCH_ITEM = {
    "type": "object",
    "required": ["index", "status"],
    "properties": {"index": {"type": "integer"}, "status": {"type": "integer"}},
    "oneOf": [{"$ref": "#/components/schemas/Prediction"}, {"$ref": "#/components/schemas/Error"}],
}
_BATCH = {
    "type": "object",
    "required": ["results", "model_version", "count"],
    "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/BatchItem"}},
        "model_version": {"type": "string"},
        "count": {"type": "integer"},
    },
}
_OBJECT = {"type": "object"}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
_TOTALS = {
    "type": "object",
    "required": ["total", "status", "category", "rejection"],
    "properties": {
        "total": {"type": "integer"},
        "status": _COUNTS,
        "category": _COUNTS,
        "rejection": _COUNTS,
        "review": _COUNTS,  # people's decisions (approved, relabeled, rejected), not finishes
    },
}
_PERCENTILE = {"type": ["number", "null"]}
_STATS = {
    "type": "object",
    "required": ["days", "totals", "instance"],
    "properties": {
        "days": {"type": "object", "additionalProperties": _TOTALS},
        "totals": _TOTALS,
        "review": {
            "type": "object",
            "description": "the review backlog: items per band, the oldest one's age (s), decisions per day, "
            "the model's accuracy on reviewed items (approved = right; relabeled and rejected = wrong)",
            "required": ["per_band", "total", "oldest_age_s", "reviewed_per_day", "reviewed", "accuracy_on_reviewed"],
            "properties": {
                "per_band": _COUNTS,
                "total": {"type": "integer"},
                "oldest_age_s": {"type": ["number", "null"]},
                "reviewed_per_day": {"type": "object", "additionalProperties": _COUNTS},
                "reviewed": {"type": "integer"},
                "model_right": {"type": "integer"},
                "accuracy_on_reviewed": {"type": ["number", "null"]},
                "accuracy_rule": {"type": "string"},
            },
        },
        "instance": {
            "type": "object",
            "required": ["since", "requests_total", "requests", "latency_ms"],
            "properties": {
                "since": {"type": "string"},
                "requests_total": {"type": "integer"},
                "requests": _COUNTS,
                "latency_ms": {
                    "type": "object",
                    "properties": {"p50": _PERCENTILE, "p90": _PERCENTILE, "p99": _PERCENTILE, "count": {"type": "integer"}},
                },
            },
        },
    },
}
_OPTIONS = {
    "top_k": {"type": "integer", "minimum": 1, "maximum": 100},
    "threshold": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "auto threshold for every category in this request (default: the model's per-class thresholds)",
    },
    "attributes": {
        "type": "boolean",
        "description": "also answer the model's attributes (gender, colour family, usage, season); "
        "true/1/yes or false/0/no in a query string or form field (default false: the answer is unchanged)",
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "error", "content": _json(_ref("Error"))} for s in statuses}


def _get(summary: str, schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    ok = {"200": {"description": "OK", "content": _json(schema)}}
    return {"get": {"summary": summary, "responses": ok | _errors(401, 405, *errors)}}


def _post(summary: str, result: str, multipart: dict[str, Any], json_body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [{"name": n, "in": "query", "schema": s} for n, s in _OPTIONS.items()],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": multipart | _OPTIONS}},
                    "application/json": {"schema": json_body},
                },
            },
            "responses": {"200": {"description": "OK", "content": _json(_ref(result))}}
            | _errors(400, 401, 403, 404, 405, 413, 415, 422, 503),
        }
    }


_IMAGE_STRING = {
    "type": "string",
    "description": "the image file's bytes as base64: standard or URL-safe, padded or not, wrapped in lines or not, "
    "or a data URL (data:image/jpeg;base64,...); anything else is a 400 saying what is wrong",
}
_PREDICT_JSON = {
    "type": "object",
    "description": "exactly one of image (base64) or gcs_uri (gs://bucket/object, bucket on the allow-list)",
    "properties": {"image": _IMAGE_STRING, "gcs_uri": {"type": "string"}} | _OPTIONS,
}
_BATCH_JSON = {
    "type": "object",
    "required": ["images"],
    "properties": {"images": {"type": "array", "items": _IMAGE_STRING}} | _OPTIONS,
}


def openapi_document() -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fashion classifier", "version": "1.0.0"},
        "components": {
            "schemas": {"Error": _ERROR, "Prediction": _PREDICTION, "BatchItem": _BATCH_ITEM, "Batch": _BATCH},
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "paths": {
            "/": _get("service description", _OBJECT),
            "/health": _get("liveness", _OBJECT),
            "/ready": _get("model loaded and its hash verified", _OBJECT, 503),
            "/classes": _get("the current model's classes", _OBJECT, 503),
            "/model": _get("the current model's manifest", _OBJECT, 503),
            "/stats": _get("counts by day, category, status and rejection reason, and this instance's counters", _STATS, 400, 503)
            | {"parameters": [{"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 90}}]},
            "/openapi.json": _get("this document", _OBJECT),
            "/predict": _post("classify one image", "Prediction", {"file": binary}, _PREDICT_JSON),
            "/predict_batch": _post(
                "classify several images", "Batch", {"files": {"type": "array", "items": binary}}, _BATCH_JSON
            ),
        },
    }
