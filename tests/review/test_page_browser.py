"""The review page in a real browser (Playwright driving Debian's Chromium)
against the local stack: uploads through google-cloud-storage wait for
review (threshold 1.0), a reviewer works the queue with the keyboard and the
touch buttons, and the records (Firestore emulator) and the processed bucket
(fake-gcs-server) show every decision. Skips, saying so, only where no
Chromium is installed."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from shared.labels import slugify
from shared.records import NEEDS_REVIEW, REVIEWED
from tests.review.page_stack import (
    REVIEWER,
    SCREENSHOT,
    Desk,
    chromium,
    chromium_or_skip,
    open_desk,
    photos,
    review_desk,
)

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
TABLET = {"viewport": {"width": 820, "height": 1180}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[Desk]:
    chromium_or_skip()  # before starting a stack for nothing
    with review_desk(tmp_path_factory.mktemp("review-page"), tiny_model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser(desk: Desk) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def card(doc_id: str) -> str:
    return f".card[data-id='{doc_id}']"


def processed_names(desk: Desk) -> set[str]:
    return {blob.name for blob in desk.stack.storage().list_blobs(desk.stack.processed)}


def wait_gone(page: Any, *ids: str) -> None:
    for doc_id in ids:
        page.wait_for_selector(card(doc_id), state="detached", timeout=TIMEOUT_MS)


def until(page: Any, expression: str, timeout: float = TIMEOUT_MS) -> None:
    """Polls a JavaScript expression until it is truthy. (Playwright's
    wait_for_function evaluates its string with eval inside the page, which
    the page's CSP rightly refuses; page.evaluate goes through the DevTools
    protocol instead.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def current_id(page: Any) -> str:
    return page.get_attribute(".card.current", "data-id")


def test_a_reviewer_approves_relabels_rejects_bulk_approves_and_undoes(desk: Desk, browser: Any, tmp_path):
    uploaded = {desk.upload(f"page/look-{i}.jpg", data): f"page/look-{i}.jpg" for i, data in enumerate(photos(6))}
    records = desk.wait_in_review(list(uploaded))
    labels = desk.stack.labels

    context, page, seen = open_desk(browser, desk.url, **DESKTOP)
    try:
        until(page, f"document.querySelectorAll('.card').length >= {len(uploaded)}", timeout=TIMEOUT_MS)
        # oldest first: the grid holds the six in the order their records were made
        ids = page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.id)")
        assert sorted(ids) == sorted(uploaded)
        created = [records[doc_id]["created_at"] for doc_id in ids]
        assert created == sorted(created)
        names = [uploaded[doc_id] for doc_id in ids]
        assert page.inner_text("#reviewer") == REVIEWER
        assert page.inner_text("#remaining") == "6"
        legend = page.locator("#legend li").all_inner_texts()
        assert [re.sub(r"\s+", " ", t).strip() for t in legend] == [f"{i + 1} {label}" for i, label in enumerate(labels)]
        first = page.locator(card(ids[0]))
        assert first.locator(".label").inner_text() == records[ids[0]]["label"]
        assert first.locator(".confidence").inner_text() == f"{records[ids[0]]['confidence'] * 100:.1f}%"
        assert first.locator(".name").inner_text() == names[0]
        until(page, "[...document.querySelectorAll('.thumb')].slice(0, 6).every(i => i.complete && i.naturalWidth > 0)")

        # a: approve the first (the current item when the page opens)
        assert current_id(page) == ids[0]
        page.keyboard.press("a")
        wait_gone(page, ids[0])
        assert current_id(page) == ids[1]

        # a number key: relabel the second to the first label that is not its own
        relabel_to = next(label for label in labels if label != records[ids[1]]["label"])
        page.keyboard.press(str(labels.index(relabel_to) + 1))
        wait_gone(page, ids[1])

        # x, j, x: select the third and the fourth; the screenshot shows the selection
        assert current_id(page) == ids[2]
        page.keyboard.press("x")
        page.keyboard.press("j")
        page.keyboard.press("x")
        assert page.inner_text("#selected-count") == "2 selected"
        until(page, f"document.getElementById('d-name').textContent === {names[3]!r}")
        page.wait_for_timeout(300)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        if target := os.environ.get("REVIEW_PAGE_SCREENSHOT"):
            shutil.copyfile(SCREENSHOT, target)

        # shift+a: approve the selection
        page.keyboard.press("Shift+A")
        wait_gone(page, ids[2], ids[3])
        assert current_id(page) == ids[4]

        # r: reject, with a reason asked in a dialog
        page.keyboard.press("r")
        page.wait_for_selector("#reject-dialog[open]")
        page.fill("#reject-reason", "several products in one photo")
        page.keyboard.press("Enter")
        wait_gone(page, ids[4])
        until(page, "document.getElementById('remaining').textContent === '1'", timeout=TIMEOUT_MS)
        rejected = desk.record(ids[4])
        assert rejected["review"]["decision"] == "rejected"
        assert rejected["destination"]["name"] == "rejected/" + names[4]

        # u: undo the rejection; the item comes back, and deciding again sends a change
        page.keyboard.press("u")
        page.wait_for_selector(card(ids[4]) + ".reopened", timeout=TIMEOUT_MS)
        assert current_id(page) == ids[4]
        page.keyboard.press("a")
        wait_gone(page, ids[4])
        until(page, "document.getElementById('remaining').textContent === '1'", timeout=TIMEOUT_MS)
        assert int(page.inner_text("#done-today")) >= 5
        assert page.locator("#status").inner_text().startswith("Approve " + names[4] + ": done")

        violations = page.evaluate("window.__cspViolations")
        assert violations == [], violations
        assert seen["errors"] == [] and seen["dialogs"] == []
        posts = [(url, headers) for url, headers in seen["posts"] if url.endswith("/api/decisions")]
        assert len(posts) == 5  # approve, relabel, the bulk approval, reject, the change after undo
        assert all(headers.get("x-requested-with") == "fashion-review" for _url, headers in posts)
    finally:
        context.close()

    final = {doc_id: desk.record(doc_id) for doc_id in ids}
    files = processed_names(desk)

    def filed(i: int, label: str) -> None:
        record = final[ids[i]]
        assert record["status"] == REVIEWED, record
        assert record["label"] == records[ids[i]]["label"] and record["confidence"] == records[ids[i]]["confidence"]
        assert record["review"]["final_label"] == label and record["review"]["reviewed_by"] == REVIEWER
        assert record["destination"]["name"] == f"{slugify(label)}/{names[i]}"
        assert record["destination"]["name"] in files
        assert records[ids[i]]["destination"]["name"] not in files  # moved, not copied

    for i in (0, 2, 3):
        filed(i, records[ids[i]]["label"])
        assert final[ids[i]]["review"]["decision"] == "approved" and final[ids[i]]["review"]["previous"] == []
    filed(1, relabel_to)
    assert final[ids[1]]["review"]["decision"] == "relabeled"
    filed(4, records[ids[4]]["label"])
    assert final[ids[4]]["review"]["decision"] == "approved"
    [earlier] = final[ids[4]]["review"]["previous"]
    assert earlier["decision"] == "rejected" and earlier["reason"] == "several products in one photo"
    assert "rejected/" + names[4] not in files
    # the sixth is untouched
    assert final[ids[5]]["status"] == NEEDS_REVIEW and not final[ids[5]].get("review")
    assert records[ids[5]]["destination"]["name"] in files


