"""The backfill pipeline: shards -> listing (+ unfinished records of the
source, whose object a crash may have deleted already) -> skip finished -> (limit) ->
download + preprocess -> RunInference (LiteRT) -> the processing core ->
a second pass over what failed transiently. And :func:`run`, which pins the
model, writes the run document and runs the pipeline on the FnApiRunner
(locally; the DirectRunner would try Prism, which downloads a binary) or
submits it to Dataflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from backfill import estimate as costs
from backfill import runs
from backfill.inference import BucketModelLoader, LiteRTModelHandler, current_version, load_version
from backfill.source import Source, shards
from backfill.steps import (
    DIRECT,
    NAMESPACE,
    RETRY,
    Download,
    ListShard,
    Process,
    SkipFinished,
    Unfinished,
    firestore_client,
    storage_client,
)
from shared import records as rec
from shared.settings import Settings

log = logging.getLogger(__name__)
LOCAL, DATAFLOW = "local", "dataflow"


@dataclass(frozen=True)
class BackfillOptions:
    """One run's request (``fashionctl backfill``'s options)."""

    source: Source
    dry_run: bool = False
    limit: int | None = None  # at most this many objects (the first by name), after skipping finished ones
    model: str | None = None  # model version; None: the models bucket's current one, at launch
    keep_source: bool = False
    runner: str = LOCAL
    shard_depth: int = 1  # key-space shards: 63 at depth 1, 3,907 at depth 2 (backfill/source.py)
    batch_size: int = 32  # RunInference's largest batch
    retry_delay_seconds: float = 0.0  # the second pass waits this long first (a crashed delivery's lease)
    workers: int = 1  # the estimate's worker count (Dataflow: pass --max_num_workers too)
    per_worker_objects_per_second: float = 3.6  # the estimate's per-worker rate (measured locally: docs/backfill.md)
    run_id: str | None = None
    beam_args: Sequence[str] = field(default_factory=tuple)  # extra Beam pipeline options (Dataflow's)

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source.uri
        data["beam_args"] = list(self.beam_args)
        return data


def pipeline_options(options: BackfillOptions) -> PipelineOptions:
    """Beam options: the FnApiRunner in memory locally, the caller's options (project, region, temp_location,
    sdk_container_image, max_num_workers, service_account_email) for Dataflow."""
    args = list(options.beam_args)
    if options.runner == LOCAL:
        args += ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    else:
        args += ["--runner=DataflowRunner"]
    return PipelineOptions(args)


def _runner(options: BackfillOptions) -> Any:
    if options.runner == LOCAL:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return None  # from the options: DataflowRunner


class CountToProcess(beam.DoFn):
    """Counts what the run will process (objects and bytes), passes it on."""

    def __init__(self) -> None:
        self.objects = beam.metrics.Metrics.counter(NAMESPACE, "to_process")
        self.bytes = beam.metrics.Metrics.counter(NAMESPACE, "to_process_bytes")

    def process(self, ref: Any) -> Any:
        self.objects.inc()
        self.bytes.inc(ref.size or 0)
        yield ref


def to_process(p: beam.Pipeline, settings: Settings, options: BackfillOptions) -> beam.PCollection:
    """The object versions of the source without a finished record (at most ``limit``), counted."""
    source = options.source
    listed = (
        p
        | "Shards" >> beam.Create(shards(source.prefix, options.shard_depth))
        | "SpreadShards" >> beam.Reshuffle()
        | "ListShards" >> beam.ParDo(ListShard(settings, source.bucket, source.prefix))
    )
    unfinished = (
        p
        | "Unfinished" >> beam.Create([rec.PROCESSING, rec.FAILED])
        | "UnfinishedRecords" >> beam.ParDo(Unfinished(settings, source.bucket, source.prefix))
    )
    refs = (
        (listed, unfinished)
        | "AllRefs" >> beam.Flatten()
        | "ByVersion" >> beam.Map(lambda ref: (ref.doc_id, ref))
        | "Once" >> beam.CombinePerKey(lambda refs: next(iter(refs)))
        | "Refs" >> beam.Values()
        | "BatchRefs" >> beam.BatchElements(min_batch_size=1, max_batch_size=300)
        | "SkipFinished" >> beam.ParDo(SkipFinished(settings))
    )
    if options.limit:
        refs = (
            refs
            | "Limit" >> beam.combiners.Top.Smallest(options.limit, key=lambda ref: (ref.name, ref.generation))
            | "Unlimit" >> beam.FlatMap(lambda chosen: chosen)
        )
    return refs | "Count" >> beam.ParDo(CountToProcess())


def build(p: beam.Pipeline, settings: Settings, options: BackfillOptions, version: str, input_size: int, run_id: str) -> None:
    """The whole backfill on ``p``."""
    refs = to_process(p, settings, options)
    if options.dry_run:
        return
    refs = refs | "Spread" >> beam.Reshuffle()
    total = beam.pvalue.AsSingleton(refs | "Total" >> beam.combiners.Count.Globally())
    loaded = refs | "Download" >> beam.ParDo(Download(settings, input_size)).with_outputs(RETRY, DIRECT, main="pixels")
    handler = LiteRTModelHandler(
        BucketModelLoader(settings.project, settings.models_bucket, version),
        version,
        top_k=settings.top_k,
        max_batch_size=options.batch_size,
    )
    inferred = loaded.pixels | "Infer" >> RunInference(KeyedModelHandler(handler))
    first = (
        (inferred, loaded[DIRECT])
        | "Ready" >> beam.Flatten()
        | "Process"
        >> beam.ParDo(Process(settings, version, run_id, keep_source=options.keep_source), total=total).with_outputs(
            RETRY, main="done"
        )
    )
    (
        (first[RETRY], loaded[RETRY])
        | "Retries" >> beam.Flatten()
        | "SpreadRetries" >> beam.Reshuffle()
        | "SecondPass"
        >> beam.ParDo(
            Process(
                settings,
                version,
                run_id,
                keep_source=options.keep_source,
                final=True,
                delay_seconds=options.retry_delay_seconds,
            ),
            total=total,
        )
    )


def counters(result: Any) -> dict[str, int]:
    """The run's Beam counters (namespace ``backfill``) as name -> value."""
    found: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        found[counter.key.metric.name] = found.get(counter.key.metric.name, 0) + int(value or 0)
    return found


