"""GET /stats: the Firestore counter shards summed by day, plus this
instance's request counters and latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from functions.predict_api import sum_shards
from shared.records import counter_fields, day_of, shard_path
from tests.images import make_photo_like
from tests.predict.conftest import API_KEY, MAX_REQUEST_BYTES, ORIGIN, Service, check_error, check_response
from tests.predict.test_predict_api import TIMEOUT


def _seed(api: Service, moment: datetime, shard: int, outcomes: list[tuple[str, str | None, str | None]]) -> None:
    counts: dict[str, int] = {}
    for status, label, reason in outcomes:
        for key, n in counter_fields(status, label, reason).items():
            counts[key] = counts.get(key, 0) + n
    api.firestore().document(*shard_path(moment, shard)).set(counts | {"day": day_of(moment)})


def test_stats_sums_the_shards_and_counts_requests(api: Service) -> None:
    today = datetime.now(UTC)
    yesterday = today - timedelta(days=1)
    shoes = api.labels[0]
    _seed(api, today, 0, [("classified", shoes, None), ("needs_review", shoes, None)])
    _seed(api, today, 3, [("rejected", None, "not_an_image"), ("classified", api.labels[1], None)])
    _seed(api, yesterday, 1, [("classified", shoes, None)])
    _seed(api, today - timedelta(days=5), 1, [("classified", shoes, None)])  # outside ?days=2
    for _ in range(3):
        requests.post(api.url + "/predict", files={"file": make_photo_like()}, timeout=TIMEOUT)
    response = requests.get(api.url + "/stats?days=2", timeout=TIMEOUT)
    body = check_response(response, "/stats")
    assert set(body["days"]) == {day_of(today), day_of(yesterday)}
    assert body["days"][day_of(today)]["total"] == 4
    assert body["totals"]["total"] == 5
    assert body["totals"]["category"] == {shoes: 3, api.labels[1]: 1}
    assert body["totals"]["status"] == {"classified": 3, "needs_review": 1, "rejected": 1}
    assert body["totals"]["rejection"] == {"not_an_image": 1}
    instance = body["instance"]
    assert instance["requests"]["POST /predict 200"] >= 3
    assert instance["latency_ms"]["count"] >= 3 and instance["latency_ms"]["p50"] > 0
    assert check_response(requests.get(api.url + "/stats", timeout=TIMEOUT), "/stats")["totals"]["total"] == 6


def test_stats_rejects_bad_days(api: Service) -> None:
    for days in ("0", "x", "91"):
        response = requests.get(api.url + f"/stats?days={days}", timeout=TIMEOUT)
        check_response(response, "/stats")
        check_error(response, 400, "bad_request")


def test_sum_shards_reads_nested_maps_too() -> None:
    totals = sum_shards([{"total": 2, "status": {"classified": 2}, "category": {"Heels": 2}, "day": "x"}, {"total": "bad"}])
    assert totals == {"total": 2, "status": {"classified": 2}, "category": {"Heels": 2}, "rejection": {}, "review": {}}


def _requests_counted(service: Service) -> dict[str, int]:
    response = requests.get(service.url + "/stats?days=1", headers={"X-API-Key": API_KEY}, timeout=TIMEOUT)
    return check_response(response, "/stats")["instance"]["requests"]


def test_requests_refused_before_routing_are_counted_and_carry_cors(services: dict[str, Service]) -> None:
    """A body over MAX_REQUEST_BYTES (refused before the API routes it) and a
    path the web framework keeps from the function (/favicon.ico) are counted
    in /stats like every other request, and answered in the one error shape
    with the CORS headers when CORS is on."""
    locked = services["locked"]  # API key and CORS on
    before = _requests_counted(locked)
    origin = {"Origin": ORIGIN, "X-API-Key": API_KEY}
    too_large = requests.post(
        locked.url + "/predict",
        data=b" " * (MAX_REQUEST_BYTES + 1),
        headers=origin | {"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    check_error(too_large, 413, "request_too_large")
    assert too_large.headers["Access-Control-Allow-Origin"] == ORIGIN
    framework = requests.get(locked.url + "/favicon.ico", headers=origin, timeout=TIMEOUT)
    check_error(framework, 404, "not_found")
    assert framework.headers["Access-Control-Allow-Origin"] == ORIGIN
    after = _requests_counted(locked)
    assert after.get("POST /predict 413", 0) == before.get("POST /predict 413", 0) + 1, after
    assert after.get("GET other 404", 0) == before.get("GET other 404", 0) + 1, after
    # without CORS configured, no CORS headers, still counted
    service = services["open"]
    quiet = requests.post(
        service.url + "/predict", data=b" " * (MAX_REQUEST_BYTES + 1), headers={"Origin": ORIGIN}, timeout=TIMEOUT
    )
    check_error(quiet, 413, "request_too_large")
    assert "Access-Control-Allow-Origin" not in quiet.headers
