"""Issue 13 through the event pipeline (the classify function over HTTP on
fake-gcs-server and the Firestore emulator, through the real clients):
HEIC photos, camera-size JPEGs and JPEGs missing only their end are
classified, recorded and filed under their category; bombs and files really
cut short are still rejected, kept byte for byte in ``rejected/``."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.labels import slugify
from tests.images import make_heic, make_large_jpeg, make_photo_like
from tests.pipeline.conftest import INCOMING, PROCESSED, Pipeline
from tests.reliability.corpus import jpeg_bomb


def _run(pipeline: Pipeline, name: str, data: bytes, content_type: str) -> dict:
    blob = pipeline.upload(name, data, content_type=content_type)
    response = pipeline.post_event(blob)
    assert response.status_code == 200, response.text
    (doc,) = [d for d in pipeline.documents() if d["source"]["name"] == name]
    assert doc["source"]["generation"] == str(blob.generation) and doc["source"]["bucket"] == INCOMING
    assert doc["source"]["size"] == len(data)
    return doc


def _assert_filed(pipeline: Pipeline, doc: dict, data: bytes) -> None:
    name = doc["source"]["name"]
    if doc["status"] == "classified":
        expected = f"{slugify(doc['label'])}/{name}"
    elif doc["status"] == "needs_review":
        expected = f"review/{slugify(doc['label'])}/{name}"
    else:
        expected = f"rejected/{name}"
    assert doc["destination"]["bucket"] == PROCESSED and doc["destination"]["name"] == expected
    blob = pipeline.storage().bucket(PROCESSED).get_blob(expected)
    assert blob is not None, expected
    assert blob.download_as_bytes() == data  # the user's file, byte for byte
    assert blob.metadata["source-name"] == name and blob.metadata["source-generation"] == doc["source"]["generation"]
    assert name not in pipeline.incoming()


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return Image.open(io.BytesIO(make_photo_like((160, 120), seed=31))).convert("RGB")


@pytest.mark.parametrize(
    ("name", "content_type"), [("real-world/IMG_0001.HEIC", "image/heic"), ("real-world/heic-named.jpg", "image/jpeg")]
)
def test_heic_photos_are_classified_and_filed(pipeline: Pipeline, picture: Image.Image, name: str, content_type: str) -> None:
    data = make_heic(picture)
    doc = _run(pipeline, name, data, content_type)
    assert doc["status"] in ("classified", "needs_review"), doc
    assert doc["label"] in pipeline.labels and doc["error"] is None
    _assert_filed(pipeline, doc, data)


@pytest.mark.parametrize("size", [(6000, 4000), (8000, 6000)], ids=["24MP", "48MP"])
def test_camera_size_jpegs_are_classified_not_too_many_pixels(pipeline: Pipeline, size: tuple[int, int]) -> None:
    data = make_large_jpeg(size)
    doc = _run(pipeline, f"real-world/camera-{size[0]}x{size[1]}.jpg", data, "image/jpeg")
    assert doc["status"] in ("classified", "needs_review"), doc
    assert doc["label"] in pipeline.labels
    _assert_filed(pipeline, doc, data)


def test_a_jpeg_missing_only_its_end_gets_the_scores_of_the_whole_file(pipeline: Pipeline) -> None:
    whole = make_photo_like((200, 150), seed=32)
    control = _run(pipeline, "real-world/whole.jpg", whole, "image/jpeg")
    cut = _run(pipeline, "real-world/no-eoi.jpg", whole[:-2], "image/jpeg")
    assert cut["status"] == control["status"] and cut["status"] in ("classified", "needs_review")
    assert cut["top_k"] == control["top_k"] and cut["label"] == control["label"]
    _assert_filed(pipeline, cut, whole[:-2])


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("real-world/cut-short.jpg", make_photo_like((200, 150), seed=33)[:-200], "truncated"),
        ("real-world/bomb.jpg", jpeg_bomb(), "too_many_pixels"),
    ],
    ids=["cut-short", "bomb"],
)
def test_really_cut_files_and_bombs_are_still_rejected(pipeline: Pipeline, name: str, data: bytes, reason: str) -> None:
    doc = _run(pipeline, name, data, "image/jpeg")
    assert doc["status"] == "rejected" and doc["error"]["reason"] == reason, doc
    assert "MAX_" not in doc["error"]["message"] and "DecompressionBomb" not in doc["error"]["message"]
    _assert_filed(pipeline, doc, data)
