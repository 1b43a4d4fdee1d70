"""POST /predict and the informational routes, over HTTP."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import requests
from jsonschema import Draft202012Validator

from functions.openapi import openapi_document
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, pointer_payload, version_prefix
from tests.images import make_noise_image, make_photo_like, make_png_bomb, truncate
from tests.predict.conftest import EMPTY_MODELS, MAX_IMAGE_BYTES, MAX_REQUEST_BYTES, REPO, Service, check_error, check_response

TIMEOUT = 30


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def post_json(api: Service, path: str, payload: object, **kwargs: object) -> requests.Response:
    return requests.post(api.url + path, json=payload, timeout=TIMEOUT, **kwargs)


def assert_prediction(body: dict, api: Service, top_k: int = 3) -> None:
    assert body["category"] in api.labels
    assert set(body["all_probabilities"]) == set(api.labels)
    assert abs(sum(body["all_probabilities"].values()) - 1.0) < 0.01
    assert body["confidence"] == body["all_probabilities"][body["category"]]
    assert len(body["top_k"]) == top_k
    assert body["top_k"][0]["label"] == body["category"]
    assert body["model_version"] == api.model_version
    assert body["latency_ms"] >= 0


def test_prototype_client_call_keeps_working(api: Service, tmp_path) -> None:
    path = tmp_path / "shirt.jpg"
    path.write_bytes(make_photo_like(seed=3))
    with path.open("rb") as f:
        response = requests.post(api.url + "/predict", files={"file": f}, timeout=TIMEOUT)
    body = check_response(response, "/predict", "post")
    assert response.status_code == 200
    assert_prediction(body, api)
    assert isinstance(body["category"], str) and 0 <= body["confidence"] <= 1


def test_json_base64_gives_the_same_answer_as_multipart(api: Service) -> None:
    image = make_photo_like(seed=5)
    multipart = requests.post(api.url + "/predict", files={"file": ("a.jpg", image)}, timeout=TIMEOUT).json()
    response = post_json(api, "/predict", {"image": b64(image)})
    body = check_response(response, "/predict", "post")
    assert body["category"] == multipart["category"]
    assert body["all_probabilities"] == multipart["all_probabilities"]


def test_top_k_and_threshold_options(api: Service) -> None:
    image = make_photo_like(seed=7)
    body = check_response(post_json(api, "/predict", {"image": b64(image), "top_k": 1, "threshold": 1.0}), "/predict", "post")
    assert_prediction(body, api, top_k=1)
    assert body["needs_review"] is True
    # 1.0: never auto-filed; the request's threshold is the one used (the tiny model measured none: check = it)
    assert (body["band"], body["threshold"], body["check_threshold"], body["threshold_source"]) == (
        "review",
        1.0,
        1.0,
        "override",
    )
    body = check_response(
        requests.post(api.url + "/predict?top_k=2&threshold=0", files={"file": image}, timeout=TIMEOUT), "/predict", "post"
    )
    assert_prediction(body, api, top_k=2)
    assert body["needs_review"] is False
    assert (body["band"], body["threshold"]) == ("auto", 0.0)
    body = check_response(
        requests.post(api.url + "/predict", files={"file": image}, data={"top_k": "2"}, timeout=TIMEOUT), "/predict", "post"
    )
    assert len(body["top_k"]) == 2
    # no request threshold, a manifest without thresholds: CONFIDENCE_THRESHOLD (0.5 here) for every class
    assert (body["threshold"], body["check_threshold"], body["threshold_source"]) == (0.5, 0.5, "global")
    assert body["band"] == ("auto" if body["confidence"] >= 0.5 else "review") and body["needs_review"] is (
        body["band"] != "auto"
    )


def test_attributes_asked_of_a_category_only_model_give_an_empty_object_and_a_note(api: Service) -> None:
    image = make_photo_like(seed=8)
    plain = check_response(post_json(api, "/predict", {"image": b64(image)}), "/predict", "post")
    assert "attributes" not in plain and "attributes_note" not in plain  # unchanged without the parameter
    for response in (
        post_json(api, "/predict", {"image": b64(image), "attributes": True}),
        requests.post(api.url + "/predict?attributes=1", files={"file": image}, timeout=TIMEOUT),
        requests.post(api.url + "/predict", files={"file": image}, data={"attributes": "yes"}, timeout=TIMEOUT),
    ):
        body = check_response(response, "/predict", "post")
        assert body["attributes"] == {} and "no attribute heads" in body["attributes_note"]
        assert body["category"] == plain["category"]  # the category answer stands
    batch = check_response(
        post_json(api, "/predict_batch", {"images": [b64(image)], "attributes": True}), "/predict_batch", "post"
    )
    assert batch["results"][0]["attributes"] == {}
    check_error(post_json(api, "/predict", {"image": b64(image), "attributes": "perhaps"}), 400, "bad_request")
    check_error(post_json(api, "/predict", {"image": b64(image), "attributes": 1}), 400, "bad_request")


def test_informational_routes(api: Service) -> None:
    body = check_response(requests.get(api.url + "/health", timeout=TIMEOUT), "/health")
    assert body == {"status": "ok"}
    body = check_response(requests.get(api.url + "/ready", timeout=TIMEOUT), "/ready")
    assert body == {"status": "ready", "model_version": api.model_version}
    body = check_response(requests.get(api.url + "/classes", timeout=TIMEOUT), "/classes")
    assert body["classes"] == api.labels
    body = check_response(requests.get(api.url + "/model", timeout=TIMEOUT), "/model")
    assert body["manifest"]["version"] == api.model_version and body["manifest"]["labels"] == api.labels
    body = check_response(requests.get(api.url + "/", timeout=TIMEOUT), "/")
    assert "/predict" in body["endpoints"]
    document = check_response(requests.get(api.url + "/openapi.json", timeout=TIMEOUT), "/openapi.json")
    assert document["openapi"].startswith("3.")
    assert set(body["endpoints"]) == set(document["paths"])


def test_not_found_and_method_not_allowed(api: Service) -> None:
    check_error(requests.get(api.url + "/nope", timeout=TIMEOUT), 404, "not_found")
    check_error(requests.get(api.url + "/predict", timeout=TIMEOUT), 405, "method_not_allowed")
    check_response(requests.get(api.url + "/predict", timeout=TIMEOUT), "/predict", "post")
    check_error(requests.post(api.url + "/health", timeout=TIMEOUT), 405, "method_not_allowed")


def test_malformed_requests_are_400(api: Service) -> None:
    url = api.url + "/predict"
    headers = {"content-type": "application/json"}
    for data in (b"{not json", b"[1, 2]", b'{"image": 5}', b'{"image": "***"}', b'{"other": 1}', b"\xff\xfe"):
        check_response(requests.post(url, data=data, headers=headers, timeout=TIMEOUT), "/predict", "post")
        check_error(requests.post(url, data=data, headers=headers, timeout=TIMEOUT), 400, "bad_request")
    image = b64(make_photo_like())
    for options in ({"top_k": 0}, {"top_k": "x"}, {"threshold": 2}, {"threshold": "nan"}):
        check_error(post_json(api, "/predict", {"image": image, **options}), 400, "bad_request")
    check_error(requests.post(url, files={"other": b"x"}, timeout=TIMEOUT), 400, "bad_request")
    check_error(requests.post(url, files=[("file", b"a"), ("file", b"b")], timeout=TIMEOUT), 400, "bad_request")
    check_error(requests.post(url, files={"file": b""}, timeout=TIMEOUT), 400, "empty")


def test_unsupported_media_type_and_not_an_image_are_415(api: Service) -> None:
    check_error(requests.post(api.url + "/predict", data=b"raw", headers={"content-type": "text/plain"}, timeout=TIMEOUT), 415)
    response = requests.post(api.url + "/predict", files={"file": ("x.jpg", b"this is not a photo" * 10)}, timeout=TIMEOUT)
    check_response(response, "/predict", "post")
    check_error(response, 415, "not_an_image")


def test_undecodable_images_are_422(api: Service) -> None:
    truncated = truncate(make_noise_image("JPEG", size=(200, 200)), 0.3)
    check_error(requests.post(api.url + "/predict", files={"file": truncated}, timeout=TIMEOUT), 422)
    check_error(post_json(api, "/predict", {"image": b64(make_png_bomb())}), 422, "too_many_pixels")
    check_error(post_json(api, "/predict", {"image": b64(make_noise_image("PNG", size=(4, 4)))}), 422, "too_small")


def test_size_limits_are_413(api: Service) -> None:
    big_image = b"\xff\xd8" + b"\0" * (MAX_IMAGE_BYTES + 10)  # over the per-image limit, under the request limit
    check_error(requests.post(api.url + "/predict", files={"file": big_image}, timeout=TIMEOUT), 413, "too_large")
    check_error(post_json(api, "/predict", {"image": b64(big_image)}), 413, "too_large")
    huge = b"\0" * (MAX_REQUEST_BYTES + 10)
    response = requests.post(api.url + "/predict", files={"file": huge}, timeout=TIMEOUT)
    check_response(response, "/predict", "post")
    check_error(response, 413, "request_too_large")
    body = json.dumps({"image": "A" * (MAX_REQUEST_BYTES + 10)})
    check_error(
        requests.post(api.url + "/predict", data=body, headers={"content-type": "application/json"}, timeout=TIMEOUT), 413
    )


def test_model_appears_and_hot_swaps_without_a_restart(services: dict[str, Service], tiny_model_dir) -> None:
    """The 'empty' instance answers 503 until a model is published, then
    serves it, and moves to a newer current version by itself."""
    empty = services["empty"]
    assert requests.get(empty.url + "/health", timeout=TIMEOUT).status_code == 200
    for path in ("/ready", "/classes", "/model"):
        response = requests.get(empty.url + path, timeout=TIMEOUT)
        check_response(response, path)
        check_error(response, 503, "model_unavailable")
    response = requests.post(empty.url + "/predict", files={"file": make_photo_like()}, timeout=TIMEOUT)
    check_response(response, "/predict", "post")
    check_error(response, 503, "model_unavailable")
    bucket = empty.storage().bucket(EMPTY_MODELS)
    for model_dir in (tiny_model_dir.int8_dir, tiny_model_dir.float32_dir):
        version = json.loads((model_dir / MANIFEST_FILE).read_text())["version"]
        for name in (MODEL_FILE, MANIFEST_FILE):
            bucket.blob(version_prefix(version) + name).upload_from_filename(str(model_dir / name))
        bucket.blob(POINTER).upload_from_string(pointer_payload(version), content_type="application/json")
        deadline = time.monotonic() + 15
        while requests.get(empty.url + "/ready", timeout=TIMEOUT).json().get("model_version") != version:
            assert time.monotonic() < deadline, f"{version} was not picked up"
            time.sleep(0.2)
        body = check_response(
            requests.post(empty.url + "/predict", files={"file": make_photo_like()}, timeout=TIMEOUT), "/predict", "post"
        )
        assert body["model_version"] == version


def test_serving_path_does_not_import_tensorflow() -> None:
    code = (
        "import sys, functions.main, functions.predict_api, functions.openapi, functions.model_cache;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


def test_openapi_document_schemas_are_valid_json_schema() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                assert 200 <= int(status) < 600, (path, method, status)
                Draft202012Validator.check_schema(response["content"]["application/json"]["schema"])
