"""Issue 13, kinds 4-6, on the event path: the classify function over HTTP
(and, where a race must be placed exactly, the processing core in-process) on
fake-gcs-server and the Firestore emulator through the real clients.

4. Objects that are not uploads: a folder placeholder, and a zero-byte
   version that a tool overwrites with the content (gcsfuse, SFTP gateways).
5. What the uploader attached travels with the file, and the result is added
   to the copy's metadata; the SKU is stored in the record.
6. Re-uploads: the newest upload of a name owns its destination; a late
   delivery of an older version never replaces it.
The cases come from ``../shared/cases/real-world/README.md``; the inputs are
made here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

import localcloud
from functions.model_cache import ModelCache
from functions.processing import IGNORED, Processor
from shared.copy_metadata import CATEGORY, CONFIDENCE, MODEL_VERSION, RECORD_ID, SOURCE_GENERATION, STATUS
from shared.labels import slugify
from shared.records import ObjectRef
from shared.settings import Settings
from tests.datasets import synthetic_product
from tests.emulators import PROJECT
from tests.pipeline.conftest import INCOMING, MODELS, PROCESSED, Pipeline

RESULTS = ("classified", "needs_review", "rejected")


def records(pipeline: Pipeline, name: str) -> list[dict]:
    return [d for d in pipeline.documents() if d["source"]["name"] == name]


def copies(pipeline: Pipeline, name: str) -> list[Any]:
    """Live objects in the processed bucket that say they came from ``name``."""
    return [b for b in pipeline.storage().list_blobs(PROCESSED) if (b.metadata or {}).get("source-name") == name]


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same JPEG with a comment segment after SOI: other bytes (another
    md5), the very same pixels, so the model files it in the same place."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def core(pipeline: Pipeline, cache: Path, models: Any = None, **options: Any) -> tuple[Processor, Any]:
    """The processing core in-process, on the pipeline's emulators."""
    client = localcloud.storage_client(pipeline.storage_url, PROJECT)
    db = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
    settings = Settings(
        project=PROJECT,
        incoming_bucket=options.pop("incoming", INCOMING),
        processed_bucket=PROCESSED,
        models_bucket=MODELS,
        confidence_threshold=0.5,
        model_cache_dir=str(cache),
        **options,
    )
    return Processor(settings, client, db, models or ModelCache(client, MODELS, cache)), client


def ref_of(blob: Any, bucket: str = INCOMING) -> ObjectRef:
    return ObjectRef(bucket, blob.name, int(blob.generation), int(blob.size), blob.content_type)


# -- 4. objects that are not uploads -------------------------------------------------


def test_a_folder_placeholder_is_acknowledged_with_no_record_and_no_copy(pipeline: Pipeline):
    folder = pipeline.upload("shoot-0412/", b"", "application/x-www-form-urlencoded;charset=UTF-8")
    assert pipeline.post_event(folder).status_code == 200
    photo = pipeline.upload("shoot-0412/watch.jpg", synthetic_product(0, 401, size=64))
    assert pipeline.post_event(photo).status_code == 200

    assert records(pipeline, "shoot-0412/") == [] and copies(pipeline, "shoot-0412/") == []
    assert not [b for b in pipeline.storage().list_blobs(PROCESSED) if b.name.endswith("shoot-0412/")]
    assert "shoot-0412/" in pipeline.incoming()  # the user's folder stays
    (doc,) = records(pipeline, "shoot-0412/watch.jpg")
    assert doc["status"] in ("classified", "needs_review")
    (copy,) = copies(pipeline, "shoot-0412/watch.jpg")
    assert copy.name == doc["destination"]["name"] and copy.name.endswith("/shoot-0412/watch.jpg")


def test_the_core_ignores_a_placeholder_whoever_delivers_it(pipeline: Pipeline, tmp_path: Path):
    processor, client = core(pipeline, tmp_path)
    folder = client.bucket(INCOMING).blob("core-folder/")
    folder.upload_from_string(b"")
    outcome = processor.process(ref_of(folder), trigger="sweep")
    assert outcome.status == IGNORED and records(pipeline, "core-folder/") == []


