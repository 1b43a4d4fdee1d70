"""Bad requests get a 4xx with a JSON reason, and nothing moves: neither the
record nor any file of the processed bucket."""

from __future__ import annotations

import pytest
import requests

from tests.review.conftest import CSRF, ReviewStack


@pytest.fixture(scope="module")
def waiting(stack: ReviewStack) -> str:
    """An item waiting for review, left undecided by every test here."""
    return stack.item()


@pytest.fixture(scope="module")
def decided(stack: ReviewStack) -> str:
    doc_id = stack.item()
    assert stack.decide({"id": doc_id, "action": "reject", "reason": "blurred"}).status_code == 200
    return doc_id


def check_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    assert "Traceback" not in response.text


def post_raw(stack: ReviewStack, data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        stack.review_url + "/api/decisions",
        data=data,
        headers={**CSRF, "Content-Type": "application/json", **(headers or {})},
        timeout=60,
    )


def test_unknown_id(stack: ReviewStack, waiting: str):
    snapshot = stack.snapshot(waiting)
    check_error(stack.decide({"id": "f" * 40, "action": "approve"}), 404, "not_found")
    check_error(stack.get("/api/items/" + "f" * 40), 404, "not_found")
    check_error(stack.get("/api/items/__reserved__"), 404, "not_found")
    assert stack.snapshot(waiting) == snapshot


def test_unknown_label(stack: ReviewStack, waiting: str):
    snapshot = stack.snapshot(waiting)
    check_error(stack.decide({"id": waiting, "action": "relabel", "label": "Spacesuits"}), 400, "unknown_label")
    check_error(stack.decide({"id": waiting, "action": "relabel"}), 400, "bad_request")
    assert stack.snapshot(waiting) == snapshot


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{",
        b"[]",
        b"{}",
        b'{"decisions": []}',
        b'{"decisions": "approve"}',
        b'{"decisions": [42]}',
        b'{"decisions": [{"action": "approve"}]}',
        b'{"decisions": [{"id": "ID", "action": "bless"}]}',
        b'{"decisions": [{"id": "ID", "action": "approve", "change": "yes"}]}',
        b'{"decisions": [{"id": "ID", "action": "approve", "colour": "red"}]}',
        b'{"decisions": [{"id": "ID", "action": "relabel", "label": 7}]}',
        b'{"decisions": [{"id": "ID", "action": "reject", "reason": ["x"]}]}',
        b'{"decisions": [{"id": "../ID", "action": "approve"}]}',
        b'{"decisions": [{"id": "__ID__", "action": "approve"}]}',
        b'{"decisions": [{"id": ".", "action": "approve"}]}',
    ],
)
def test_malformed_body(stack: ReviewStack, waiting: str, body: bytes):
    snapshot = stack.snapshot(waiting)
    check_error(post_raw(stack, body.replace(b"ID", waiting.encode())), 400, "bad_request")
    assert stack.snapshot(waiting) == snapshot


def test_decided_item(stack: ReviewStack, decided: str):
    snapshot = stack.snapshot(decided)
    check_error(stack.decide({"id": decided, "action": "approve"}), 409, "already_decided")
    check_error(stack.decide({"id": decided, "action": "relabel", "label": stack.labels[0]}), 409, "already_decided")
    assert stack.snapshot(decided) == snapshot


def test_missing_csrf_header_or_foreign_origin(stack: ReviewStack, waiting: str):
    snapshot = stack.snapshot(waiting)
    decision = {"id": waiting, "action": "approve"}
    check_error(stack.decide(decision, headers={}), 403, "forbidden")
    check_error(stack.decide(decision, headers={"X-Requested-With": "XMLHttpRequest"}), 403, "forbidden")
    check_error(stack.decide(decision, headers={**CSRF, "Origin": "https://evil.example"}), 403, "forbidden")
    check_error(stack.decide(decision, headers={**CSRF, "Origin": "null"}), 403, "forbidden")
    assert stack.snapshot(waiting) == snapshot
    host = stack.review_url.removeprefix("http://")
    same_origin = stack.decide({"id": "e" * 40, "action": "approve"}, headers={**CSRF, "Origin": f"http://{host}"})
    check_error(same_origin, 404, "not_found")  # past the CSRF check


def test_bad_queue_parameters_and_routes(stack: ReviewStack):
    for query in ("band=auto", "order=random", "page_size=0", "page_size=x", "older_than=-1", "page_token=garbage", "colour=red"):
        check_error(stack.get("/api/queue?" + query), 400, "bad_request")
    check_error(stack.get("/api/nothing"), 404, "not_found")
    check_error(requests.delete(stack.review_url + "/api/decisions", timeout=30), 405, "method_not_allowed")
    check_error(requests.get(stack.review_url + "/api/decisions", timeout=30), 405, "method_not_allowed")
    check_error(stack.get("/../../etc/passwd"), 404, "not_found")
