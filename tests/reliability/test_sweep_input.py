"""The ``sweep`` HTTP function (functions-framework over HTTP) answers bad
request bodies with a JSON 400 before touching any dependency, including the
two kinds that used to escape as 500s: numbers too large for an integer
(``1e400`` is JSON's infinity) and JSON nested deeper than the parser's
recursion limit. The function runs with its dependencies pointing at a
closed port: these answers come from validation alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

import localcloud
from tests.emulators import free_port
from tests.pipeline.conftest import REPO, function_env

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def sweep_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("sweep-input")
    env = function_env(f"http://{CLOSED}", CLOSED, logs / "cache")
    proc = localcloud.start_http_function(REPO / "functions" / "main.py", "sweep", free_port(), logs, env, name="sweep-input")
    try:
        localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
        yield proc.url or ""
    finally:
        localcloud.stop(proc)


BAD_BODIES = {
    "limit_infinity": b'{"limit": 1e400}',
    "report_days_infinity": b'{"report_days": -1e400}',
    "limit_nan": b'{"limit": NaN}',
    "deep_array": b"[" * 100_000,
    "deep_object": b'{"a":' * 50_000,
    "not_json": b"{not json",
    "not_an_object": b"[1, 2]",
    "unknown_option": b'{"bogus": 1}',
    "budget_negative": b'{"budget": -1}',
    "min_age_text": b'{"min_age": "soon"}',
    "dry_run_text": b'{"dry_run": "yes"}',
    "max_age_below_min_age": b'{"min_age": 10, "max_age": 5}',
    "report_days_too_many": b'{"report_days": 91}',
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_sweep_bodies_are_json_400(sweep_url: str, body: bytes) -> None:
    response = requests.post(sweep_url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error"} and "Traceback" not in response.text
    error = response.json()["error"]  # the one error shape of every function
    assert set(error) == {"code", "message"} and error["code"] == "bad_request" and error["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_json_405(sweep_url: str, method: str) -> None:
    response = requests.request(method, sweep_url, timeout=30)
    assert response.status_code == 405 and response.json() == {"error": {"code": "method_not_allowed", "message": "use POST"}}
    assert response.headers["Allow"] == "POST"