def _one_result(pipeline: Pipeline, name: str, content: bytes) -> dict:
    """What kind 4 promises for a zero-byte write followed by the content:
    one result record, no rejection, one copy (the content), nothing left
    in incoming."""
    docs = records(pipeline, name)
    results = [d for d in docs if d["status"] in RESULTS]
    assert len(results) == 1, docs
    (result,) = results
    assert result["status"] in ("classified", "needs_review"), result
    assert all(d["status"] in ("classified", "needs_review", "empty", "skipped") for d in docs), docs
    (copy,) = copies(pipeline, name)
    assert copy.size == len(content) and copy.name == result["destination"]["name"]
    assert pipeline.storage().bucket(PROCESSED).blob(copy.name).download_as_bytes() == content
    assert not [b for b in pipeline.storage().list_blobs(PROCESSED, prefix="rejected/") if name in b.name]
    assert name not in pipeline.incoming()
    return result


def test_zero_bytes_then_the_content_processed_in_between(pipeline: Pipeline):
    """The empty version's event is handled while it is still the live one;
    the content arrives 1.5 s later (gcsfuse, SFTP gateways)."""
    name = "gateway/kurta-1.jpg"
    content = synthetic_product(1, 402, size=64)
    empty = pipeline.upload(name, b"")
    assert pipeline.post_event(empty).status_code == 200
    (placeholder,) = records(pipeline, name)
    assert placeholder["status"] == "empty" and placeholder["error"]["reason"] == "zero_bytes"
    assert placeholder["destination"] is None and copies(pipeline, name) == []
    time.sleep(1.5)
    full = pipeline.upload(name, content)
    assert pipeline.post_event(full).status_code == 200
    assert _one_result(pipeline, name, content)["source"]["generation"] == str(full.generation)
    # A redelivery of the empty version's event changes nothing.
    assert pipeline.post_event(empty).status_code == 200
    assert len(records(pipeline, name)) == 2 and len(copies(pipeline, name)) == 1


def test_zero_bytes_then_the_content_events_late_in_either_order(pipeline: Pipeline):
    for k, late_first in enumerate(("empty", "content")):
        name = f"gateway/late-{k}.jpg"
        content = synthetic_product(2, 403 + k, size=64)
        empty = pipeline.upload(name, b"")
        time.sleep(1.5)
        full = pipeline.upload(name, content)
        order = (empty, full) if late_first == "empty" else (full, empty)
        for blob in order:
            assert pipeline.post_event(blob).status_code == 200
        _one_result(pipeline, name, content)
        (gone,) = [d for d in records(pipeline, name) if d["source"]["generation"] == str(empty.generation)]
        assert gone["status"] == "skipped" and gone["destination"] is None


def test_a_zero_byte_version_replaced_while_in_flight_is_superseded(pipeline: Pipeline, tmp_path: Path):
    """On a versioned incoming bucket the empty version is still readable
    after the content replaced it: it is ``skipped``/``superseded``, never a
    rejection or a copy."""
    client = localcloud.storage_client(pipeline.storage_url, PROJECT)
    localcloud.create_buckets(pipeline.storage_url, PROJECT, ["it-incoming-versioned"], versioned=("it-incoming-versioned",))
    bucket = client.bucket("it-incoming-versioned")
    empty = bucket.blob("sftp/top.jpg")
    empty.upload_from_string(b"")
    full = bucket.blob("sftp/top.jpg")
    full.upload_from_string(synthetic_product(0, 404, size=64), content_type="image/jpeg")
    assert bucket.blob("sftp/top.jpg", generation=empty.generation).download_as_bytes() == b""  # still readable
    processor, _ = core(pipeline, tmp_path, incoming="it-incoming-versioned")
    outcome = processor.process(ref_of(empty, "it-incoming-versioned"), trigger="event")
    assert outcome.status == "skipped" and outcome.reason == "superseded" and outcome.destination is None
    assert bucket.get_blob("sftp/top.jpg").generation == full.generation  # the content is untouched
    later = processor.process(ref_of(full, "it-incoming-versioned"), trigger="event")
    assert later.status in ("classified", "needs_review")


