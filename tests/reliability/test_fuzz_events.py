"""Fuzzing the event function ``classify_upload`` (functions-framework over
HTTP, fake-gcs-server, Firestore emulator) with hypothesis-made CloudEvents:
any event type and any object resource (missing fields, wrong types, huge or
non-finite numbers, odd names, other buckets) is acknowledged with a 2xx,
never a 5xx (a 5xx makes Eventarc retry an event that retrying cannot fix).
An event that names a usable object version of the incoming bucket that does
not exist ends as one ``skipped`` record (source_gone); every other event is
ignored and leaves no record."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from google.cloud.firestore_v1.base_query import FieldFilter
from hypothesis import given, settings
from hypothesis import strategies as st

from localcloud.bridge import header_safe
from tests.pipeline.conftest import INCOMING, Pipeline
from tests.reliability.conftest import fuzz_examples

EVENT_TYPES = [
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.metadataUpdated",
    "google.cloud.storage.object.v1.deleted",
    "google.cloud.storage.object.v1.archived",
]
MAX_GENERATION = 2**63 - 1

_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**63, 1e400, True]),
)
_values = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=20), st.lists(st.integers(), max_size=2))
_names = st.one_of(
    st.text(min_size=1, max_size=60).map(lambda t: f"fuzz/{uuid.uuid4().hex[:8]}/{t}"),
    st.sampled_from(["", ".", "..", "/", "a/../b", "x" * 1100]),
    _values,
)
_generations = st.one_of(
    st.integers(1, MAX_GENERATION).map(str),
    st.integers(1, MAX_GENERATION),
    st.sampled_from(["0", "-5", str(2**63), "1e3", " 12", "0x10", "", "NaN"]),
    _values,
)
_resources = st.fixed_dictionaries(
    {},
    optional={
        "bucket": st.one_of(st.just(INCOMING), st.just(INCOMING), st.text(max_size=20), _values),
        "name": _names,
        "generation": _generations,
        "metageneration": _values,
        "size": st.one_of(st.integers(0, 10**6).map(str), _values),
        "contentType": st.one_of(st.just("image/jpeg"), _values),
    },
)
_bodies = st.one_of(_resources, _values)


def integer(value: Any) -> int | None:
    """A JSON integer or decimal string, else None (floats and bools are not generations or sizes)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def is_usable(resource: Any) -> bool:
    """What the function must treat as an object version of the incoming bucket."""
    if not isinstance(resource, dict) or resource.get("bucket") != INCOMING:
        return False
    name, generation = resource.get("name"), integer(resource.get("generation"))
    if not isinstance(name, str) or not name or len(name.encode()) > 1024 or name in (".", ".."):
        return False
    if generation is None or not 1 <= generation <= MAX_GENERATION:
        return False
    size = resource.get("size")
    if size in (None, ""):
        return True
    number = integer(size)
    return number is not None and number >= 0


def post(pipeline: Pipeline, ce_type: str, body: Any, subject: str) -> requests.Response:
    headers = {
        "ce-id": uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-type": ce_type,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{INCOMING}",
        "ce-subject": header_safe(subject),
        "ce-time": "2026-11-25T12:00:00Z",
        "content-type": "application/json",
    }
    return requests.post(pipeline.function_url, headers=headers, data=json.dumps(body, allow_nan=True), timeout=120)


def records_for(pipeline: Pipeline, name: str) -> list[dict]:
    query = pipeline.firestore().collection("classifications").where(filter=FieldFilter("source.name", "==", name))
    return [snapshot.to_dict() for snapshot in query.stream()]


@settings(max_examples=fuzz_examples(60))
@given(ce_type=st.sampled_from(EVENT_TYPES), body=_bodies)
def test_any_storage_event_is_acknowledged_and_recorded_only_when_usable(pipeline: Pipeline, ce_type: str, body: Any) -> None:
    name = body.get("name") if isinstance(body, dict) else None
    response = post(pipeline, ce_type, body, f"objects/{name}")
    assert response.status_code < 300, (response.status_code, response.text[:300], body)
    if isinstance(name, str) and name.startswith("fuzz/"):  # a name no other example uses
        records = records_for(pipeline, name)
        if is_usable(body):
            (record,) = records
            assert record["status"] == "skipped" and record["error"]["reason"] == "source_gone"
        else:
            assert records == [], body


@pytest.mark.parametrize(
    "resource",
    [
        {"bucket": INCOMING, "name": "fuzz/inf.jpg", "generation": 1e400},
        {"bucket": INCOMING, "name": "fuzz/big-size.jpg", "generation": "7", "size": 1e400},
        {"bucket": INCOMING, "name": "fuzz/too-big.jpg", "generation": str(2**64)},
        {"bucket": INCOMING, "name": "fuzz/zero.jpg", "generation": "0"},
        {"bucket": INCOMING, "name": "fuzz/negative.jpg", "generation": "-5"},
        {"bucket": INCOMING, "name": 12345, "generation": "7"},
        {"bucket": INCOMING, "name": "", "generation": "7"},
        {"bucket": INCOMING, "name": "x" * 1100, "generation": "7"},
        {"bucket": ["it-incoming"], "name": "fuzz/list-bucket.jpg", "generation": "7"},
        {"bucket": INCOMING, "name": "fuzz/float-generation.jpg", "generation": 7.5},
        {"bucket": INCOMING, "name": "fuzz/negative-size.jpg", "generation": "7", "size": "-1"},
    ],
    ids=[
        "generation_inf",
        "size_inf",
        "generation_2_64",
        "generation_0",
        "generation_negative",
        "name_int",
        "name_empty",
        "name_1100_bytes",
        "bucket_list",
        "generation_float",
        "size_negative",
    ],
)
def test_malformed_object_resources_are_acknowledged_and_ignored(pipeline: Pipeline, resource: dict) -> None:
    response = post(pipeline, EVENT_TYPES[0], resource, "objects/x")
    assert response.status_code == 200, response.text[:300]
    if isinstance(resource["name"], str) and resource["name"].startswith("fuzz/"):
        assert records_for(pipeline, resource["name"]) == []
