"""Fuzzing the HTTP ``predict`` function with hypothesis over real HTTP
(functions-framework under gunicorn, as deployed): random methods, paths,
query strings, headers, JSON bodies (wrong types, huge and non-finite
numbers, deep nesting), raw bytes, multipart bodies and Content-Length
mismatches always get a JSON answer with status < 500 (the error schema for
4xx); with the API key on, nothing but /health answers without the key.

Paths that functions-framework's routes never pass to the function (a
newline in the path, ``/robots.txt``, ``/favicon.ico``) get a JSON 404 too.
The one exception: a request gunicorn refuses before any application code
runs (a lower-case method) gets gunicorn's HTML 400, asserted as such."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.images import make_photo_like
from tests.predict.conftest import MAX_REQUEST_BYTES, Service, check_error
from tests.reliability.conftest import fuzz_examples
from tests.reliability.corpus import CORPUS

TIMEOUT = 30
FRAMEWORK_PATHS = frozenset({"/robots.txt", "/favicon.ico"})
ROUTES = ["/", "/health", "/ready", "/classes", "/model", "/stats", "/openapi.json", "/predict", "/predict_batch"]
PHOTO = base64.b64encode(make_photo_like(seed=1)).decode()
SESSION = requests.Session()

# -- strategies -----------------------------------------------------------------

# printable ASCII; stripped, as requests refuses header values with edge spaces
_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
_methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    st.from_regex(r"[A-Z]{3,12}", fullmatch=True),
)
_paths = st.one_of(
    st.sampled_from(ROUTES),
    st.sampled_from(ROUTES).map(lambda route: route + "/"),
    st.lists(st.text(max_size=12), min_size=1, max_size=4).map(lambda parts: "/" + "/".join(quote(p, safe="") for p in parts)),
    st.sampled_from([*sorted(FRAMEWORK_PATHS), "/a%0Ab", "/%0A", "/x%0D%0Ay"]),
)
_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 3, 100, 101, 0.5, 1e400, -1e400, 2**63, True, False]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=30), st.just(PHOTO))
_json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
_image_values = st.one_of(
    st.just(PHOTO),
    st.sampled_from([base64.b64encode(case.data).decode() for case in CORPUS]),
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=40),
    _json_values,
)
_predict_bodies = st.fixed_dictionaries(
    {},
    optional={
        "image": _image_values,
        "gcs_uri": st.one_of(st.text(max_size=40), st.just("gs://it-photos/x.jpg"), st.just("gs://it-private/x.jpg"), _scalars),
        "images": st.one_of(st.lists(_image_values, max_size=6), _json_values),
        "top_k": st.one_of(_numbers, _json_values),
        "threshold": st.one_of(_numbers, _json_values),
    },
)
_json_bodies = st.one_of(_predict_bodies, _json_values)


def _deep(depth: int, opener: str) -> bytes:
    return (opener * depth).encode()


_raw_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=512),
    _json_bodies.map(lambda value: json.dumps(value, allow_nan=True).encode()),
    st.integers(1, 200_000).map(lambda depth: _deep(depth, "[")),
    st.integers(1, 100_000).map(lambda depth: _deep(depth, '{"a":')),
)
_content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "image/jpeg",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
        ]
    ),
    _header_text,
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": _content_types,
        "Accept": _header_text,
        "Origin": st.one_of(st.just("https://shop.example"), _header_text),
        "X-API-Key": _header_text,
        "Authorization": st.one_of(_header_text, _header_text.map(lambda t: "Bearer " + t)),
    },
)
_query = st.dictionaries(
    st.one_of(st.sampled_from(["top_k", "threshold", "days"]), st.text(max_size=8)),
    st.one_of(st.text(max_size=12), _numbers.map(str)),
    max_size=3,
)
_files = st.lists(
    st.tuples(
        st.sampled_from(["file", "files", "image", ""]),
        st.tuples(st.text(max_size=20), st.one_of(st.binary(max_size=256), st.sampled_from([c.data for c in CORPUS[:12]]))),
    ),
    max_size=5,
)
_form = st.dictionaries(
    st.sampled_from(["top_k", "threshold", "x"]), st.one_of(st.text(max_size=10), _numbers.map(str)), max_size=3
)


# -- checks ---------------------------------------------------------------------


def check_answer(response: requests.Response, method: str) -> None:
    """Status < 500; JSON, with the error schema for errors, except HEAD (no body)."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 204 or method == "HEAD":
        return
    assert response.headers.get("content-type", "").startswith("application/json"), response.text[:300]
    body = response.json()
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        check_error(response, response.status_code)
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]


