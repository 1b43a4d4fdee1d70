"""The pipeline's per-object steps as Beam DoFns: list a shard, drop object
versions whose record is finished, download the pinned generation and
preprocess it, and hand each object to the processing core
(``functions/processing.py``, built by ``functions/wiring.py``).

Every DoFn makes its clients once per worker (``setup``): one reused
google-cloud-storage client, one Firestore client. The settings (read once by
the launcher, ``shared/settings.py``) travel pickled with the DoFns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from backfill.progress import PROGRESS
from backfill.source import Shard
from shared import records as rec
from shared.errors import ImageError
from shared.settings import Settings

log = logging.getLogger(__name__)
NAMESPACE = "backfill"
#: tagged outputs
RETRY, DIRECT = "retry", "direct"


@dataclass(frozen=True)
class Item:
    """One object version on its way: its bytes (None: not read, the core
    reads it itself, e.g. gone or zero bytes), what the uploader attached
    (``shared.copy_metadata.Attached``) and a preprocessing error."""

    ref: rec.ObjectRef
    data: bytes | None = None
    attached: Any = None
    error: ImageError | None = None


def storage_client(settings: Settings) -> Any:
    """A google-cloud-storage client of the settings' project
    (``STORAGE_EMULATOR_HOST`` honoured by the library)."""
    from google.cloud import storage

    return storage.Client(project=settings.project)


def firestore_client(settings: Settings) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=settings.project, database=settings.firestore_database)


class ListShard(beam.DoFn):
    """Shard -> the live object versions in it (``ObjectRef`` with generation,
    size and content type), listed with startOffset/endOffset."""

    def __init__(self, settings: Settings, bucket: str, prefix: str) -> None:
        self.settings, self.bucket, self.prefix = settings, bucket, prefix
        self.listed = Metrics.counter(NAMESPACE, "listed")

    def setup(self) -> None:
        self.storage = storage_client(self.settings)

    def process(self, shard: Shard) -> Iterator[rec.ObjectRef]:
        blobs = self.storage.list_blobs(self.bucket, prefix=self.prefix or None, start_offset=shard.start, end_offset=shard.end)
        for blob in blobs:
            self.listed.inc()
            yield rec.ObjectRef(self.bucket, blob.name, int(blob.generation), blob.size, blob.content_type)


class Unfinished(beam.DoFn):
    """A status (``processing`` or ``failed``) -> the object versions of the
    source whose record has it. The listing cannot find an object whose
    delivery stopped after deleting the source and before the final record
    (a crash): its record, past the copy, is found here and the core
    finishes it. One equality query per status (as the sweep does)."""

    def __init__(self, settings: Settings, bucket: str, prefix: str) -> None:
        self.settings, self.bucket, self.prefix = settings, bucket, prefix
        self.found = Metrics.counter(NAMESPACE, "unfinished_records")

    def setup(self) -> None:
        self.db = firestore_client(self.settings)

    def process(self, status: str) -> Iterator[rec.ObjectRef]:
        from google.cloud.firestore import FieldFilter

        query = self.db.collection(rec.COLLECTION).where(filter=FieldFilter(rec.Field.STATUS, "==", status))
        for snapshot in query.stream():
            source = rec.Classification.from_firestore(snapshot.to_dict()).source
            if source is not None and source.bucket == self.bucket and source.name.startswith(self.prefix):
                self.found.inc()
                yield source


class SkipFinished(beam.DoFn):
    """A batch of refs -> those without a finished record (one batched
    Firestore read, ``get_all``, per batch)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.skipped = Metrics.counter(NAMESPACE, "skipped_finished")

    def setup(self) -> None:
        self.db = firestore_client(self.settings)

    def process(self, refs: list[rec.ObjectRef]) -> Iterator[rec.ObjectRef]:
        collection = self.db.collection(rec.COLLECTION)
        finished = {
            snapshot.id
            for snapshot in self.db.get_all([collection.document(ref.doc_id) for ref in refs])
            if snapshot.exists and rec.is_finished(snapshot.to_dict())
        }
        for ref in refs:
            if ref.doc_id in finished:
                self.skipped.inc()
            else:
                yield ref


