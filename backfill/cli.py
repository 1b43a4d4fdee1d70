"""``python -m backfill backfill|reclassify ...``: what ``fashionctl
backfill``/``reclassify`` run in the Beam venv (``.venv-beam``). Settings
come from the environment (``shared/settings.py``), read once here. Prints
the run's summary as one JSON object on stdout; logs (JSON lines, with
progress) go to stderr. Exit codes: 0 done, 1 failed, 2 usage."""

from __future__ import annotations

import argparse
import json
import sys

from shared.logs import configure_logging
from shared.settings import Settings, SettingsError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m backfill")
    commands = top.add_subparsers(dest="command", required=True)
    back = commands.add_parser("backfill", help="classify and file the objects under gs://BUCKET[/PREFIX]")
    back.add_argument("source", help="gs://BUCKET[/PREFIX]")
    back.add_argument("--dry-run", action="store_true")
    back.add_argument("--limit", type=int)
    back.add_argument("--model")
    back.add_argument("--keep-source", action="store_true")
    back.add_argument("--runner", choices=("local", "dataflow"), default="local")
    back.add_argument("--shard-depth", type=int, default=1)
    back.add_argument("--batch-size", type=int, default=32)
    back.add_argument("--retry-delay", type=float, default=0.0)
    back.add_argument("--workers", type=int, default=1, help="--dry-run: workers to estimate for")
    back.add_argument("--per-worker-rate", type=float, default=3.6, help="--dry-run: objects/s of one worker")
    back.add_argument("--run-id")
    back.add_argument("beam_args", nargs="*", help="after --: Beam pipeline options (e.g. Dataflow's)")
    rec = commands.add_parser("reclassify", help="what a candidate model would change in the processed bucket")
    rec.add_argument("--model", required=True, help="the candidate model version (in the models bucket)")
    rec.add_argument("--prefix", default="")
    rec.add_argument("--limit", type=int)
    rec.add_argument("--apply", action="store_true")
    rec.add_argument("--report", required=True, help="folder for report.json and report.html")
    rec.add_argument("--runner", choices=("local", "dataflow"), default="local")
    rec.add_argument("--run-id")
    rec.add_argument("beam_args", nargs="*")
    return top


def main(argv: list[str] | None = None) -> int:
    from functions.failpoints import FailPoints

    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        FailPoints.parse(settings.failpoints)  # a FailPointError (ValueError) at launch, not on a worker
    except (SettingsError, ValueError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "backfill":
        from backfill.pipeline import BackfillOptions, run
        from backfill.source import Source, SourceError

        try:
            source = Source.parse(args.source)
        except SourceError as exc:
            print(f"backfill: {exc}", file=sys.stderr)
            return 2
        options = BackfillOptions(
            source=source,
            dry_run=args.dry_run,
            limit=args.limit,
            model=args.model,
            keep_source=args.keep_source,
            runner=args.runner,
            shard_depth=args.shard_depth,
            batch_size=args.batch_size,
            retry_delay_seconds=args.retry_delay,
            workers=args.workers,
            per_worker_objects_per_second=args.per_worker_rate,
            run_id=args.run_id,
            beam_args=tuple(args.beam_args),
        )
        summary = run(settings, options)
    else:
        from backfill.reclassify import ReclassifyOptions, run_reclassify

        options = ReclassifyOptions(
            model=args.model,
            prefix=args.prefix,
            limit=args.limit,
            apply=args.apply,
            report_dir=args.report,
            runner=args.runner,
            run_id=args.run_id,
            beam_args=tuple(args.beam_args),
        )
        summary = run_reclassify(settings, options)
    print(json.dumps(summary, default=str, sort_keys=True))
    return 0 if summary.get("status") != "failed" else 1
