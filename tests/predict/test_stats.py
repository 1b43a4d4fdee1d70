"""GET /stats: the Firestore counter shards summed by day, plus this
instance's request counters and latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from functions.predict_api import sum_shards
from shared.records import counter_fields, day_of, shard_path
from tests.images import make_photo_like
from tests.predict.conftest import Service, check_error, check_response
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
    assert totals == {"total": 2, "status": {"classified": 2}, "category": {"Heels": 2}, "rejection": {}}
