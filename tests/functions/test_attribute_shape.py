"""An item's attributes after a reviewer's correction (issue 19): the
model's answer stays under its own keys, the reviewer's value is marked, and
``review show`` says who set what."""

from __future__ import annotations

from fashionctl.review import render_attributes
from functions.review_api import attributes_body
from shared import records as rec

MODEL = {
    "colour": {"value": "black", "confidence": 0.937, "threshold": 0.6, "best": "black"},
    "gender": {"value": "Men", "confidence": 0.9, "threshold": 0.5, "best": "Men"},
    "season": {"value": None, "confidence": 0.41, "threshold": 0.6, "best": "Fall"},
}


def record() -> rec.Classification:
    return rec.Classification(status=rec.REVIEWED, label="Tshirts", attributes=MODEL, review={"attributes": {"colour": "blue"}})


def test_a_correction_keeps_the_models_answer_apart() -> None:
    body = attributes_body(record())
    assert list(body) == ["gender", "colour", "season"]
    colour = body["colour"]
    assert colour["value"] == "blue" and colour["corrected"] and colour["source"] == "reviewer"
    assert colour["model"] == {"value": "black", "best": "black", "confidence": 0.937, "threshold": 0.6}
    # the older keys stay, for the page and older readers
    assert colour["best"] == "black" and colour["confidence"] == 0.937 and colour["low_confidence"] is False
    assert body["gender"]["source"] == "model" and not body["gender"]["corrected"]
    assert body["season"]["source"] is None and body["season"]["model"]["value"] is None


def test_review_show_says_who_set_each_attribute() -> None:
    text = render_attributes(attributes_body(record()))
    assert text.startswith("gender=Men (model 90.0%), colour=blue (reviewer; model: black 93.7%), ")
    assert "season=- (empty; model left it empty, guess Fall 41.0% < 60.0%)" in text
    assert render_attributes({}) == "-"


def test_review_list_shows_compact_attributes_with_the_empty_ones_marked() -> None:
    from fashionctl.review import render_queue

    item = {"id": "a" * 40, "band": "low", "label": "Tshirts", "confidence": 0.5, "margin": 0.1, "source": {"name": "x.jpg"}}
    lines = list(render_queue([{**item, "attributes": attributes_body(record())}], {}))
    assert "attributes" in lines[0].split()
    assert "Men,blue,?season" in lines[1] and lines[1].endswith("x.jpg")
    plain = list(render_queue([item], {}))  # a category-only model: as before
    assert "attributes" not in plain[0]


def test_events_tail_text_shows_the_final_attributes() -> None:
    from fashionctl.events import line

    final = {"season": "Fall", "colour": None, "gender": "Men", "usage": "Casual"}
    event = {"time": "t", "type": "fashion.classification.finished", "id": "e1", "data": {"id": "r1", "final_attributes": final}}
    text = line(event, {})
    assert "attrs=Men,?colour,Casual,Fall  record=r1" in text
    assert "attrs=" not in line({**event, "data": {"id": "r1"}}, {})
