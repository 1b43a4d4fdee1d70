"""``python -m bench [all|training|inference|http|pipeline|decode|backfill]``: run the
benchmarks, print tables, write ``results.json`` and ``results.md``.

``all`` trains first (the training benchmark) and runs the others on the
model it made. A section run alone reuses the last trained model in
``--out`` (or trains one); ``decode`` needs no model. ``--quick`` is the smoke run: a few iterations,
seconds per section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.artifacts import Artifacts
from bench.measure import usable_cores
from shared.dev_paths import REPO_ROOT, default_data, default_weights

SECTIONS = ("training", "inference", "http", "pipeline", "decode", "backfill")
#: the sections that run a model
MODEL_SECTIONS = ("training", "inference", "http", "pipeline", "backfill")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sections", nargs="*", metavar="SECTION", help=f"all (the default) or some of: {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="smoke run: few iterations, short loads, a tiny training run")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench", help="results and the trained model go here")
    p.add_argument(
        "--data", default=default_data(), help="dataset folder (Kaggle layout); default: ../shared/data/... when present"
    )
    p.add_argument("--weights", default=default_weights(), help="MobileNetV2 weights for the training run")
    p.add_argument("--train-arg", action="append", default=[], help="extra argument for the training job (repeatable)")
    p.add_argument("--uploads", type=int, help="pipeline: uploads (default 1000, quick 20)")
    p.add_argument("--bridge-workers", type=int, help="pipeline: events the bridge delivers at once (default: the stack's, 4)")
    p.add_argument("--iterations", type=int, help="inference: measured calls per row (default 300, quick 20)")
    p.add_argument("--seconds", type=float, help="http: seconds per load run (default 10, quick 1)")
    p.add_argument("--concurrency", default="1,4,16", help="http: connection counts (default %(default)s)")
    p.add_argument("--decode-repeats", type=int, help="decode: timed decodes per input (default 3, quick 1)")
    p.add_argument("--backfill-objects", type=int, help="backfill: objects per path (default 200, quick 20)")
    return p


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": len(usable_cores()),
        "memory_gib": round(memory_gb, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def selected(names: list[str]) -> list[str]:
    """The sections to run, in their order (training first: it makes the
    model the others use); none named means all."""
    unknown = [n for n in names if n not in ("all", *SECTIONS)]
    if unknown:
        raise ValueError(f"unknown section {', '.join(unknown)}: choose from all, {', '.join(SECTIONS)}")
    return list(SECTIONS) if not names or "all" in names else [s for s in SECTIONS if s in names]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _previous(path: Path, quick: bool) -> dict[str, Any]:
    """The sections of the last run of the same kind (full or quick), so that
    running one section again keeps the others; each section carries the
    time it was measured (the baselines of a section are always measured
    in the same run as the section itself)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("quick") != quick or earlier.get("machine") != machine():
        return {}
    return {section: earlier[section] for section in SECTIONS if section in earlier}


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        sections = selected(args.sections)
    except ValueError as exc:
        p.error(str(exc))
    logging.basicConfig(level=logging.WARNING)
    quick = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    artifacts = Artifacts.at(args.out.resolve())
    results = _previous(args.out / "results.json", quick)
    results.update(started_at=_now(), quick=quick, machine=machine(), sections=sections)
    started = time.perf_counter()

    from bench import samples

    needs_model = any(section in MODEL_SECTIONS for section in sections)
    if needs_model:
        product, photo = samples.product_jpeg(args.data), samples.photo_jpeg(args.data)
    if "training" in sections or (needs_model and not artifacts.complete()):
        from bench import training_job

        report.heading("training job" + ("" if "training" in sections else " (no trained model yet)"))
        results["training"] = training_job.run(
            artifacts, data=args.data, weights=args.weights, quick=quick, extra=list(args.train_arg)
        )
        results["training"]["measured_at"] = _now()
        report.training_table(results["training"])
    if needs_model or artifacts.complete():
        results["model"] = {"version": artifacts.manifest.version, "work_dir": str(artifacts.work_dir)}
    if "inference" in sections:
        from bench import inference

        report.heading("inference (one core)")
        iterations = args.iterations or (20 if quick else 300)
        results["inference"] = inference.run(artifacts, product, photo, iterations=iterations, warmup=5 if quick else 30)
        results["inference"]["measured_at"] = _now()
        report.inference_summary(results["inference"])
    if "http" in sections:
        from bench import http

        report.heading("HTTP predict (functions-framework, deployed worker settings)")
        seconds = args.seconds or (1.0 if quick else 10.0)
        concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
        results["http"] = http.run(artifacts, [product, photo], seconds=seconds, concurrency=concurrency)
        results["http"]["measured_at"] = _now()
        report.http_summary(results["http"])
    if "pipeline" in sections:
        from bench import pipeline

        count = args.uploads or (20 if quick else 1000)
        report.heading(f"pipeline ({count} uploads through the local stack)")
        results["pipeline"] = pipeline.run(
            artifacts, samples.dataset_images(args.data, count), timeout=120 + count * 2.0, bridge_workers=args.bridge_workers
        )
        results["pipeline"]["measured_at"] = _now()
        report.pipeline_summary(results["pipeline"])
    if "decode" in sections:
        from bench import decode

        report.heading("decode (one upload in a fresh process each, against the functions' memory)")
        serving = results.get("http", {}).get("litert", {}).get("peak_pss_mb")
        results["decode"] = decode.run(quick=quick, repeats=args.decode_repeats, serving_mib=serving)
        results["decode"]["measured_at"] = _now()
        report.decode_summary(results["decode"])
    if "backfill" in sections:
        from bench import backfill

        count = args.backfill_objects or (20 if quick else 200)
        report.heading(f"backfill ({count} objects: Beam pipeline vs a plain loop over the same core, in .venv-beam)")
        results["backfill"] = backfill.run(artifacts.store, args.data, count)
        results["backfill"]["measured_at"] = _now()
        report.backfill_summary(results["backfill"])
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    report.targets_table(results["targets"])
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "results.md").write_text(report.markdown(results))
    print(f"\nresults: {args.out / 'results.json'} and {args.out / 'results.md'} ({results['bench_seconds']} s)")
    return 0
