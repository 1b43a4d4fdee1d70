"""POST /predict_batch over HTTP: per-item results and errors."""

from __future__ import annotations

import requests

from tests.images import make_photo_like, truncate
from tests.predict.conftest import MAX_BATCH, MAX_IMAGE_BYTES, Service, check_error, check_response
from tests.predict.test_predict_api import TIMEOUT, b64, post_json


def test_multipart_batch_mixing_good_and_bad_images(api: Service) -> None:
    good = [make_photo_like(seed=s) for s in (1, 2)]
    bad = [b"not an image at all", truncate(make_photo_like(size=(200, 200), seed=9), 0.2), b"\xff\xd8" + b"\0" * MAX_IMAGE_BYTES]
    files = [("files", (f"{i}.jpg", data)) for i, data in enumerate([good[0], bad[0], good[1], bad[1]])]
    response = requests.post(api.url + "/predict_batch", files=files, timeout=TIMEOUT)
    body = check_response(response, "/predict_batch", "post")
    assert response.status_code == 200 and body["count"] == 4
    statuses = [item["status"] for item in body["results"]]
    assert statuses[0] == statuses[2] == 200
    assert statuses[1] == 415 and body["results"][1]["error"]["code"] == "not_an_image"
    assert statuses[3] == 422
    assert [item["index"] for item in body["results"]] == [0, 1, 2, 3]
    single = requests.post(api.url + "/predict", files={"file": good[0]}, timeout=TIMEOUT).json()
    assert body["results"][0]["all_probabilities"] == single["all_probabilities"]
    response = post_json(api, "/predict_batch", {"images": [b64(good[0]), b64(bad[2]), "***", 7], "top_k": 1})
    body = check_response(response, "/predict_batch", "post")
    assert [item["status"] for item in body["results"]] == [200, 413, 400, 400]
    assert len(body["results"][0]["top_k"]) == 1


def test_batch_errors(api: Service) -> None:
    image = b64(make_photo_like())
    check_error(post_json(api, "/predict_batch", {"images": [image] * (MAX_BATCH + 1)}), 413, "too_many_images")
    check_error(post_json(api, "/predict_batch", {"images": []}), 400, "bad_request")
    check_error(post_json(api, "/predict_batch", {"image": image}), 400, "bad_request")
    check_error(post_json(api, "/predict_batch", {"images": [image], "top_k": -1}), 400, "bad_request")
    check_error(requests.post(api.url + "/predict_batch", files={"file": b"x"}, timeout=TIMEOUT), 400, "bad_request")
    check_error(requests.get(api.url + "/predict_batch", timeout=TIMEOUT), 405, "method_not_allowed")
