"""``fashionctl reclassify``: what a candidate model would change in the
processed bucket, as a report (``report.json`` + ``report.html`` with
thumbnails of the files that would move), moving nothing; with ``apply``,
moves the changed files and updates their records, keeping the replaced
decision in the record's ``previous`` list.

The same pipeline shape as the backfill (sharded listing, download of the
pinned generation, the shared preprocessing, RunInference with the LiteRT
handler); the decision rule is the processing core's
(:meth:`functions.processing.Processor.decide`). Only records a model
decided (``classified``, ``needs_review``) are considered: a rejection, or a
record a person decided, is never re-filed.

An applied move: (1) create the copy at the new name (create-only, an
identical file there counts as done), (2) in one transaction, only if the
record still names the old file, write the new decision and destination
with the old decision appended to ``previous``, (3) delete the old file,
pinned to its generation. A crash between (2) and (3) leaves the old file,
whose record now names another file and lists it in ``previous``: the next
``--apply`` run deletes it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from backfill import runs
from backfill.inference import BucketModelLoader, LiteRTModelHandler, current_version, load_version
from backfill.pipeline import LOCAL, counters, pipeline_options
from backfill.pipeline import _runner as runner_for
from backfill.source import shards
from backfill.steps import NAMESPACE, ListShard, firestore_client, storage_client
from shared import records as rec
from shared.errors import ImageError
from shared.settings import Settings

log = logging.getLogger(__name__)
MODEL_DECIDED = (rec.CLASSIFIED, rec.NEEDS_REVIEW)
THUMBNAIL_PX = 96


@dataclass(frozen=True)
class ReclassifyOptions:
    model: str  # the candidate version, in the models bucket
    report_dir: str  # local folder or gs:// prefix for report.json and report.html
    prefix: str = ""
    limit: int | None = None
    apply: bool = False
    runner: str = LOCAL
    run_id: str | None = None
    shard_depth: int = 1
    beam_args: Sequence[str] = field(default_factory=tuple)


class Score(beam.DoFn):
    """A processed object -> ``((ref, record_id, data, attached), pixels)``
    when its record is model-decided and names this file; its bytes
    preprocessed. Leftovers of an interrupted ``--apply`` (the record names
    another file and lists this one in ``previous``) go to ``leftover``."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.settings, self.size = settings, size
        self.skipped = Metrics.counter(NAMESPACE, "not_model_decided")

    def setup(self) -> None:
        self.storage = storage_client(self.settings)
        self.db = firestore_client(self.settings)

    def process(self, ref: rec.ObjectRef) -> Iterator[Any]:
        from shared.copy_metadata import RECORD_ID, Attached
        from shared.preprocess import prepare_image

        bucket = self.storage.bucket(ref.bucket)
        blob = bucket.get_blob(ref.name, generation=ref.generation)
        record_id = (blob.metadata or {}).get(RECORD_ID) if blob is not None else None
        if not record_id:
            self.skipped.inc()
            return
        record = rec.Classification.from_firestore(
            self.db.collection(rec.COLLECTION).document(record_id).get().to_dict(), record_id
        )
        here = record.destination and record.destination.name == ref.name
        if not here:
            if any((p.get(rec.Field.DESTINATION) or {}).get("name") == ref.name for p in record.previous):
                yield beam.pvalue.TaggedOutput("leftover", ref)
            else:
                self.skipped.inc()
            return
        if record.status not in MODEL_DECIDED:
            self.skipped.inc()
            return
        data = bucket.blob(ref.name, generation=ref.generation).download_as_bytes()
        try:
            pixels = prepare_image(data, self.size, limits=self.settings.decode_limits)
        except ImageError:
            self.skipped.inc()
            return
        yield (ref, record_id, data, Attached.from_blob(blob)), pixels


