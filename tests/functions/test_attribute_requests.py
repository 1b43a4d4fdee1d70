"""Attribute corrections and the attributes flag as requests carry them
(issue 19), pure logic: the review desk's request parsing, the predict
flag, the CLI's NAME=VALUE pairs."""

from __future__ import annotations

import pytest

from fashionctl.review import decisions, parse_attributes
from functions.predict_api import ApiError, parse_flag
from functions.review_desk import DecisionRequest, QueueQuery, ReviewError

ID = "a" * 40


def test_a_decision_carries_attribute_corrections_or_none() -> None:
    request = DecisionRequest.from_dict({"id": ID, "action": "approve", "attributes": {"colour": "black", "season": None}})
    assert request.attributes == {"colour": "black", "season": None}
    assert DecisionRequest.from_dict({"id": ID, "action": "approve"}).attributes is None


@pytest.mark.parametrize(
    "attributes",
    [
        "black",
        ["colour", "black"],
        {"colour": 3},
        {"colour": ""},
        {"": "black"},
        {"colour": "x" * 101},
        {f"a{n}": "x" for n in range(21)},
    ],
)
def test_malformed_corrections_are_a_bad_request(attributes: object) -> None:
    with pytest.raises(ReviewError) as caught:
        DecisionRequest.from_dict({"id": ID, "action": "approve", "attributes": attributes})
    assert caught.value.kind == ReviewError.INVALID and caught.value.code == "bad_request"


def test_a_rejection_takes_no_attributes() -> None:
    with pytest.raises(ReviewError, match="no attributes"):
        DecisionRequest.from_dict({"id": ID, "action": "reject", "reason": "x", "attributes": {"colour": "black"}})


def test_the_queue_filters_items_with_an_empty_attribute() -> None:
    assert QueueQuery.from_args({"attributes": "empty"}).attributes == "empty"
    assert QueueQuery.from_args({}).attributes is None
    with pytest.raises(ReviewError):
        QueueQuery.from_args({"attributes": "all"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (True, True),
        (False, False),
        ("true", True),
        ("1", True),
        ("YES", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_the_predict_flag_reads_json_and_text(value: object, expected: bool) -> None:
    assert parse_flag(value, "attributes") is expected


@pytest.mark.parametrize("value", ["maybe", 1, 0, [], {}])
def test_anything_else_is_a_400(value: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_flag(value, "attributes")
    assert caught.value.status == 400 and caught.value.code == "bad_request"


def test_the_cli_reads_name_value_pairs() -> None:
    assert parse_attributes(("colour=black", "season=", " usage = Casual ")) == {
        "colour": "black",
        "season": None,
        "usage": "Casual",
    }
    for bad in (("colour",), ("=black",), ("colour=a", "colour=b")):
        with pytest.raises(ValueError):
            parse_attributes(bad)
    made = decisions(["x", "y"], "approve", None, None, False, {"colour": "black"})
    assert [d["attributes"] for d in made] == [{"colour": "black"}, {"colour": "black"}]
    assert "attributes" not in decisions(["x"], "approve", None, None, False)[0]


def test_attribute_values_are_matched_case_insensitively_in_the_manifests_spelling() -> None:
    from types import SimpleNamespace

    from functions.review_desk import ReviewDesk
    from shared import records as rec

    vocabulary = {"gender": ["Men", "Women"], "colour": ["black", "blue"], "season": ["Fall", "Summer"]}
    desk = SimpleNamespace(attribute_labels=lambda _version: vocabulary)
    record = rec.Classification(model_version="m1")
    given = {"colour": "Blue", "gender": "women", "season": None}
    assert ReviewDesk._check_attributes(desk, record, given) == {"colour": "blue", "gender": "Women", "season": None}
    with pytest.raises(ReviewError) as caught:
        ReviewDesk._check_attributes(desk, record, {"colour": "teal"})
    assert caught.value.code == "unknown_attribute_value"


def test_the_cli_says_name_equals_for_empty_and_accepts_null() -> None:
    from fashionctl.review import render_result

    assert parse_attributes(["season=null", "usage=None", "colour="]) == {"season": None, "usage": None, "colour": None}
    refused = {
        "id": ID,
        "ok": False,
        "error": {
            "code": "unknown_attribute_value",
            "message": "'teal' is not a colour of model m1 (one of black, blue, or null)",
        },
    }
    text = render_result(refused)
    assert "or NAME= to leave it empty" in text and "null" not in text