class Download(beam.DoFn):
    """Ref -> ``(Item, pixels)`` for RunInference; to ``direct`` an Item the
    core finishes without inference (unusable image: its ImageError; gone or
    zero bytes: no data); to ``retry`` a ref a transient error stopped."""

    def __init__(self, settings: Settings, input_size: int) -> None:
        self.settings, self.size = settings, input_size
        self.read_bytes = Metrics.counter(NAMESPACE, "bytes_read")

    def setup(self) -> None:
        self.storage = storage_client(self.settings)

    def process(self, ref: rec.ObjectRef) -> Iterator[Any]:
        from functions.dependencies import TRANSIENT_ERRORS
        from shared.copy_metadata import Attached
        from shared.preprocess import prepare_image

        try:
            bucket = self.storage.bucket(ref.bucket)
            found = bucket.get_blob(ref.name, generation=ref.generation)
            if found is None:
                yield beam.pvalue.TaggedOutput(DIRECT, Item(ref))
                return
            # a blob pinned to the generation (fake-gcs-server's mediaLink names none)
            data = bucket.blob(ref.name, generation=ref.generation).download_as_bytes()
        except TRANSIENT_ERRORS as exc:
            log.warning("download of %s failed, to retry: %s", ref.name, exc, extra={"object": ref.name})
            yield beam.pvalue.TaggedOutput(RETRY, Item(ref))
            return
        except Exception as exc:  # noqa: BLE001 - google.api_core NotFound and friends: the core decides
            log.info("download of %s: %s; left to the core", ref.name, exc, extra={"object": ref.name})
            yield beam.pvalue.TaggedOutput(DIRECT, Item(ref))
            return
        self.read_bytes.inc(len(data))
        attached = Attached.from_blob(found)
        if not data:
            yield beam.pvalue.TaggedOutput(DIRECT, Item(ref))
            return
        try:
            pixels = prepare_image(data, self.size, limits=self.settings.decode_limits)
        except ImageError as exc:
            yield beam.pvalue.TaggedOutput(DIRECT, Item(ref, data, attached, exc))
            return
        yield Item(ref, data, attached), pixels


class Process(beam.DoFn):
    """``(Item, PredictionResult)`` or Item -> the outcome's status, through
    the processing core; a TransientError sends the Item to ``retry``
    (``final``: counted as ``failed_after_retry`` instead, left for the next run).

    ``delay_seconds``: waited once per worker before the first object (the
    second pass waits for a dead delivery's lease to run out)."""

    def __init__(
        self,
        settings: Settings,
        model_version: str,
        run_id: str,
        *,
        keep_source: bool = False,
        final: bool = False,
        delay_seconds: float = 0.0,
    ) -> None:
        self.settings, self.version, self.run_id = settings, model_version, run_id
        self.keep_source, self.final, self.delay = keep_source, final, delay_seconds
        self.retried = Metrics.counter(NAMESPACE, "failed_after_retry" if final else "retried")

    def setup(self) -> None:
        from backfill.inference import BucketModelLoader, PinnedModels
        from functions import wiring

        components = wiring.build(self.settings, storage=storage_client(self.settings), db=firestore_client(self.settings))
        # the pinned model: its manifest (version, per-class thresholds) decides with RunInference's
        # predictions, and it classifies an object the pipeline did not read (it reappeared)
        self.model = BucketModelLoader(self.settings.project, self.settings.models_bucket, self.version)()
        self.processor = wiring.batch_processor(components, PinnedModels(self.model), keep_source=self.keep_source)
        self._waited = False

    def process(self, element: Any, total: int) -> Iterator[Any]:
        from functions.processing import Precomputed, TransientError

        if not self._waited and self.delay:
            time.sleep(self.delay)
        self._waited = True
        item, result = element if isinstance(element, tuple) else (element, None)
        precomputed = None
        if item.data:
            answer = item.error if item.error is not None else result.inference
            precomputed = Precomputed(item.data, item.attached, answer, self.model.manifest)
        try:
            outcome = self.processor.process(
                item.ref, trigger="backfill", event_id=f"backfill:{self.run_id}", precomputed=precomputed
            )
        except TransientError as exc:
            self.retried.inc()
            log.warning("%s: %s", item.ref.name, exc, extra={"object": item.ref.name, "final": self.final})
            if not self.final:
                yield beam.pvalue.TaggedOutput(RETRY, element)
            return
        Metrics.counter(NAMESPACE, f"status_{outcome.status}").inc()
        if outcome.duplicate:
            Metrics.counter(NAMESPACE, "already_finished").inc()
        PROGRESS.tick(total)
        yield outcome.status
