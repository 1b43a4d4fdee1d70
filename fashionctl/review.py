"""``fashionctl review``: the review desk from the command line, through the
``review`` HTTP function of the local stack (``REVIEW_URL`` in the stack's env
file, or the environment), so that the CLI and the page go through the same
checks and the same core. The reviewer is the one the function knows
(``REVIEWER``, default the OS user running it).

Exit codes: 0 when every decision was applied (or already was), 1 when any
was refused or the desk cannot be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import requests

from shared.records import REVIEW_DECISION

#: the header the review function requires on decisions (CSRF check, functions/review_auth.py)
CSRF_HEADERS = {"X-Requested-With": "fashion-review"}
TIMEOUT = 60.0


class ReviewUnavailable(RuntimeError):
    """The review function cannot be reached, or answered an error (``status``, ``body``)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


class ReviewClient:
    """The review API at ``url`` (``http://127.0.0.1:8090`` for a default stack)."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise ReviewUnavailable(f"cannot reach the review desk at {self.url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 and not path.startswith("/api/decisions"):
            error = (body or {}).get("error") if isinstance(body, dict) else None
            message = error.get("message") if isinstance(error, dict) else response.text[:200]
            raise ReviewUnavailable(f"{method} {path}: {response.status_code} {message}", response.status_code, body)
        return response.status_code, body

    def queue(self, limit: int, **filters: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Up to ``limit`` items of the queue (pages followed), and the progress."""
        items: list[dict[str, Any]] = []
        token, progress = None, {}
        while len(items) < limit:
            params = {k: v for k, v in filters.items() if v is not None}
            params["page_size"] = min(200, limit - len(items))
            if token:
                params["page_token"] = token
            _status, body = self._call("GET", "/api/queue", params=params)
            items += body["items"]
            progress, token = body["progress"], body["next_page_token"]
            if not token:
                break
        return items, progress

    def item(self, doc_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/items/{doc_id}")[1]

    def decide(self, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One result per decision (``ok``, or ``error``), in order."""
        status, body = self._call("POST", "/api/decisions", json={"decisions": decisions}, headers=CSRF_HEADERS)
        if isinstance(body, dict) and "results" in body:
            return body["results"]
        if len(decisions) == 1 and isinstance(body, dict) and "error" in body:
            return [{"id": decisions[0].get("id"), "ok": False, "error": body["error"]}]
        raise ReviewUnavailable(f"POST /api/decisions: {status} {body}", status, body)


def decisions(
    ids: list[str],
    action: str,
    label: str | None,
    reason: str | None,
    change: bool,
    attributes: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """The request body's items for one action on several ids;
    ``attributes``: the attribute corrections each carries ({name: value or None})."""
    made = []
    for doc_id in ids:
        item: dict[str, Any] = {"id": doc_id, "action": action, "change": change}
        if label is not None:
            item["label"] = label
        if reason is not None:
            item["reason"] = reason
        if attributes:
            item["attributes"] = dict(attributes)
        made.append(item)
    return made


def parse_attributes(pairs: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """``("colour=black", "season=")`` -> ``{"colour": "black", "season": None}``
    (an empty value, or ``null``/``none``, leaves the attribute empty). Raises ValueError on a pair
    without ``=`` or a name given twice; the values are checked by the desk."""
    found: dict[str, str | None] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError(f"--attribute {pair!r}: expected NAME=VALUE (NAME= leaves it empty)")
        if name in found:
            raise ValueError(f"--attribute {name} given twice")
        found[name] = None if value.lower() in ("", "null", "none") else value
    return found


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "-"
    seconds = (now - datetime.fromisoformat(created)).total_seconds()
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def render_queue(items: list[dict[str, Any]], progress: Mapping[str, Any], now: datetime | None = None) -> Iterator[str]:
    """The queue as a table (names printed with ``repr``-like escaping of
    control characters); an ``attributes`` column (gender,colour,usage,season
    values, an empty one as ``?name``) when some item has attributes."""
    from shared.attributes import compact

    now = now or datetime.now(UTC)
    cells = [compact({k: (v or {}).get("value") for k, v in (item.get("attributes") or {}).items()}) for item in items]
    shown = any(item.get("attributes") for item in items)
    width = max([len(c) for c in cells] + [len("attributes")])
    extra = f"{'attributes':<{width}}  " if shown else ""
    yield f"{'id':<40}  {'band':<6} {'predicted':<14} {'conf':>6} {'margin':>6} {'age':>8}  {extra}file"
    for item, cell in zip(items, cells, strict=True):
        name = json.dumps((item.get("source") or {}).get("name"), ensure_ascii=False)[1:-1]
        confidence = item.get("confidence")
        conf = f"{confidence:.1%}" if isinstance(confidence, float) else "-"
        extra = f"{cell:<{width}}  " if shown else ""
        yield (
            f"{item['id']:<40}  {item.get('band') or '-':<6} {item.get('label') or '-':<14} {conf:>6} "
            f"{item.get('margin', 0):>6.3f} {_age(item.get('created_at'), now):>8}  {extra}{name}"
        )
    yield f"{len(items)} shown; {progress.get('remaining', 0)} waiting, {progress.get('done_today', 0)} decided today"


def render_result(result: Mapping[str, Any]) -> str:
    if result.get("ok"):
        review = result.get("review") or {}
        where = (result.get("destination") or {}).get("name")
        unchanged = " (already so: nothing moved)" if result.get("unchanged") else ""
        return f"{result['id']}: {review.get(REVIEW_DECISION)} -> {where}{unchanged}"
    error = result.get("error") or {}
    message = str(error.get("message"))
    if error.get("code") == "already_decided":  # the API names its body field; the CLI has a flag for it
        message = message.replace("send change: true", "pass --change")
    if error.get("code") == "unknown_attribute_value":  # the API's null is the CLI's NAME=
        message = message.replace(", or null)", ", or NAME= to leave it empty)")
    return f"{result.get('id')}: REFUSED {error.get('code')}: {message}"


def print_json(data: Any, out: TextIO | None = None) -> None:
    print(json.dumps(data, ensure_ascii=False, sort_keys=True), file=out or sys.stdout)


def render_attributes(attributes: Mapping[str, Any] | None) -> str:
    """An item's attributes for ``review show``, in ATTRIBUTES order, each
    ``name=value`` then who set it and the model's own answer, e.g.
    ``colour=blue (reviewer; model: black 93.7%)``, ``season=- (empty;
    model guess: Fall 41.0% < 60.0%)``; "-" when there are none."""
    from shared.attributes import in_order

    attributes = attributes or {}
    parts = []
    for name in in_order(attributes):
        entry = attributes.get(name) or {}
        model = entry.get("model")
        if model is None and "best" in entry and entry.get("best") is not None:  # an older server
            model = {
                "value": None if entry.get("low_confidence") else entry.get("value"),
                "best": entry.get("best"),
                "confidence": entry.get("confidence"),
                "threshold": entry.get("threshold"),
            }
        value = entry.get("value")
        who = "reviewer" if entry.get("corrected") else ("model" if value is not None else "empty")
        note = who
        if model:
            score = model.get("confidence")
            score_text = f" {score:.1%}" if isinstance(score, (int, float)) else ""
            if model.get("value") is None:
                threshold = model.get("threshold")
                below = f" < {threshold:.1%}" if isinstance(threshold, (int, float)) else ""
                note += f"; model left it empty, guess {model.get('best')}{score_text}{below}"
            elif entry.get("corrected"):
                note += f"; model: {model.get('value')}{score_text}"
            else:
                note += score_text
        parts.append(f"{name}={value if value is not None else '-'} ({note})")
    return ", ".join(parts) if parts else "-"