def send(api: Service, method: str, path: str, **kwargs: Any) -> requests.Response:
    return SESSION.request(method, api.url + path, timeout=TIMEOUT, **kwargs)


# -- fuzz -----------------------------------------------------------------------


@settings(max_examples=fuzz_examples(300))
@given(method=_methods, path=_paths, query=_query, headers=_headers, body=_raw_bodies)
def test_any_request_gets_json_below_500(api: Service, method: str, path: str, query: dict, headers: dict, body: bytes) -> None:
    check_answer(send(api, method, path, params=query, headers=headers, data=body), method)


_json_texts = st.one_of(
    _json_bodies.map(lambda value: json.dumps(value, allow_nan=True).encode()),
    st.integers(1, 200_000).map(lambda depth: _deep(depth, "[")),
    st.integers(1, 100_000).map(lambda depth: _deep(depth, '{"a":')),
    st.binary(max_size=256),
)


@settings(max_examples=fuzz_examples(300))
@given(path=st.sampled_from(["/predict", "/predict_batch"]), data=_json_texts, query=_query)
def test_any_json_body_gets_json_below_500(api: Service, path: str, data: bytes, query: dict) -> None:
    response = send(api, "POST", path, params=query, data=data, headers={"Content-Type": "application/json"})
    check_answer(response, "POST")


@settings(max_examples=fuzz_examples(200))
@given(
    batch=st.booleans(),
    options=st.fixed_dictionaries(
        {}, optional={"top_k": st.one_of(_numbers, _json_values), "threshold": st.one_of(_numbers, _json_values)}
    ),
    query=_query,
)
def test_any_options_with_a_good_image_get_json_below_500(api: Service, batch: bool, options: dict, query: dict) -> None:
    """A valid image, so that the options are what gets parsed: JSON and query values of any type and size."""
    body = ({"images": [PHOTO]} if batch else {"image": PHOTO}) | options
    data = json.dumps(body, allow_nan=True).encode()
    path = "/predict_batch" if batch else "/predict"
    response = send(api, "POST", path, params=query, data=data, headers={"Content-Type": "application/json"})
    check_answer(response, "POST")
    if response.status_code == 200:
        top_k = options.get("top_k", query.get("top_k", 3))
        assert not isinstance(top_k, bool) and 1 <= int(float(top_k)) <= 100


@settings(max_examples=fuzz_examples(150))
@given(path=st.sampled_from(["/predict", "/predict_batch", "/"]), files=_files, form=_form, query=_query)
def test_any_multipart_body_gets_json_below_500(api: Service, path: str, files: list, form: dict, query: dict) -> None:
    response = send(api, "POST", path, params=query, files=files or None, data=form or None)
    check_answer(response, "POST")


@settings(max_examples=fuzz_examples(100))
@given(method=_methods, path=_paths, headers=_headers, body=_raw_bodies)
def test_with_the_api_key_on_nothing_but_health_answers_without_it(
    services: dict[str, Service], method: str, path: str, headers: dict, body: bytes
) -> None:
    locked = services["locked"]
    headers = {k: v for k, v in headers.items() if k not in ("X-API-Key", "Authorization")}
    response = send(locked, method, path, headers=headers, data=body)
    check_answer(response, method)
    if response.status_code < 300 and method not in ("OPTIONS",):
        assert (path.rstrip("/") or "/") == "/health", (method, path, response.status_code)


# -- Content-Length mismatches, over a raw socket ---------------------------------


def raw_exchange(url: str, request: bytes, timeout: float = 15) -> bytes:
    """Send ``request`` bytes, close our sending side, read the whole answer.

    A server may answer before it has read the whole body (a 413) and close
    the connection: sending then fails, and the answer may be lost to the
    reset; what was received is returned (possibly nothing)."""
    parts = urlsplit(url)
    chunks = []
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server stopped reading (broken pipe, reset); its answer may still be there
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    if not raw.startswith(b"HTTP/"):
        raise ValueError(f"no HTTP response: {raw[:40]!r}")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