class Compare(beam.DoFn):
    """``(key, PredictionResult)`` -> a change (dict) when the candidate's
    decision differs from the record's (status or label); with ``apply``, moves it."""

    def __init__(self, settings: Settings, version: str, run_id: str, apply: bool) -> None:
        self.settings, self.version, self.run_id, self.apply = settings, version, run_id, apply
        self.scored = Metrics.counter(NAMESPACE, "scored")
        self.changed = Metrics.counter(NAMESPACE, "changed")
        self.moved = Metrics.counter(NAMESPACE, "moved")

    def setup(self) -> None:
        from functions import wiring

        self.components = wiring.build(self.settings, storage=storage_client(self.settings), db=firestore_client(self.settings))
        self.processor = wiring.batch_processor(self.components, None, keep_source=True)
        loader = BucketModelLoader(self.settings.project, self.settings.models_bucket, self.version)
        self.manifest = loader().manifest  # the candidate's version and per-class thresholds

    def process(self, element: Any) -> Iterator[dict]:
        from functions.processing import Precomputed

        (ref, record_id, data, attached), result = element
        self.scored.inc()
        doc = self.components.db.collection(rec.COLLECTION).document(record_id)
        record = rec.Classification.from_firestore(doc.get().to_dict(), record_id)
        new = self.processor.decide(Precomputed(data, attached, result.inference, self.manifest))
        if (new.status, new.label) == (record.status, record.label):
            return
        self.changed.inc()
        change = {
            "id": record_id,
            "file": ref.name,
            "source_name": record.source.name if record.source else ref.name,
            "old": {"status": record.status, "label": record.label, "confidence": record.confidence},
            "new": {"status": new.status, "label": new.label, "confidence": new.confidence},
            "thumbnail": thumbnail(data),
        }
        if self.apply:
            change["moved_to"] = move(self.components, doc, record, ref, data, attached, new, self.run_id)
            self.moved.inc()
        yield change


def thumbnail(data: bytes) -> str | None:
    """A small JPEG of the image as a data: URI, or None when it does not decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=70)
    except Exception:  # noqa: BLE001 - a thumbnail is decoration only
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def move(
    components: Any, doc: Any, record: rec.Classification, ref: rec.ObjectRef, data: bytes, attached: Any, new: Any, run_id: str
) -> str:
    """Apply one change (see the module docstring); returns the new object name."""
    import hashlib
    from dataclasses import replace

    from google.api_core import exceptions as gexc
    from google.cloud import firestore

    from functions import destinations
    from shared import record_updates as updates

    source = record.source or ref
    decision = replace(new, target=destinations.target(new.status, new.label, source.name), sku=record.sku)
    bucket = components.storage.bucket(ref.bucket)
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    name = decision.target
    for candidate in (name, destinations.with_generation(name, source.generation)):
        blob = bucket.blob(candidate)
        attached.apply_to(blob, source, decision)
        try:
            blob.upload_from_string(data, content_type=blob.content_type, if_generation_match=0)
        except gexc.PreconditionFailed:
            existing = bucket.get_blob(candidate)
            if existing is None or existing.md5_hash != digest:
                continue
        name = candidate
        break
    else:
        raise RuntimeError(f"both {name} and its generation name hold other files")
    previous = {
        rec.Field.STATUS: record.status,
        rec.Field.LABEL: record.label,
        rec.Field.CONFIDENCE: record.confidence,
        rec.Field.TOP_K: list(record.top_k),
        rec.Field.MODEL_VERSION: record.model_version,
        rec.Field.DESTINATION: record.destination.to_dict() if record.destination else None,
        "replaced_at": rec.utcnow(),
        "run_id": run_id,
    }

    @firestore.transactional
    def update(transaction: Any) -> bool:
        current = rec.Classification.from_firestore(doc.get(transaction=transaction).to_dict())
        if not current.destination or current.destination.name != ref.name or current.status not in MODEL_DECIDED:
            return False  # changed meanwhile: leave it
        now = rec.utcnow()
        final = updates.final_update(decision, rec.Destination(bucket.name, name), current.timings_ms, now)
        final[rec.Field.FINISHED_AT] = current.finished_at or now
        final[rec.Field.PREVIOUS] = [*current.previous, previous]
        transaction.update(doc, final)
        return True

    if update(components.db.transaction()):
        delete_pinned(bucket, ref)
    return name


def delete_pinned(bucket: Any, ref: rec.ObjectRef) -> None:
    """Delete exactly ``ref``'s generation (already gone: fine)."""
    import contextlib

    from google.api_core import exceptions as gexc

    with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
        bucket.blob(ref.name, generation=ref.generation).delete(if_generation_match=ref.generation)


