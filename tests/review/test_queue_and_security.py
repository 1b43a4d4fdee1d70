"""The queue (filters, orders, paging, progress), one item, the labels and
the reviewer, the signed image URLs, the page's headers, and uploader-controlled
strings (HTML and script in names and metadata) coming back verbatim as JSON
strings."""

from __future__ import annotations

import time

from shared import records as rec
from tests.images import make_photo_like
from tests.pipeline.conftest import INCOMING
from tests.review.conftest import REVIEWER, ReviewStack

CSP = (
    "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HOSTILE_NAME = "<script>alert('name')</script>\"'&amp;.jpg"
HOSTILE_METADATA = {"note": "<img src=x onerror=alert(1)>", "sku": "<b onmouseover=alert(2)>SKU-1</b>", 'x"><svg>': "&lt;"}


def all_pages(stack: ReviewStack, query: str, page_size: int) -> list[dict]:
    items, token = [], None
    while True:
        suffix = f"&page_token={token}" if token else ""
        response = stack.get(f"/api/queue?{query}&page_size={page_size}{suffix}")
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items


def test_queue_pages_orders_and_filters(stack: ReviewStack):
    ids = {stack.item() for _ in range(5)}
    whole = stack.get("/api/queue?page_size=200").json()
    assert ids <= {item["id"] for item in whole["items"]}
    assert whole["progress"]["remaining"] == len(whole["items"]) and whole["next_page_token"] is None
    assert isinstance(whole["progress"]["done_today"], int)
    for order in ("oldest", "uncertain"):
        paged = all_pages(stack, f"order={order}", 2)
        assert len(paged) == len({i["id"] for i in paged}) == len(whole["items"])
        key = (lambda i: i["created_at"]) if order == "oldest" else (lambda i: i["margin"])
        assert [key(i) for i in paged] == sorted(key(i) for i in paged)
    item = next(i for i in whole["items"] if i["id"] in ids)
    assert set(item) == {
        "id", "source", "label", "confidence", "top_k", "band", "sku", "created_at", "destination", "image_url", "margin",
    }  # fmt: skip
    assert item["band"] == rec.BAND_REVIEW  # records without a band wait for manual review
    assert abs(item["margin"] - (item["top_k"][0]["score"] - item["top_k"][1]["score"])) < 1e-6
    label = item["label"]
    by_label = stack.get(f"/api/queue?category={label}&page_size=200").json()["items"]
    assert by_label and all(i["label"] == label for i in by_label)
    assert stack.get("/api/queue?band=check").json()["items"] == []
    assert len(stack.get("/api/queue?band=review&page_size=200").json()["items"]) == len(whole["items"])
    assert stack.get("/api/queue?older_than=3600").json()["items"] == []
    time.sleep(1.1)
    assert ids <= {i["id"] for i in stack.get("/api/queue?older_than=1&page_size=200").json()["items"]}
    decided = item["id"]
    assert stack.decide({"id": decided, "action": "approve"}).status_code == 200
    after = stack.get("/api/queue?page_size=200").json()
    assert decided not in {i["id"] for i in after["items"]}
    assert after["progress"]["remaining"] == whole["progress"]["remaining"] - 1
    assert after["progress"]["done_today"] >= whole["progress"]["done_today"] + 1


def test_item_labels_and_reviewer(stack: ReviewStack):
    doc_id = stack.item(metadata={"sku": "SKU-77"})
    item = stack.get(f"/api/items/{doc_id}").json()
    assert item["status"] == rec.NEEDS_REVIEW and item["review"] is None and item["sku"] == "SKU-77"
    assert item["metadata"]["sku"] == "SKU-77" and item["metadata"]["classification-id"] == doc_id
    assert stack.get("/api/labels").json() == {"labels": stack.labels}
    assert stack.get("/api/me").json() == {"reviewer": REVIEWER}
    stack.decide({"id": doc_id, "action": "reject", "reason": "r"})
    review = stack.get(f"/api/items/{doc_id}").json()["review"]
    assert review["decision"] == "rejected" and review["reviewed_at"].endswith("+00:00")


def test_image_urls_are_signed_and_expire(stack: ReviewStack):
    doc_id = stack.item(seed=4242)
    item = stack.get(f"/api/items/{doc_id}").json()
    image = stack.get(item["image_url"])
    assert image.status_code == 200 and image.content == make_photo_like(seed=4242)
    assert image.headers["content-type"] == "image/jpeg" and image.headers["x-content-type-options"] == "nosniff"
    now = int(time.time())
    expired = stack.get(stack.signed(doc_id, now - 5))
    assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]
    too_long = stack.get(stack.signed(doc_id, now + 3600))
    assert too_long.status_code == 403
    url = item["image_url"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert stack.get(tampered).status_code == 403
    other = stack.item()
    assert stack.get(url.replace(doc_id, other)).status_code == 403  # a signature is for one item
    assert stack.get(f"/api/items/{doc_id}/image").status_code == 403
    assert stack.signed(doc_id, int(url.split("exp=")[1].split("&")[0])) == url  # HMAC-SHA256 of "<id>\n<exp>"


def test_page_and_answers_carry_the_strict_headers(stack: ReviewStack):
    page = stack.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for response in (page, stack.get("/api/queue"), stack.get("/api/nothing")):
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"


def test_html_and_script_in_names_and_metadata_come_back_verbatim(stack: ReviewStack):
    doc_id = stack.item(name=HOSTILE_NAME, metadata=HOSTILE_METADATA)
    detail = stack.get(f"/api/items/{doc_id}")
    assert detail.headers["content-type"].startswith("application/json")
    body = detail.json()
    assert body["source"]["name"] == HOSTILE_NAME and body["source"]["bucket"] == INCOMING
    assert body["sku"] == HOSTILE_METADATA["sku"]
    assert {k: body["metadata"][k] for k in HOSTILE_METADATA} == HOSTILE_METADATA
    assert body["destination"]["name"].endswith(HOSTILE_NAME)
    queued = [i for i in stack.get("/api/queue?page_size=200").json()["items"] if i["id"] == doc_id]
    assert queued[0]["source"]["name"] == HOSTILE_NAME
    decided = stack.decide({"id": doc_id, "action": "reject", "reason": "<script>alert(3)</script>"})
    assert decided.status_code == 200
    assert decided.json()["results"][0]["review"]["reason"] == "<script>alert(3)</script>"
