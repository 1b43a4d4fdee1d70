"""The storage-triggered classify function over HTTP (functions-framework),
on fake-gcs-server and the Firestore emulator through the real clients."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from shared.labels import slugify
from tests.datasets import synthetic_product
from tests.pipeline.conftest import CONTRACT_FIELDS, INCOMING, PROCESSED, Pipeline, require_transaction_isolation


def _doc_for(pipeline: Pipeline, name: str) -> list[dict]:
    return [d for d in pipeline.documents() if d["source"]["name"] == name]


def _check_filed(pipeline: Pipeline, doc: dict) -> None:
    """The document and the processed object agree."""
    destination = doc["destination"]
    assert destination["bucket"] == PROCESSED
    name, source = destination["name"], doc["source"]["name"]
    if doc["status"] == "classified":
        assert name == f"{slugify(doc['label'])}/{source}"
        assert doc["confidence"] >= 0.5
    elif doc["status"] == "needs_review":
        assert name == f"review/{slugify(doc['label'])}/{source}"
        assert doc["confidence"] < 0.5
    else:
        assert doc["status"] == "rejected" and name == f"rejected/{source}"
    blob = pipeline.storage().bucket(PROCESSED).get_blob(name)
    assert blob is not None, name
    assert blob.metadata["source-name"] == source and blob.metadata["source-generation"] == doc["source"]["generation"]


def test_uploads_are_classified_recorded_and_moved(pipeline: Pipeline):
    names = [f"batch/item-{k}.jpg" for k in range(6)]
    blobs = [pipeline.upload(name, synthetic_product(k % 3, k, size=64)) for k, name in enumerate(names)]
    for blob in blobs:
        response = pipeline.post_event(blob)
        assert response.status_code == 200, response.text
    for name, blob in zip(names, blobs, strict=True):
        (doc,) = _doc_for(pipeline, name)
        assert set(doc) >= CONTRACT_FIELDS
        assert doc["status"] in ("classified", "needs_review")
        assert doc["label"] in pipeline.labels and doc["model_version"] == "tiny-int8"
        assert doc["source"]["generation"] == str(blob.generation) and doc["source"]["bucket"] == INCOMING
        assert doc["source"]["size"] == blob.size and doc["source"]["content_type"] == "image/jpeg"
        assert doc["trigger"] == "event" and doc["error"] is None
        assert [t["score"] for t in doc["top_k"]] == sorted((t["score"] for t in doc["top_k"]), reverse=True)
        assert doc["top_k"][0] == {"label": doc["label"], "score": doc["confidence"]}
        assert {"download", "classify", "copy", "delete", "total"} <= set(doc["timings_ms"])
        _check_filed(pipeline, doc)
    assert not [n for n in pipeline.incoming() if n.startswith("batch/")]


def test_same_event_five_times_concurrently(pipeline: Pipeline):
    require_transaction_isolation(pipeline.firestore_kind)
    blob = pipeline.upload("dup/shoe.jpg", synthetic_product(1, 99, size=64))
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: pipeline.post_event(blob, event_id="same-event"), range(5)))
    # Deliveries that found another one holding the object asked to be retried (5xx); retry them as Eventarc would.
    for _ in range(20):
        if all(r.status_code == 200 for r in responses):
            break
        responses = [r if r.status_code == 200 else pipeline.post_event(blob, event_id="same-event") for r in responses]
    assert [r.status_code for r in responses] == [200] * 5
    docs = _doc_for(pipeline, "dup/shoe.jpg")
    assert len(docs) == 1 and docs[0]["status"] in ("classified", "needs_review")
    assert docs[0]["event_ids"] == ["same-event"]
    copies = [n for n in pipeline.processed() if n.endswith("dup/shoe.jpg") or "dup/shoe." in n]
    assert copies == [docs[0]["destination"]["name"]]
    assert "dup/shoe.jpg" not in pipeline.incoming()


def test_redelivery_of_a_finished_object_does_no_work(pipeline: Pipeline):
    blob = pipeline.upload("again/bag.jpg", synthetic_product(0, 5, size=64))
    assert pipeline.post_event(blob).status_code == 200
    (before,) = _doc_for(pipeline, "again/bag.jpg")
    assert pipeline.post_event(blob).status_code == 200
    (after,) = _doc_for(pipeline, "again/bag.jpg")
    assert after["finished_at"] == before["finished_at"] and after["attempts"] == before["attempts"]


def test_bad_files_are_rejected_with_reasons_and_kept(pipeline: Pipeline):
    good = synthetic_product(2, 1, size=64)
    cases = {
        "bad/corrupt.jpg": (good[:200] + b"\x00" * 50, "image/jpeg"),
        "bad/notes.jpg": (b"shopping list: socks, more socks\n", "image/jpeg"),
    }
    for name, (data, content_type) in cases.items():
        response = pipeline.post_event(pipeline.upload(name, data, content_type))
        assert response.status_code == 200, response.text
    for name, (data, _) in cases.items():
        (doc,) = _doc_for(pipeline, name)
        assert doc["status"] == "rejected", doc
        assert doc["error"]["reason"] in {"corrupt", "truncated", "not_an_image", "empty"}
        assert doc["error"]["message"]
        _check_filed(pipeline, doc)
        kept = pipeline.storage().bucket(PROCESSED).blob(f"rejected/{name}").download_as_bytes()
        assert kept == data
    reasons = {name: _doc_for(pipeline, name)[0]["error"]["reason"] for name in cases}
    assert reasons["bad/notes.jpg"] == "not_an_image"
    # A zero-byte object is no upload's content yet (issue 13.4): recorded
    # ``empty``, not copied, and kept where it was uploaded.
    empty = pipeline.upload("bad/empty.jpg", b"")
    assert pipeline.post_event(empty).status_code == 200
    (doc,) = _doc_for(pipeline, "bad/empty.jpg")
    assert doc["status"] == "empty" and doc["error"]["reason"] == "zero_bytes" and doc["destination"] is None
    assert pipeline.storage().bucket(INCOMING).blob("bad/empty.jpg").download_as_bytes() == b""
    assert pipeline.storage().bucket(PROCESSED).get_blob("rejected/bad/empty.jpg") is None


def test_an_event_for_a_deleted_object_is_recorded_and_acknowledged(pipeline: Pipeline):
    blob = pipeline.upload("gone/watch.jpg", synthetic_product(0, 7, size=64))
    pipeline.storage().bucket(INCOMING).blob("gone/watch.jpg").delete()
    response = pipeline.post_event(blob)
    assert response.status_code == 200
    (doc,) = _doc_for(pipeline, "gone/watch.jpg")
    assert doc["status"] == "skipped" and doc["error"]["reason"] == "source_gone"


def test_overwrite_keeps_both_versions_and_the_newer_upload(pipeline: Pipeline):
    first = pipeline.upload("over/top.jpg", synthetic_product(1, 11, size=64))
    second = pipeline.upload("over/top.jpg", synthetic_product(2, 12, size=64))  # a new generation
    assert second.generation != first.generation
    # The old event arrives late: its version is gone (the bucket keeps no old
    # versions), it is recorded, and the newer upload is not touched.
    assert pipeline.post_event(first).status_code == 200
    live = pipeline.storage().bucket(INCOMING).get_blob("over/top.jpg")
    assert live is not None and live.generation == second.generation
    assert pipeline.post_event(second).status_code == 200
    docs = {d["source"]["generation"]: d for d in _doc_for(pipeline, "over/top.jpg")}
    assert docs[str(first.generation)]["status"] == "skipped"
    assert docs[str(second.generation)]["status"] in ("classified", "needs_review")
    assert "over/top.jpg" not in pipeline.incoming()


def test_a_reupload_replaces_the_older_copy_at_its_destination(pipeline: Pipeline):
    first = pipeline.upload("clash/kurta.jpg", synthetic_product(0, 21, size=64))
    assert pipeline.post_event(first).status_code == 200
    (doc,) = _doc_for(pipeline, "clash/kurta.jpg")
    target = doc["destination"]["name"]
    processed = pipeline.storage().bucket(PROCESSED)
    original = processed.get_blob(target)
    original_bytes = processed.blob(target).download_as_bytes()
    # The same name uploaded again with other bytes, that the model may file in the same place.
    image = Image.open(io.BytesIO(synthetic_product(0, 21, size=64)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    second = pipeline.upload("clash/kurta.jpg", buffer.getvalue())
    assert pipeline.post_event(second).status_code == 200
    docs = {d["source"]["generation"]: d for d in _doc_for(pipeline, "clash/kurta.jpg")}
    newer = docs[str(second.generation)]
    # the older copy is never lost: the processed bucket is versioned
    assert processed.blob(target, generation=original.generation).download_as_bytes() == original_bytes
    if newer["destination"]["name"] == target:
        # the model filed it in the same place: the newest upload owns the name (issue 13.6)
        assert processed.blob(target).download_as_bytes() == buffer.getvalue()
        assert processed.get_blob(target).metadata["source-generation"] == str(second.generation)
    else:
        assert (newer["label"], newer["status"]) != (doc["label"], doc["status"])
        assert processed.blob(target).download_as_bytes() == original_bytes