class DeleteLeftover(beam.DoFn):
    """``--apply`` only: delete an old file an interrupted move left behind."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deleted = Metrics.counter(NAMESPACE, "leftovers_deleted")

    def setup(self) -> None:
        self.storage = storage_client(self.settings)

    def process(self, ref: rec.ObjectRef) -> None:
        delete_pinned(self.storage.bucket(ref.bucket), ref)
        self.deleted.inc()


def write_report(changes: list[dict], report_dir: str, summary: dict, scored: int = 0) -> None:
    """``report.json`` (summary, per-class counts, every change without
    thumbnails) and ``report.html`` (the same, with the thumbnails) under ``report_dir``."""
    by_class: dict[str, dict[str, int]] = {}
    for change in changes:
        old, new = change["old"]["label"] or "-", f"{change['new']['label'] or '-'} ({change['new']['status']})"
        by_class.setdefault(old, {})
        by_class[old][new] = by_class[old].get(new, 0) + 1
    document = {
        **summary,
        "scored": scored,
        "changed": len(changes),
        "by_class": by_class,
        "changes": [{k: v for k, v in c.items() if k != "thumbnail"} for c in sorted(changes, key=lambda c: c["file"])],
    }
    base = report_dir.rstrip("/")
    FileSystems.mkdirs(base) if not base.startswith("gs://") and not FileSystems.exists(base) else None
    with FileSystems.create(f"{base}/report.json") as out:
        out.write(json.dumps(document, indent=2, default=str).encode())
    with FileSystems.create(f"{base}/report.html") as out:
        out.write(render_html(document, changes).encode())


def render_html(document: dict, changes: list[dict]) -> str:
    """A small self-contained page: the summary, a per-class table, one thumbnail per changed file."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(old)}</td><td>{e(new)}</td><td>{n}</td></tr>"
        for old, news in sorted(document["by_class"].items())
        for new, n in sorted(news.items())
    )
    cards = "".join(
        "<figure>"
        + (f'<img src="{c["thumbnail"]}" alt="">' if c.get("thumbnail") else "")
        + f"<figcaption>{e(c['file'])}<br>{e(str(c['old']['label']))} &rarr; {e(str(c['new']['label']))}"
        f" ({e(c['new']['status'])}, {float(c['new']['confidence'] or 0):.0%})</figcaption></figure>"
        for c in sorted(changes, key=lambda c: c["file"])
    )
    applied = "applied" if document.get("apply") else "not applied: nothing was moved"
    return (
        "<!doctype html><meta charset=utf-8><title>Reclassification report</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;width:140px;margin:4px;font-size:11px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}</style>"
        f"<h1>What model {e(str(document.get('candidate')))} would change</h1>"
        f"<p>{document.get('scored', 0)} files scored, {document['changed']} would change ({applied}).</p>"
        f"<table><tr><th>now</th><th>candidate</th><th>files</th></tr>{rows}</table>{cards}"
    )


def run_reclassify(settings: Settings, options: ReclassifyOptions) -> dict[str, Any]:
    """Score the processed bucket with the candidate, write the report, apply when asked."""
    storage = storage_client(settings)
    db = firestore_client(settings)
    version = options.model
    classifier = load_version(storage, settings.models_bucket, version)
    current = current_version(storage, settings.models_bucket)
    run_id = options.run_id or runs.new_run_id()
    source = f"gs://{settings.processed_bucket}/{options.prefix}"
    runs.start(db, run_id, "reclassify", source, version, {**asdict(options), "beam_args": list(options.beam_args)})
    started = time.monotonic()
    p = beam.Pipeline(runner=runner_for(options), options=pipeline_options(options))
    refs = (
        p
        | "Shards" >> beam.Create(shards(options.prefix, options.shard_depth))
        | "SpreadShards" >> beam.Reshuffle()
        | "List" >> beam.ParDo(ListShard(settings, settings.processed_bucket, options.prefix))
    )
    if options.limit:
        refs = (
            refs
            | "Limit" >> beam.combiners.Top.Smallest(options.limit, key=lambda ref: ref.name)
            | "Unlimit" >> beam.FlatMap(lambda chosen: chosen)
        )
    scored = (
        refs
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(Score(settings, classifier.size)).with_outputs("leftover", main="pixels")
    )
    if options.apply:
        _ = scored.leftover | "DeleteLeftovers" >> beam.ParDo(DeleteLeftover(settings))
    total = scored.pixels | "Scored" >> beam.combiners.Count.Globally()
    handler = LiteRTModelHandler(
        BucketModelLoader(settings.project, settings.models_bucket, version), version, top_k=settings.top_k
    )
    summary = {"run_id": run_id, "candidate": version, "current": current, "apply": options.apply, "source": source}
    (
        scored.pixels
        | "Infer" >> RunInference(KeyedModelHandler(handler))
        | "Compare" >> beam.ParDo(Compare(settings, version, run_id, options.apply))
        | "Gather" >> beam.combiners.ToList()
        | "Report" >> beam.Map(write_report, options.report_dir, summary, scored=beam.pvalue.AsSingleton(total))
    )
    try:
        result = p.run()
        result.wait_until_finish()
    except Exception as exc:
        runs.finish(db, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    counts = counters(result)
    seconds = round(time.monotonic() - started, 2)
    summary |= {"status": "succeeded", "counts": counts, "seconds": seconds, "report": options.report_dir}
    runs.finish(db, run_id, "succeeded", counts=counts, seconds=seconds, report=options.report_dir)
    return summary
