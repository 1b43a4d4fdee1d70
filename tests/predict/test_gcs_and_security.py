"""gcs_uri inputs on fake-gcs-server, the API-key mode and CORS."""

from __future__ import annotations

import requests

from tests.images import make_photo_like
from tests.predict.conftest import API_KEY, ORIGIN, PHOTOS, PRIVATE, Service, check_error, check_response
from tests.predict.test_predict_api import TIMEOUT, assert_prediction, b64, post_json


def test_gcs_uri_on_the_allow_list(api: Service) -> None:
    image = make_photo_like(seed=11)
    api.storage().bucket(PHOTOS).blob("shop/a b.jpg").upload_from_string(image, content_type="image/jpeg")
    body = check_response(post_json(api, "/predict", {"gcs_uri": f"gs://{PHOTOS}/shop/a b.jpg", "top_k": 2}), "/predict", "post")
    assert_prediction(body, api, top_k=2)
    direct = post_json(api, "/predict", {"image": b64(image)}).json()
    assert body["all_probabilities"] == direct["all_probabilities"]


def test_gcs_uri_errors(api: Service) -> None:
    api.storage().bucket(PRIVATE).blob("secret.jpg").upload_from_string(make_photo_like(), content_type="image/jpeg")
    response = post_json(api, "/predict", {"gcs_uri": f"gs://{PRIVATE}/secret.jpg"})
    check_response(response, "/predict", "post")
    check_error(response, 403, "forbidden")
    check_error(post_json(api, "/predict", {"gcs_uri": "gs://no-such-bucket/x.jpg"}), 403, "forbidden")
    response = post_json(api, "/predict", {"gcs_uri": f"gs://{PHOTOS}/missing.jpg"})
    check_response(response, "/predict", "post")
    check_error(response, 404, "not_found")
    for uri in ("http://x/y", f"gs://{PHOTOS}", f"gs://{PHOTOS}/", 3):
        check_error(post_json(api, "/predict", {"gcs_uri": uri}), 400, "bad_request")
    both = {"gcs_uri": f"gs://{PHOTOS}/missing.jpg", "image": b64(make_photo_like())}
    check_error(post_json(api, "/predict", both), 400, "bad_request")


def test_api_key_mode(services: dict[str, Service]) -> None:
    locked = services["locked"]
    image = make_photo_like()
    assert requests.get(locked.url + "/health", timeout=TIMEOUT).status_code == 200  # liveness stays open
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = requests.post(locked.url + "/predict", files={"file": image}, headers=headers, timeout=TIMEOUT)
        check_response(response, "/predict", "post")
        check_error(response, 401, "unauthorized")
        check_error(requests.get(locked.url + "/classes", headers=headers, timeout=TIMEOUT), 401, "unauthorized")
    for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        response = requests.post(locked.url + "/predict", files={"file": image}, headers=headers, timeout=TIMEOUT)
        assert_prediction(check_response(response, "/predict", "post"), locked)
    # with auth off (the default) no key is needed
    assert requests.post(services["open"].url + "/predict", files={"file": image}, timeout=TIMEOUT).status_code == 200


def test_cors_off_by_default_and_configurable(services: dict[str, Service]) -> None:
    headers = {"Origin": ORIGIN}
    response = requests.get(services["open"].url + "/health", headers=headers, timeout=TIMEOUT)
    assert "Access-Control-Allow-Origin" not in response.headers
    locked = services["locked"]
    response = requests.get(locked.url + "/health", headers=headers, timeout=TIMEOUT)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    preflight = requests.options(
        locked.url + "/predict", headers=headers | {"Access-Control-Request-Method": "POST"}, timeout=TIMEOUT
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]
    other = requests.get(locked.url + "/health", headers={"Origin": "https://evil.example"}, timeout=TIMEOUT)
    assert "Access-Control-Allow-Origin" not in other.headers
    check_error(requests.options(services["open"].url + "/predict", timeout=TIMEOUT), 405, "method_not_allowed")
