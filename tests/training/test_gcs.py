"""The training job reads its data from, and publishes to, ``gs://`` URIs:
checked against fake-gcs-server through the real google-cloud-storage client."""

from __future__ import annotations

import json

import pytest

from shared.model_layout import POINTER, parse_pointer
from tests.datasets import make_kaggle_dataset
from tests.emulators import fake_gcs_server
from training.cli import main as training_main
from training.publish import GateConfig, decide, publish
from training.storage import GcsStore


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    from google.cloud import storage

    with pytest.MonkeyPatch.context() as mp, fake_gcs_server(tmp_path_factory.mktemp("gcs")) as url:
        mp.setenv("STORAGE_EMULATOR_HOST", url)
        client = storage.Client()
        for name in ("data-bucket", "models-bucket"):
            client.create_bucket(name)
        yield client


def test_prepare_reads_the_kaggle_layout_from_a_bucket(gcs, tmp_path):
    local = make_kaggle_dataset(tmp_path / "data", {"Heels": 8, "Watches": 8}, missing=1, corrupt=1, size=40)
    bucket = gcs.bucket("data-bucket")
    for path in [local / "styles.csv", *sorted((local / "images").iterdir())]:
        bucket.blob(f"kaggle/{path.relative_to(local).as_posix()}").upload_from_filename(str(path))
    work = tmp_path / "work"
    code = training_main(
        ["prepare", "--data", "gs://data-bucket/kaggle", "--work-dir", str(work), "--size", "32", "--log-level", "WARNING"]
    )
    assert code == 0
    split = json.loads((work / "split.json").read_text())
    assert split["source"] == "gs://data-bucket/kaggle"
    assert split["labels"] == ["Heels", "Watches"]
    assert sum(split["counts"].values()) == 16
    assert split["skipped"] == {"missing_image": 1, "unreadable_image:corrupt": 1}


def test_publish_to_a_bucket_moves_the_pointer_only_through_the_gate(gcs, tmp_path):
    store = GcsStore("gs://models-bucket")
    files = {}
    for name, body in (
        ("model.tflite", b"m"),
        ("metrics.json", b"{}"),
        ("manifest.json", json.dumps({"version": "v1", "metrics": {"test_accuracy": 0.95}}).encode()),
    ):
        (tmp_path / name).write_bytes(body)
        files[name] = tmp_path / name
    gate = GateConfig(min_accuracy=0.9, max_regression=0.01)
    assert publish(store, "v1", files, decide(store, 0.95, gate))
    assert parse_pointer(store.read_bytes(POINTER)) == "v1"
    blob = gcs.bucket("models-bucket").get_blob("models/v1/manifest.json")
    assert blob is not None and blob.content_type == "application/json"
    assert not publish(store, "v2", files, decide(store, 0.5, gate))
    assert parse_pointer(store.read_bytes(POINTER)) == "v1"
    assert store.exists("models/v2/model.tflite")