@settings(max_examples=fuzz_examples(60))
@given(
    path=st.sampled_from(["/predict", "/predict_batch"]),
    payload=st.one_of(st.just({"image": PHOTO}), st.just({"images": [PHOTO]}), _predict_bodies),
    declared=st.integers(-3, 3).flatmap(lambda sign: st.integers(0, 2000).map(lambda n: n * sign)),
    content_type=st.sampled_from(["application/json", "multipart/form-data; boundary=b"]),
)
def test_content_length_mismatches_get_json_below_500(
    api: Service, path: str, payload: Any, declared: int, content_type: str
) -> None:
    body = json.dumps(payload).encode()
    length = max(0, len(body) + declared)  # longer than sent (the client hangs up early), shorter, or exact
    request = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + body
    started = time.perf_counter()
    status, headers, answer = parse_response(raw_exchange(api.url, request))
    assert time.perf_counter() - started < 10
    assert status < 500, answer[:300]
    assert headers["content-type"].startswith("application/json")
    parsed = json.loads(answer)
    assert ("error" in parsed) == (status >= 400)


def chunked(body: bytes, size: int = 65_536) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding (no Content-Length)."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def post_raw(api: Service, path: str, body: bytes, content_type: str, *, chunk: bool) -> tuple[int, dict[str, str], bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\n".encode()
    framing = b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body) if chunk else b"Content-Length: %d\r\n\r\n" % len(body) + body
    return parse_response(raw_exchange(api.url, head + framing))


@settings(max_examples=fuzz_examples(12))
@given(
    over=st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-64, 64), st.integers(65, MAX_REQUEST_BYTES)),
    chunk=st.booleans(),
    multipart=st.booleans(),
)
def test_bodies_around_the_request_limit_get_json_below_500(api: Service, over: int, chunk: bool, multipart: bool) -> None:
    """Regression: a body of exactly MAX_REQUEST_BYTES, or a chunked one over
    it, answered 500 (functions-framework re-read the exhausted, size-capped
    stream after the response)."""
    size = MAX_REQUEST_BYTES + over
    if multipart:
        pre = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        end = b"\r\n--b--\r\n"
        body, content_type = pre + b"x" * (size - len(pre) - len(end)) + end, "multipart/form-data; boundary=b"
    else:
        body, content_type = b" " * size, "application/json"
    assert len(body) == size
    try:
        status, headers, answer = post_raw(api, "/predict", body, content_type, chunk=chunk)
    except ValueError:  # nothing came back: the connection was reset while we were still sending
        assert chunk and size > MAX_REQUEST_BYTES, "only a chunked body over the limit may be cut off (413 before reading it all)"
        return
    assert status < 500 and headers["content-type"].startswith("application/json"), answer[:200]
    code = json.loads(answer)["error"]["code"]
    if size > MAX_REQUEST_BYTES:
        assert (status, code) == (413, "request_too_large")
    else:
        assert (status, code) == ((413, "too_large") if multipart else (400, "bad_request"))


@pytest.mark.parametrize("chunk", [False, True], ids=["content_length", "chunked"])
@pytest.mark.parametrize("over", [0, 1, 1000])
def test_a_body_at_or_over_the_request_limit_gets_json(api: Service, over: int, chunk: bool) -> None:
    status, _, answer = post_raw(api, "/predict", b" " * (MAX_REQUEST_BYTES + over), "application/json", chunk=chunk)
    assert (status, json.loads(answer)["error"]["code"]) == ((400, "bad_request") if over == 0 else (413, "request_too_large"))


# -- the defects this fuzzing found, as fixed regressions -------------------------------


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (b'{"image": "%s", "top_k": 1e400}' % PHOTO.encode(), "/predict"),  # int(inf): OverflowError
        (b'{"images": ["%s"], "top_k": -1e400}' % PHOTO.encode(), "/predict_batch"),
        (b"[" * 100_000, "/predict"),  # json.loads: RecursionError
        (b'{"a":' * 50_000, "/predict_batch"),
    ],
    ids=["top_k_infinity", "batch_top_k_minus_infinity", "deep_array", "deep_object"],
)
def test_regressions_found_by_fuzzing_are_400(api: Service, payload: bytes, path: str) -> None:
    response = send(api, "POST", path, data=payload, headers={"Content-Type": "application/json"})
    check_error(response, 400, "bad_request")


@pytest.mark.parametrize("path", [*sorted(FRAMEWORK_PATHS), "/predict%0A", "/%0A"])
def test_paths_the_framework_keeps_from_the_function_get_a_json_404(api: Service, path: str) -> None:
    """Regression: these got Flask's HTML 404 page (its path converter does not match a newline)."""
    check_error(send(api, "POST", path), 404, "not_found")


def test_a_method_gunicorn_refuses_never_reaches_the_function(api: Service) -> None:
    status, headers, _ = parse_response(raw_exchange(api.url, b"get /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 400 and headers["content-type"].startswith("text/html")
