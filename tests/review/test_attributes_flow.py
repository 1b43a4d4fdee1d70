"""Attributes beside the category (issue 19) through the running system: the
local stack (``fashionctl up``: emulators, bridge, classify, predict and
review functions, events on the Pub/Sub emulator) serving a tiny model with
the four attribute heads (tests/conftest.py ``tiny_multihead_model_dir``:
gender and usage always given, colour and season always left empty), every
photo sent to review. Checked through the real clients and over HTTP: the
record's ``attributes``, the processed copy's metadata, the completion events
(schema-validated), ``predict`` with and without ``attributes=true``, the
reviewer's corrections through the API, the CLI and the page (Playwright, in
Debian's Chromium), the training export's columns and the coverage reports."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

import localcloud
from fashionctl import cli
from fashionctl import results as results_cli
from reporting.build import summarize
from shared import copy_metadata as meta
from shared import records as rec
from shared import result_events as events
from tests.events.conftest import drain
from tests.images import make_photo_like
from tests.review.page_stack import Desk, chromium, chromium_or_skip, review_desk
from tests.review.test_page_browser import DESKTOP, TIMEOUT_MS, card, until

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / events.SCHEMA_FILE).read_text())
CSRF = {"X-Requested-With": "fashion-review"}
SUBSCRIPTION = "attributes-test-events"


def validate(event: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(event)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, tiny_multihead_model_dir: Any) -> Iterator[Desk]:
    with review_desk(tmp_path_factory.mktemp("attributes"), tiny_multihead_model_dir) as running:
        env = running.stack.env
        localcloud.create_topic_and_subscription(
            env["PUBSUB_EMULATOR_HOST"], env["GOOGLE_CLOUD_PROJECT"], env["EVENTS_TOPIC"], SUBSCRIPTION
        )
        yield running


def events_of(desk: Desk, record_id: str, event_type: str) -> list[dict]:
    env = desk.stack.env
    path = f"projects/{env['GOOGLE_CLOUD_PROJECT']}/subscriptions/{SUBSCRIPTION}"
    found = []
    for _ in range(10):
        found += [event for event, _ in drain(env["PUBSUB_EMULATOR_HOST"], path, quiet=2.0, timeout=30)]
        mine = [e for e in found if e["subject"] == record_id and e["type"] == event_type]
        if mine:
            return mine
    raise AssertionError(f"no {event_type} event for {record_id}")


def upload_one(desk: Desk, name: str, seed: int) -> tuple[str, dict[str, Any]]:
    doc_id = desk.upload(name, make_photo_like((48, 40), seed=seed))
    return doc_id, desk.wait_in_review([doc_id])[doc_id]


def blob_metadata(desk: Desk, name: str) -> dict[str, str]:
    blob = desk.stack.storage().bucket(desk.stack.processed).get_blob(name)
    assert blob is not None, name
    return dict(blob.metadata or {})


def decide(desk: Desk, *decisions: dict[str, Any]) -> requests.Response:
    return requests.post(desk.url + "/api/decisions", json={"decisions": list(decisions)}, headers=CSRF, timeout=120)


def test_the_record_the_processed_copy_and_the_finished_event_carry_the_attributes(desk: Desk, tiny_multihead_model_dir):
    model = tiny_multihead_model_dir
    doc_id, record = upload_one(desk, "attrs/first.jpg", 11)
    attributes = record[rec.Field.ATTRIBUTES]
    assert set(attributes) == set(model.attributes)
    for name, entry in attributes.items():
        assert set(entry) == set(rec.ATTRIBUTE_KEYS)
        assert entry["best"] in model.attributes[name] and 0.0 <= entry["confidence"] <= 1.0
        assert entry["threshold"] == model.thresholds[name]
        # threshold 0: given (the top class); threshold 1: never reached, left empty, never guessed
        assert entry["value"] == (entry["best"] if model.thresholds[name] == 0.0 else None)

    copy = blob_metadata(desk, record["destination"]["name"])
    for name, entry in attributes.items():
        if entry["value"] is None:
            assert meta.attribute_key(name) not in copy and copy[meta.attribute_flag_key(name)] == meta.LOW_CONFIDENCE
        else:
            assert copy[meta.attribute_key(name)] == entry["value"] and meta.attribute_flag_key(name) not in copy

    (event,) = events_of(desk, doc_id, events.FINISHED_TYPE)
    validate(event)
    assert event["data"]["attributes"] == attributes
    assert event["data"]["final_attributes"] == {name: entry["value"] for name, entry in attributes.items()}
    assert event["data"]["final_attributes"]["colour"] is None and event["data"]["final_attributes"]["gender"] is not None


def test_predict_answers_the_attributes_only_when_asked(desk: Desk, tiny_multihead_model_dir):
    url = desk.stack.env["PREDICT_URL"].rstrip("/") + "/predict"
    photo = make_photo_like((48, 40), seed=12)
    plain = requests.post(url, files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=60)
    assert plain.status_code == 200 and "attributes" not in plain.json()  # unchanged without the parameter
    asked = requests.post(url + "?attributes=true", files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=60).json()
    as_json = requests.post(url, json={"image": base64.b64encode(photo).decode(), "attributes": True}, timeout=60).json()
    assert asked["category"] == plain.json()["category"] and asked["attributes"] == as_json["attributes"]
    assert set(asked["attributes"]) == set(tiny_multihead_model_dir.attributes)
    colour, gender = asked["attributes"]["colour"], asked["attributes"]["gender"]
    assert (
        colour["value"] is None and colour["low_confidence"] and colour["best"] in tiny_multihead_model_dir.attributes["colour"]
    )
    assert gender["value"] == gender["best"] and not gender["low_confidence"]
    bad = requests.post(url + "?attributes=maybe", files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"


def test_a_reviewer_corrects_attributes_through_the_api(desk: Desk, tiny_multihead_model_dir):
    doc_id, record = upload_one(desk, "attrs/api.jpg", 13)
    labels = requests.get(desk.url + "/api/labels", timeout=30).json()
    assert labels["attributes"] == tiny_multihead_model_dir.attributes
    queue = requests.get(desk.url + "/api/queue", params={"attributes": "empty", "page_size": 200}, timeout=30).json()
    item = next(i for i in queue["items"] if i["id"] == doc_id)  # colour and season are empty: it is in the filtered queue
    assert item["attributes"]["colour"]["low_confidence"] and item["attributes"]["colour"]["value"] is None

    label = record["label"]
    refused = {
        "unknown_attribute_value": {"colour": "purple"},
        "unknown_attribute": {"shoe_size": "9"},
    }
    for code, attributes in refused.items():
        answer = decide(desk, {"id": doc_id, "action": "approve", "attributes": attributes})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text
    for body in (
        {"action": "reject", "reason": "x", "attributes": {"colour": "black"}},
        {"action": "approve", "attributes": "black"},
    ):
        answer = decide(desk, {"id": doc_id, **body})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_request", answer.text
    assert desk.record(doc_id)["status"] == rec.NEEDS_REVIEW  # nothing applied

    corrections = {"colour": "black", "season": None, "gender": "Women"}
    answer = decide(desk, {"id": doc_id, "action": "approve", "attributes": corrections})
    assert answer.status_code == 200 and answer.json()["results"][0]["ok"], answer.text
    stored = desk.record(doc_id)
    assert stored["status"] == rec.REVIEWED and stored["review"]["attributes"] == corrections
    assert stored["attributes"] == record["attributes"]  # the model's answer is kept
    final = {**{n: e["value"] for n, e in record["attributes"].items()}, **corrections}
    assert rec.Classification.from_firestore(stored).final_attributes == final

    copy = blob_metadata(desk, stored["destination"]["name"])
    assert copy[meta.attribute_key("colour")] == "black" and meta.attribute_flag_key("colour") not in copy
    assert meta.attribute_key("season") not in copy and copy[meta.attribute_flag_key("season")] == meta.CLEARED_BY_REVIEWER
    assert copy[meta.attribute_key("gender")] == "Women"
    assert copy[meta.attribute_key("usage")] == record["attributes"]["usage"]["value"]

    (event,) = events_of(desk, doc_id, events.DECIDED_TYPE)
    validate(event)
    assert event["data"]["review"]["attributes"] == corrections and event["data"]["final_attributes"] == final
    assert event["data"]["review"]["final_label"] == label

    shown = requests.get(desk.url + f"/api/items/{doc_id}", timeout=30).json()["attributes"]
    assert shown["colour"] == {**shown["colour"], "value": "black", "corrected": True}
    assert shown["usage"]["corrected"] is False


def test_fashionctl_review_sets_attributes(desk: Desk, capsys: pytest.CaptureFixture, tiny_multihead_model_dir):
    doc_id, record = upload_one(desk, "attrs/cli.jpg", 14)
    other = next(label for label in tiny_multihead_model_dir.labels if label != record["label"])
    state = str(desk.stack.state_dir)
    capsys.readouterr()
    assert cli.main(["review", "relabel", doc_id, "--label", other, "--attribute", "colour", "--state-dir", state]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    args = ["review", "relabel", doc_id, "--label", other, "--attribute", "colour=red", "--attribute", "season="]
    assert cli.main([*args, "--state-dir", state, "--json"]) == 0
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert result["ok"] and result["review"]["attributes"] == {"colour": "red", "season": None}
    stored = desk.record(doc_id)
    assert stored["review"]["final_label"] == other and stored["review"]["attributes"] == {"colour": "red", "season": None}
    bad = ["review", "relabel", doc_id, "--label", other, "--attribute", "colour=plaid", "--change"]
    assert cli.main([*bad, "--state-dir", state, "--json"]) == 1
    assert "unknown_attribute_value" in capsys.readouterr().out


def test_the_page_shows_low_confidence_attributes_and_the_reviewer_corrects_one(desk: Desk):
    chromium_or_skip()
    doc_id, record = upload_one(desk, "attrs/page.jpg", 15)
    with chromium() as browser:
        page = browser.new_page(**DESKTOP)
        try:
            page.goto(desk.url + "/?")
            until(page, "document.body.dataset.ready === 'true'")
            page.select_option("#attributes-filter", "empty")
            page.wait_for_selector(card(doc_id), timeout=TIMEOUT_MS)
            low = page.locator(f"{card(doc_id)} .attrs .attr-low[data-attribute='colour']")
            assert low.text_content() == "colour ?"
            page.click(f"{card(doc_id)} .name")
            until(page, f"document.querySelector('.card.current')?.dataset.id === '{doc_id}'")
            until(page, "document.getElementById('d-name').textContent === 'attrs/page.jpg'")  # its details, not another's
            page.wait_for_selector("#attr-colour", timeout=TIMEOUT_MS)
            note = page.locator("#d-attributes .attr-note.attr-low").first.text_content()
            assert "low confidence" in note
            page.keyboard.press("e")  # the keyboard way in: the first attribute's select
            assert page.evaluate("document.activeElement.id") == "attr-gender"
            page.select_option("#attr-colour", "blue")
            page.focus("#attr-colour")
            page.keyboard.press("Escape")  # back to the grid
            assert page.evaluate("document.activeElement.dataset.id") == doc_id
            page.keyboard.press("a")
            page.wait_for_selector(card(doc_id), state="detached", timeout=TIMEOUT_MS)
        finally:
            page.close()
    stored = desk.record(doc_id)
    assert stored["status"] == rec.REVIEWED and stored["review"]["attributes"] == {"colour": "blue"}
    assert stored["review"]["final_label"] == record["label"]


def test_the_export_and_the_reports_carry_the_attributes(desk: Desk, tmp_path: Path):
    from training import data as training_data
    from training import dataset_export as export
    from training.storage import open_store

    storage, db = desk.stack.storage(), desk.stack.firestore()
    filters = export.filters_from(reviewed_only=True, min_confidence=None, since=None, until=None, categories=[])
    result = export.export(export.read_records(db, filters), export.fetcher(storage), open_store(str(tmp_path)), filters)
    assert result.written >= 2
    text = (tmp_path / "styles.csv").read_text()
    rows = {row["record_id"]: row for row in csv.DictReader(io.StringIO(text))}
    reviewed = [rec.Classification.from_firestore(d.to_dict(), d.id) for d in db.collection(rec.COLLECTION).stream()]
    corrected = next(
        r for r in reviewed if (r.review or {}).get("attributes") == {"colour": "black", "season": None, "gender": "Women"}
    )
    row = rows[corrected.id]
    assert (row["baseColour"], row["colour_source"]) == ("black", "reviewer")
    assert (row["gender"], row["gender_source"]) == ("Women", "reviewer")
    assert (row["season"], row["season_source"]) == ("", "reviewer")  # a person left it empty
    assert (row["usage"], row["usage_source"]) == (corrected.attributes["usage"]["value"], "model")
    back = training_data.read_attributes(text.encode())[corrected.id]  # what attribute training reads
    assert back == {"gender": "Women", "colour": "black", "usage": corrected.attributes["usage"]["value"], "season": None}

    human = export.filters_from(
        reviewed_only=True, min_confidence=None, since=None, until=None, categories=[], human_attributes_only=True
    )
    export.export(export.read_records(db, human), export.fetcher(storage), open_store(str(tmp_path / "human")), human)
    row = {r["record_id"]: r for r in csv.DictReader((tmp_path / "human" / "styles.csv").open())}[corrected.id]
    assert (row["usage"], row["usage_source"]) == ("", "") and row["baseColour"] == "black"

    out = io.StringIO()
    results_cli.run(db, limit=200, out=out)
    assert "attributes: gender " in out.getvalue() and "colour" in out.getvalue() and "season" in out.getvalue()
    figures = summarize([rec.with_id(d) for d in db.collection(rec.COLLECTION).stream()]).attributes
    # colour is given only where a reviewer set it (API black, CLI red, page blue); season never is
    assert figures["colour"]["given"] == figures["colour"]["corrected"] == 3 and figures["colour"]["empty"] == 1  # first.jpg
    assert figures["gender"]["empty"] == 0 and figures["season"]["given"] == 0
