"""Reads the per-day counter shards (``stats/<day>/shards/*``, shared/records.py) for ``/stats``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from google.auth.exceptions import DefaultCredentialsError

from functions.dependencies import DEPENDENCY_ERRORS
from functions.predict_api import ApiError
from shared import records as rec

log = logging.getLogger(__name__)
#: seconds one read of a day's shards may take
READ_TIMEOUT = 10.0


def stats_reader(connect: Callable[[], Any]) -> Callable[[list[str]], dict[str, list[dict]]]:
    """``read(days) -> {day: [shard documents]}`` (days as YYYY-MM-DD) over
    the Firestore client ``connect()`` returns, called at each read (cache it
    there): ``predict`` needs Firestore for ``/stats`` only, so it builds no
    client, and needs no credentials, until the first read. Raises ApiError
    503 ``stats_unavailable`` when Firestore is unavailable."""

    def read(days: list[str]) -> dict[str, list[dict]]:
        try:
            db = connect()
            return {
                day: [s.to_dict() or {} for s in db.collection(rec.STATS, day, rec.SHARDS).stream(timeout=READ_TIMEOUT)]
                for day in days
            }
        except (*DEPENDENCY_ERRORS, DefaultCredentialsError) as exc:
            log.warning("cannot read the statistics: %s", exc)
            raise ApiError(503, "stats_unavailable", "the statistics store is unavailable; retry later") from None

    return read


def backlog_reader(connect: Callable[[], Any]) -> Callable[[int], dict[str, Any]]:
    """``read(days) -> the review backlog`` (shared.review_backlog.Backlog.to_dict():
    the items waiting, and the decisions of the last ``days`` days) over the
    Firestore client ``connect()`` returns. Raises ApiError 503
    ``stats_unavailable`` when Firestore is unavailable."""

    def read(days: int) -> dict[str, Any]:
        from functions.review_desk import read_backlog

        try:
            return read_backlog(connect(), timeout=READ_TIMEOUT, days=days).to_dict()
        except (*DEPENDENCY_ERRORS, DefaultCredentialsError) as exc:
            log.warning("cannot read the review backlog: %s", exc)
            raise ApiError(503, "stats_unavailable", "the statistics store is unavailable; retry later") from None

    return read