def run(settings: Settings, options: BackfillOptions) -> dict[str, Any]:
    """Pin the model, record the run, run the pipeline, record its end.
    Returns the run's summary (the run document's fields). Raises the
    pipeline's error after recording the run as ``failed``."""
    storage = storage_client(settings)
    db = firestore_client(settings)
    version = options.model or current_version(storage, settings.models_bucket)
    classifier = load_version(storage, settings.models_bucket, version)  # checks it exists and loads, at launch
    run_id = options.run_id or runs.new_run_id()
    runs.start(db, run_id, "backfill", options.source.uri, version, options.describe())
    log.info(
        "backfill %s of %s with model %s",
        run_id,
        options.source.uri,
        version,
        extra={"run_id": run_id, "model_version": version, "dry_run": options.dry_run},
    )
    started = time.monotonic()
    p = beam.Pipeline(runner=_runner(options), options=pipeline_options(options))
    build(p, settings, options, version, classifier.size, run_id)
    try:
        result = p.run()
        if options.runner != LOCAL:
            job = getattr(result, "job_id", lambda: None)()
            runs.finish(db, run_id, "submitted", job_id=job)
            return {"run_id": run_id, "status": "submitted", "job_id": job, "model_version": version}
        result.wait_until_finish()
    except Exception as exc:
        runs.finish(db, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    seconds = round(time.monotonic() - started, 2)
    counts = counters(result)
    summary: dict[str, Any] = {"run_id": run_id, "model_version": version, "counts": counts, "seconds": seconds}
    if options.dry_run:
        guess = costs.estimate(
            counts.get("to_process", 0),
            counts.get("to_process_bytes", 0),
            workers=options.workers,
            per_worker_objects_per_second=options.per_worker_objects_per_second,
            stats_shards=settings.stats_shards,
            keep_source=options.keep_source,
        )
        summary |= {"status": "dry_run", "estimate": guess.to_dict()}
    else:
        done = sum(n for name, n in counts.items() if name.startswith("status_"))
        summary |= {"status": "succeeded", "images_per_second": round(done / seconds, 2) if seconds else None}
    runs.finish(db, run_id, summary["status"], **{k: v for k, v in summary.items() if k not in ("run_id", "status")})
    log.info("backfill %s %s", run_id, summary["status"], extra=summary)
    return summary