# -- 5. what the uploader attached travels with the file --------------------------------


def test_metadata_and_http_properties_travel_and_the_result_is_added(pipeline: Pipeline):
    blob = pipeline.storage().bucket(INCOMING).blob("catalogue/sku-H12.jpg")
    blob.metadata = {"sku": "H12", "photographer": "R. Okafor"}
    blob.cache_control = "public, max-age=86400"
    blob.content_disposition = 'inline; filename="sku-H12.jpg"'
    blob.content_language = "en-GB"
    blob.upload_from_string(synthetic_product(1, 405, size=64), content_type="image/jpeg")
    assert pipeline.post_event(blob).status_code == 200

    (doc,) = records(pipeline, "catalogue/sku-H12.jpg")
    assert doc["status"] in ("classified", "needs_review") and doc["sku"] == "H12"
    copy = pipeline.storage().bucket(PROCESSED).get_blob(doc["destination"]["name"])
    assert copy.metadata["sku"] == "H12" and copy.metadata["photographer"] == "R. Okafor"
    assert copy.cache_control == "public, max-age=86400"
    assert copy.content_disposition == 'inline; filename="sku-H12.jpg"'
    assert copy.content_language == "en-GB" and copy.content_type == "image/jpeg"
    assert copy.metadata[CATEGORY] == doc["label"] and copy.metadata[STATUS] == doc["status"]
    assert abs(float(copy.metadata[CONFIDENCE]) - doc["confidence"]) < 1e-6
    assert copy.metadata[MODEL_VERSION] == doc["model_version"] and copy.metadata[RECORD_ID] == doc["id"]
    assert copy.metadata[SOURCE_GENERATION] == str(blob.generation)
    assert "catalogue/sku-H12.jpg" not in pipeline.incoming()  # still a move


def test_a_rejected_file_keeps_its_metadata_too(pipeline: Pipeline):
    blob = pipeline.storage().bucket(INCOMING).blob("catalogue/notes.jpg")
    blob.metadata = {"sku": "N1"}
    blob.upload_from_string(b"not a photo at all", content_type="image/jpeg")
    assert pipeline.post_event(blob).status_code == 200
    (doc,) = records(pipeline, "catalogue/notes.jpg")
    assert doc["status"] == "rejected" and doc["sku"] == "N1"
    copy = pipeline.storage().bucket(PROCESSED).get_blob("rejected/catalogue/notes.jpg")
    assert copy.metadata["sku"] == "N1" and copy.metadata["rejection-reason"] == doc["error"]["reason"]
    assert CATEGORY not in copy.metadata


def test_the_sku_key_is_a_setting(pipeline: Pipeline, tmp_path: Path):
    processor, client = core(pipeline, tmp_path, sku_metadata_key="article-no")
    blob = client.bucket(INCOMING).blob("catalogue/article.jpg")
    blob.metadata = {"article-no": " A-778 ", "sku": "not this one"}
    blob.upload_from_string(synthetic_product(2, 406, size=64), content_type="image/jpeg")
    processor.process(ref_of(blob), trigger="event")
    (doc,) = records(pipeline, "catalogue/article.jpg")
    assert doc["sku"] == "A-778"
    assert (
        Settings.from_env(
            {"GOOGLE_CLOUD_PROJECT": "p", "INCOMING_BUCKET": "a", "PROCESSED_BUCKET": "b", "MODELS_BUCKET": "c"}
        ).sku_metadata_key
        == "sku"
    )


# -- 6. re-uploads ------------------------------------------------------------------------


