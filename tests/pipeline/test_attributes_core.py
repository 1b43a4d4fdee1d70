"""The backfill's way through the processing core with a model that has
attribute heads (issue 19): ``backfill/steps.py`` hands the core a
:class:`~functions.processing.Precomputed` (the bytes, what the uploader
attached, the prediction of ``Classifier.classify_pixels``, as its LiteRT
model handler makes it) and a batch processor (``wiring.batch_processor``).
Here the same calls run in this process (no Beam: the backfill's own venv has
no TensorFlow to build the model) against fake-gcs-server and the Firestore
emulator: the record gets ``attributes`` and the copy its attribute keys, as
on the event path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import localcloud
from functions import wiring
from functions.model_cache import ModelUnavailable
from functions.processing import Precomputed
from shared import copy_metadata as meta
from shared import records as rec
from shared.classifier import Classifier
from shared.copy_metadata import Attached
from shared.preprocess import prepare_image
from shared.settings import Settings
from tests.images import make_photo_like
from tests.pipeline.conftest import INCOMING, MODELS, PROCESSED, PROJECT, emulated_cloud


class Pinned:
    """The run's pinned model, as backfill/steps.py's PinnedModels gives it."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def get(self) -> Classifier:
        return self.classifier


def test_the_backfill_path_records_attributes_like_the_event_path(tmp_path: Path, tiny_multihead_model_dir: Any) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    model = Classifier.load(tiny_multihead_model_dir.int8_dir)
    with emulated_cloud(tmp_path, Path(tiny_multihead_model_dir.int8_dir)) as (storage_url, _firestore_host):
        storage = localcloud.storage_client(storage_url, PROJECT)
        db = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
        settings = Settings(
            project=PROJECT, incoming_bucket=INCOMING, processed_bucket=PROCESSED, models_bucket=MODELS, confidence_threshold=0.0
        )
        processor = wiring.batch_processor(wiring.build(settings, storage=storage, db=db), Pinned(model))
        data = make_photo_like((48, 40), seed=21)
        blob = storage.bucket(INCOMING).blob("back/catalogue.jpg")
        blob.upload_from_string(data, content_type="image/jpeg")
        blob.reload()
        (prediction,) = model.classify_pixels(prepare_image(data, model.size)[None])
        ref = rec.ObjectRef(INCOMING, blob.name, int(blob.generation), len(data), "image/jpeg")
        outcome = processor.process(
            ref, trigger="backfill", precomputed=Precomputed(data, Attached.from_blob(blob), prediction, model.manifest)
        )
        assert outcome.status == rec.CLASSIFIED
        stored = rec.Classification.from_firestore(db.collection(rec.COLLECTION).document(ref.doc_id).get().to_dict())
        assert stored.attributes == rec.attribute_entries(prediction.attributes)
        assert stored.final_attributes["colour"] is None and stored.final_attributes["gender"] is not None  # threshold 1 / 0
        copy = storage.bucket(PROCESSED).get_blob(stored.destination.name).metadata
        assert copy[meta.attribute_key("gender")] == stored.final_attributes["gender"]
        assert copy[meta.attribute_flag_key("colour")] == meta.LOW_CONFIDENCE and meta.attribute_key("colour") not in copy

        # the review desk checks corrections against the record's model's manifest, read from the models bucket
        cache = wiring.model_cache(replace(settings, model_cache_dir=str(tmp_path / "cache")), storage)
        manifest = cache.manifest_of(model.version)  # no model loaded: read from gs://<models>/models/<version>/
        assert manifest.attributes == model.manifest.attributes and cache.manifest_of(model.version) is manifest
        for missing in ("no-such-version", "../escape"):
            with pytest.raises(ModelUnavailable):
                cache.manifest_of(missing)
