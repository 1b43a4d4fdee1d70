"""Every bad-input corpus case (tests/reliability/corpus.py) sent to the HTTP
``predict`` function (functions-framework over HTTP), as a multipart upload,
as base64 JSON and inside a batch, gets the case's specific answer: 200 with a
prediction, or its own 4xx status with the JSON error code naming the
rejection reason; never a 5xx, never a stack trace."""

from __future__ import annotations

import base64

import pytest
import requests

from tests.predict.conftest import Service, check_error, check_response
from tests.reliability.corpus import CORPUS, Case

TIMEOUT = 60


def _check(response: requests.Response, case: Case, api: Service) -> None:
    assert response.status_code < 500, response.text
    body = check_response(response, "/predict", "post")
    if case.outcome == "sorted":
        assert response.status_code == 200, body
        assert body["category"] in api.labels and 0.0 <= body["confidence"] <= 1.0
    else:
        check_error(response, case.http_status, case.reason)


@pytest.mark.parametrize("case", CORPUS, ids=[case.kind for case in CORPUS])
def test_each_corpus_case_gets_its_status_and_reason(api: Service, case: Case) -> None:
    multipart = requests.post(api.url + "/predict", files={"file": (case.name, case.data, case.content_type)}, timeout=TIMEOUT)
    _check(multipart, case, api)
    as_json = requests.post(api.url + "/predict", json={"image": base64.b64encode(case.data).decode()}, timeout=TIMEOUT)
    _check(as_json, case, api)
    if case.outcome == "sorted":
        assert as_json.json()["all_probabilities"] == multipart.json()["all_probabilities"]


def test_a_batch_of_corpus_cases_answers_each_slot_with_its_own_status(api: Service) -> None:
    for start in range(0, len(CORPUS), 4):  # the test service takes at most 4 images per batch
        chunk = CORPUS[start : start + 4]
        response = requests.post(
            api.url + "/predict_batch",
            json={"images": [base64.b64encode(case.data).decode() for case in chunk]},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["index"] for r in results] == list(range(len(chunk)))
        for case, result in zip(chunk, results, strict=True):
            assert result["status"] == case.http_status, (case.kind, result)
            if case.outcome == "rejected":
                assert result["error"]["code"] == case.reason, (case.kind, result)
            else:
                assert result["category"] in api.labels