def test_a_corrected_photo_replaces_the_old_one_at_its_name(pipeline: Pipeline):
    name = "fix/sku-W77.jpg"
    old_bytes = synthetic_product(0, 407, size=64)
    new_bytes = with_comment(old_bytes, b"retouched")
    first = pipeline.upload(name, old_bytes)
    assert pipeline.post_event(first).status_code == 200
    (old_doc,) = records(pipeline, name)
    target = old_doc["destination"]["name"]
    assert target.endswith("/" + name)
    old_copy = pipeline.storage().bucket(PROCESSED).get_blob(target)

    second = pipeline.upload(name, new_bytes)
    assert pipeline.post_event(second).status_code == 200
    docs = {d["source"]["generation"]: d for d in records(pipeline, name)}
    new_doc = docs[str(second.generation)]
    assert new_doc["label"] == old_doc["label"] and new_doc["destination"]["name"] == target
    processed = pipeline.storage().bucket(PROCESSED)
    assert processed.blob(target).download_as_bytes() == new_bytes
    assert processed.get_blob(target).metadata[SOURCE_GENERATION] == str(second.generation)
    (copy,) = copies(pipeline, name)  # no <name>.<generation>.jpg beside it
    assert copy.name == target
    # The processed bucket is versioned: the older copy stays as a noncurrent version.
    assert processed.blob(target, generation=old_copy.generation).download_as_bytes() == old_bytes
    # The old version's event redelivered late changes nothing.
    assert pipeline.post_event(first).status_code == 200
    assert processed.blob(target).download_as_bytes() == new_bytes


class ProcessNewerFirst:
    """The real model cache; on the first ``get()`` (the older version's
    delivery has downloaded its bytes) a newer version is uploaded and
    processed completely, so the older one's copy arrives late."""

    def __init__(self, cache: ModelCache, newer: Any) -> None:
        self.cache, self.newer, self.fired = cache, newer, False

    def get(self) -> Any:
        if not self.fired:
            self.fired = True
            self.newer()
        return self.cache.get()


def test_a_late_older_version_never_replaces_the_newer_one(pipeline: Pipeline, tmp_path: Path):
    name = "fix/sku-W78.jpg"
    old_bytes = synthetic_product(1, 408, size=64)
    new_bytes = with_comment(old_bytes, b"corrected")
    client = localcloud.storage_client(pipeline.storage_url, PROJECT)
    first = pipeline.upload(name, old_bytes)
    done: dict[str, Any] = {}

    def newer() -> None:
        blob = pipeline.upload(name, new_bytes)
        fresh, _ = core(pipeline, tmp_path / "newer")
        done["outcome"], done["blob"] = fresh.process(ref_of(blob), trigger="event"), blob

    models = ProcessNewerFirst(ModelCache(client, MODELS, tmp_path / "older"), newer)
    older_core, _ = core(pipeline, tmp_path / "older", models=models)
    older = older_core.process(ref_of(first), trigger="event")

    newest = done["outcome"]
    assert newest.status == older.status and newest.label == older.label
    canonical = newest.destination.split("/", 3)[3]
    assert canonical.endswith("/" + name)
    processed = client.bucket(PROCESSED)
    assert processed.blob(canonical).download_as_bytes() == new_bytes  # the newer one kept its place
    assert older.destination == f"gs://{PROCESSED}/" + canonical.replace(".jpg", f".{first.generation}.jpg")
    assert processed.blob(canonical.replace(".jpg", f".{first.generation}.jpg")).download_as_bytes() == old_bytes
    assert client.bucket(INCOMING).get_blob(name) is None


def test_another_uploads_file_at_the_destination_is_never_replaced(pipeline: Pipeline):
    """A file the pipeline did not write for this name (no source metadata)
    sits at the destination: it stays, the copy takes the generation name."""
    name = "fix/foreign.jpg"
    data = synthetic_product(2, 409, size=64)
    probe = pipeline.upload("fix/foreign-probe.jpg", data)
    assert pipeline.post_event(probe).status_code == 200
    (probe_doc,) = records(pipeline, "fix/foreign-probe.jpg")
    target = probe_doc["destination"]["name"].replace("foreign-probe", "foreign")
    processed = pipeline.storage().bucket(PROCESSED)
    processed.blob(target).upload_from_string(b"placed by hand", content_type="text/plain")
    blob = pipeline.upload(name, data)
    assert pipeline.post_event(blob).status_code == 200
    (doc,) = records(pipeline, name)
    assert doc["destination"]["name"] == target.replace(".jpg", f".{blob.generation}.jpg")
    assert processed.blob(target).download_as_bytes() == b"placed by hand"
    assert slugify(doc["label"]) in target