def test_on_a_tablet_the_grid_fits_and_touch_buttons_decide(desk: Desk, browser: Any):
    ids = [desk.upload(f"tablet/look-{i}.jpg", data) for i, data in enumerate(photos(2))]
    records = desk.wait_in_review(ids)
    context, page, seen = open_desk(browser, desk.url, **TABLET)
    try:
        page.wait_for_selector(card(ids[1]), timeout=TIMEOUT_MS)
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways on a tablet: {width}"
        columns = page.evaluate("getComputedStyle(document.getElementById('grid')).gridTemplateColumns.split(' ').length")
        assert columns >= 2
        for selector in (f"{card(ids[0])} button.approve", f"{card(ids[0])} button.reject", f"{card(ids[0])} .pick"):
            box = page.locator(selector).bounding_box()
            assert box and box["height"] >= 44 and box["width"] >= 44, (selector, box)
        page.locator(f"{card(ids[0])} button.approve").tap()
        wait_gone(page, ids[0])
        page.locator(f"{card(ids[1])} .relabel").select_option(
            next(label for label in desk.stack.labels if label != records[ids[1]]["label"])
        )
        wait_gone(page, ids[1])
        assert page.evaluate("window.__cspViolations") == [] and seen["errors"] == []
    finally:
        context.close()
    assert desk.record(ids[0])["review"]["decision"] == "approved"
    assert desk.record(ids[1])["review"]["decision"] == "relabeled"


