"""Every bad-input corpus case (tests/reliability/corpus.py) uploaded to the
incoming bucket and delivered to ``classify_upload`` (functions-framework over
HTTP, fake-gcs-server, Firestore emulator) ends with exactly one finished
record of the expected status and reason, its original bytes kept under the
expected processed-bucket name (``<slug>/``, ``review/<slug>/`` or
``rejected/`` + the name as uploaded, whatever characters it holds), nothing
left in the incoming bucket (a zero-byte object: an ``empty`` record, no copy,
the object left in place); metadata-only changes and event redeliveries do
not add records or copies."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import requests
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.labels import slugify
from shared.records import classification_id
from tests.cloudevents import FINALIZED, METADATA_UPDATED, post_blob_event
from tests.images import make_photo_like
from tests.pipeline.conftest import INCOMING, PROCESSED, Pipeline
from tests.reliability.corpus import CORPUS, GCS_NAME_LIMIT, METADATA_SCENARIOS, Case, long_name


def post_event(
    pipeline: Pipeline, blob: Any, *, ce_type: str = FINALIZED, metageneration: int = 1, event_id: str | None = None
) -> requests.Response:
    """A binary-mode CloudEvent as Eventarc sends it, of the type and
    metageneration chosen by the caller."""
    return post_blob_event(pipeline.function_url, blob, event_id=event_id, ce_type=ce_type, metageneration=metageneration)


def records_for(pipeline: Pipeline, name: str) -> list[dict]:
    query = pipeline.firestore().collection("classifications").where(filter=FieldFilter("source.name", "==", name))
    return [snapshot.to_dict() for snapshot in query.stream()]


def copies_of(pipeline: Pipeline, name: str) -> list[Any]:
    """Objects in the processed bucket that say they came from ``name``."""
    return [blob for blob in pipeline.storage().list_blobs(PROCESSED) if (blob.metadata or {}).get("source-name") == name]


def expected_destination(case: Case, record: dict) -> str:
    if case.outcome == "rejected":
        return f"rejected/{case.name}"
    slug = slugify(record["label"])
    return f"{slug}/{case.name}" if record["status"] == "classified" else f"review/{slug}/{case.name}"


def check_finished(pipeline: Pipeline, case: Case, blob: Any) -> dict:
    """One finished record with the expected outcome; the bytes kept, once, at
    the expected name; nothing left behind in the incoming bucket."""
    (record,) = records_for(pipeline, case.name)
    assert record["source"]["generation"] == str(blob.generation)
    if not case.data:
        # Zero bytes are no upload's content yet (issue 13.4: tools write an
        # empty object, then the content): recorded ``empty``, never a
        # rejection or a copy, and the object stays where it was uploaded.
        assert record["status"] == "empty" and record["error"]["reason"] == "zero_bytes", record
        assert record["destination"] is None and copies_of(pipeline, case.name) == []
        assert pipeline.storage().bucket(INCOMING).blob(case.name).download_as_bytes() == b""
        return record
    if case.outcome == "sorted":
        assert record["status"] in ("classified", "needs_review"), record
        assert record["label"] in pipeline.labels and record["error"] is None
    else:
        assert record["status"] == "rejected", record
        assert record["error"]["reason"] == case.reason, record["error"]
        assert record["label"] is None and record["error"]["message"]
    destination = record["destination"]
    assert destination == {"bucket": PROCESSED, "name": expected_destination(case, record)}
    assert destination["name"].endswith("/" + case.name) or destination["name"].endswith(case.name)
    (copy,) = copies_of(pipeline, case.name)
    assert copy.name == destination["name"]
    kept = pipeline.storage().bucket(PROCESSED).blob(copy.name).download_as_bytes()
    assert hashlib.md5(kept).digest() == hashlib.md5(case.data).digest() and kept == case.data
    assert copy.metadata["source-generation"] == str(blob.generation)
    assert pipeline.storage().bucket(INCOMING).get_blob(case.name) is None
    return record


@pytest.mark.parametrize("case", CORPUS, ids=[case.kind for case in CORPUS])
def test_each_corpus_case_ends_with_its_expected_record_and_file(pipeline: Pipeline, case: Case) -> None:
    blob = pipeline.upload(case.name, case.data, case.content_type)
    assert blob.name == case.name
    response = post_event(pipeline, blob)
    assert response.status_code == 200, response.text
    check_finished(pipeline, case, blob)
    # A redelivery of the same event changes nothing.
    assert post_event(pipeline, blob).status_code == 200
    assert len(records_for(pipeline, case.name)) == 1 and len(copies_of(pipeline, case.name)) == (1 if case.data else 0)


def test_corpus_destinations_stay_inside_their_prefix_and_fit_gcs_names() -> None:
    """Destinations are the prefix + the name verbatim: a name with ``..`` or a
    leading slash is just characters in GCS (no path is resolved), so it
    cannot leave its prefix; and every corpus name still fits GCS's 1024-byte
    limit under the longest prefix a real category gives."""
    for case in CORPUS:
        for prefix in ("rejected/", "casual-shoes/", "review/sports-shoes/"):
            target = prefix + case.name
            assert target.startswith(prefix) and target[len(prefix) :] == case.name
            assert len(target.encode()) <= GCS_NAME_LIMIT, case.kind


def test_a_name_at_the_gcs_limit_still_gets_a_legal_destination() -> None:
    """A legal incoming name of up to 1024 bytes gets a destination Cloud
    Storage accepts: cut to fit, with a hash of the whole name (two long
    names differing only at the end stay apart) and the extension kept."""
    from functions.destinations import target as target_of
    from functions.destinations import with_generation

    name = long_name(GCS_NAME_LIMIT)
    other = name[:-5] + "b.jpg"
    for status, label in (("rejected", None), ("classified", "Casual Shoes")):
        target = target_of(status, label, name)
        assert len(target.encode()) <= GCS_NAME_LIMIT
        assert target.endswith(".jpg") and target != target_of(status, label, other)
        target.encode().decode("utf-8")  # never cut inside a character
        assert len(with_generation(target, 1795628002389068).encode()) <= GCS_NAME_LIMIT
    assert target_of("rejected", None, "short.jpg") == "rejected/short.jpg"  # short names stay verbatim


@pytest.mark.parametrize("name", ["double//slash.jpg", "/leading-slash.jpg", "folder/"])
def test_the_fallback_destination_keeps_the_name_verbatim(name: str) -> None:
    from functions.destinations import with_generation

    target = f"casual-shoes/{name}"
    fallback = with_generation(target, 7)
    assert fallback.startswith(target.rsplit("/", 1)[0] + "/") and "7" in fallback.rsplit("/", 1)[-1]


# -- metadata-only changes ------------------------------------------------------


def _upload(pipeline: Pipeline, name: str, seed: int) -> tuple[Any, bytes]:
    data = make_photo_like(seed=seed)
    return pipeline.upload(name, data), data


def _patch_metadata(pipeline: Pipeline, name: str) -> Any:
    blob = pipeline.storage().bucket(INCOMING).get_blob(name)
    blob.metadata = {"sku": "A-1", "note": "metadata only"}
    blob.patch()
    return blob


def _check_one(pipeline: Pipeline, name: str, data: bytes, generation: int) -> dict:
    (record,) = records_for(pipeline, name)
    assert record["status"] in ("classified", "needs_review") and record["source"]["generation"] == str(generation)
    (copy,) = copies_of(pipeline, name)
    assert copy.name == record["destination"]["name"]
    assert pipeline.storage().bucket(PROCESSED).blob(copy.name).download_as_bytes() == data
    assert pipeline.storage().bucket(INCOMING).get_blob(name) is None
    return record


def test_metadata_updated_after_finalize(pipeline: Pipeline) -> None:
    assert "metadata_updated_after_finalize" in METADATA_SCENARIOS
    blob, data = _upload(pipeline, "meta/after.jpg", 31)
    assert post_event(pipeline, blob).status_code == 200
    before = _check_one(pipeline, blob.name, data, blob.generation)
    response = post_event(pipeline, blob, ce_type=METADATA_UPDATED, metageneration=2)
    assert response.status_code == 200, response.text
    after = _check_one(pipeline, blob.name, data, blob.generation)
    assert after["finished_at"] == before["finished_at"] and after["attempts"] == before["attempts"]


def test_metadata_updated_delivered_before_finalize(pipeline: Pipeline) -> None:
    assert "metadata_updated_before_finalize" in METADATA_SCENARIOS
    blob, data = _upload(pipeline, "meta/before.jpg", 32)
    patched = _patch_metadata(pipeline, blob.name)
    assert patched.generation == blob.generation and patched.metadata["sku"] == "A-1"  # fake-gcs-server keeps no metageneration
    assert post_event(pipeline, patched, ce_type=METADATA_UPDATED, metageneration=2).status_code == 200
    assert post_event(pipeline, blob).status_code == 200
    _check_one(pipeline, blob.name, data, blob.generation)


def test_finalized_resent_after_a_metadata_change(pipeline: Pipeline) -> None:
    assert "finalized_resent_after_metadata_change" in METADATA_SCENARIOS
    blob, data = _upload(pipeline, "meta/resent.jpg", 33)
    patched = _patch_metadata(pipeline, blob.name)
    event_id = uuid.uuid4().hex
    assert post_event(pipeline, patched, metageneration=2, event_id=event_id).status_code == 200
    first = _check_one(pipeline, blob.name, data, blob.generation)
    assert post_event(pipeline, patched, metageneration=2, event_id=event_id).status_code == 200
    assert post_event(pipeline, blob, metageneration=1).status_code == 200  # and the original one, late
    again = _check_one(pipeline, blob.name, data, blob.generation)
    assert again["finished_at"] == first["finished_at"]
    assert classification_id(INCOMING, blob.name, blob.generation)  # one id per generation, whatever the metageneration