def test_filters_order_and_a_conflict_shown_in_the_status_bar(desk: Desk, browser: Any):
    ids = [desk.upload(f"filters/look-{i}.jpg", data) for i, data in enumerate(photos(4))]
    records = desk.wait_in_review(ids)
    context, page, seen = open_desk(browser, desk.url, **DESKTOP)
    try:
        page.wait_for_selector(card(ids[-1]), timeout=TIMEOUT_MS)
        # most uncertain first: the smallest top-1/top-2 margin first
        page.select_option("#order", "uncertain")
        until(page, "document.querySelector('.card') !== null && document.querySelector('#status').hidden")
        page.wait_for_timeout(500)
        margins = page.eval_on_selector_all(".card .margin", "els => els.map(e => parseFloat(e.textContent.split(' ')[1]))")
        assert margins == sorted(margins) and len(margins) >= len(ids)
        # one category only
        label = records[ids[0]]["label"]
        page.select_option("#category", label)
        page.wait_for_timeout(500)
        until(page, "document.querySelector('#status').hidden")
        shown = page.locator(".card .label").all_inner_texts()
        assert shown and set(shown) == {label}
        page.select_option("#category", "")
        page.wait_for_selector(card(ids[1]), timeout=TIMEOUT_MS)

        # someone else relabels ids[1] meanwhile; approving it in the page is a 409 shown in the status bar
        other = next(x for x in desk.stack.labels if x != records[ids[1]]["label"])
        answer = requests.post(
            desk.url + "/api/decisions",
            json={"decisions": [{"id": ids[1], "action": "relabel", "label": other}]},
            headers={"X-Requested-With": "fashion-review"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["results"][0]["ok"], answer.text
        page.locator(f"{card(ids[1])} .meta").click()
        page.keyboard.press("a")
        page.wait_for_selector(f"{card(ids[1])}.reopened", timeout=TIMEOUT_MS)
        status = page.locator("#status")
        assert "error" in (status.get_attribute("class") or "")
        assert "Error 409 (already_decided)" in status.inner_text()
        assert "already_decided" in page.locator(f"{card(ids[1])} .card-error").inner_text()
        assert desk.record(ids[1])["review"]["decision"] == "relabeled"  # the page's approval changed nothing
        # deciding again overrides, with change: true
        page.keyboard.press("a")
        wait_gone(page, ids[1])
        final = desk.record(ids[1])
        assert final["review"]["decision"] == "approved"
        assert [p["decision"] for p in final["review"]["previous"]] == ["relabeled"]
        assert seen["errors"] == [] and page.evaluate("window.__cspViolations") == []
    finally:
        context.close()


HOSTILE_NAMES = [
    'xss/<img src=x onerror="window.__xss=1;alert(1)">.jpg',
    "xss/<script>window.__xss=2;alert(2)</script>.jpg",
]
HOSTILE_METADATA = {
    "title": "<img src=x onerror=window.__xss=3;alert(3)>",
    "note": "<script>window.__xss=4;alert(4)</script>",
    "link": "javascript:window.__xss=5",
}


def test_names_and_metadata_with_html_and_script_stay_inert_text(desk: Desk, browser: Any):
    data = photos(len(HOSTILE_NAMES))
    ids = [desk.upload(name, one, HOSTILE_METADATA) for name, one in zip(HOSTILE_NAMES, data, strict=True)]
    desk.wait_in_review(ids)
    context, page, seen = open_desk(browser, desk.url, **DESKTOP)
    try:
        for doc_id, name in zip(ids, HOSTILE_NAMES, strict=True):
            page.wait_for_selector(card(doc_id), timeout=TIMEOUT_MS)
            assert page.locator(f"{card(doc_id)} .name").inner_text() == name
            assert page.get_attribute(f"{card(doc_id)} .thumb", "alt") == name
            page.locator(f"{card(doc_id)} .meta").click()
            until(page, f"document.getElementById('d-name').textContent === {name!r}", timeout=TIMEOUT_MS)
            shown = dict(
                zip(
                    page.locator("#d-metadata th").all_inner_texts(),
                    page.locator("#d-metadata td").all_inner_texts(),
                    strict=True,
                )
            )
            for key, value in HOSTILE_METADATA.items():
                assert shown[key] == value
        page.wait_for_timeout(500)  # time for an injected onerror to fire, were there one
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert seen["dialogs"] == []
        assert page.locator("img[src='x']").count() == 0
        assert page.evaluate("document.scripts.length") == 1  # review.js only
        assert page.evaluate("[...document.querySelectorAll('a')].length") == 0
        assert page.evaluate("window.__cspViolations") == []
    finally:
        context.close()


def _directives(policy: str) -> dict[str, list[str]]:
    found = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found[words[0].lower()] = words[1:]
    return found


def test_the_page_sends_a_strict_content_security_policy(desk: Desk):
    page = requests.get(desk.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for answer in (page, requests.get(desk.url + "/api/labels", timeout=10), requests.get(desk.url + "/nope", timeout=10)):
        policy = _directives(answer.headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
        assert policy["img-src"][0] == "'self'" and all(src.startswith("https://") for src in policy["img-src"][1:])
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]
        everything = " ".join(w for words in policy.values() for w in words)
        for loose in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:"):
            assert loose not in everything.split(), loose
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    for asset, kind in (("review.js", "text/javascript"), ("review.css", "text/css")):
        answer = requests.get(f"{desk.url}/{asset}", timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(kind), asset
    # no CSRF header, no decision
    refused = requests.post(desk.url + "/api/decisions", json={"decisions": [{"id": "x", "action": "approve"}]}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
