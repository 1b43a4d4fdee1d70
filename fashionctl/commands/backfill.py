"""``fashionctl backfill`` and ``fashionctl reclassify`` (fashionctl/backfill.py)."""

from __future__ import annotations

import json
import os

import click

from fashionctl.context import POSITIVE_INT, Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError

RUNNERS = click.Choice(["local", "dataflow"])


def _finish(code: int, summary: dict | None) -> int:
    if summary is not None:
        click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
    if code == 2:
        raise CommandError("the pipeline refused its options (see above)", USAGE)
    if code != 0:
        raise CommandError(f"the pipeline failed (exit {code}); its run document says why")
    return 0


@click.command(
    "backfill",
    short_help="classify and file the objects already in gs://BUCKET[/PREFIX] (Apache Beam)",
    help="Classify and file the objects under gs://BUCKET[/PREFIX] with the same core as an upload: one record, "
    "a create-only copy, the source deleted (unless --keep-source), counted once; object versions with a "
    "finished record are skipped, so a rerun does only what is left. Runs the Beam pipeline (backfill/) in "
    "the Beam venv (make venv-beam) with the stack's settings. Extra Beam options after --.",
)
@state_dir_option
@click.argument("source")
@click.option("--dry-run", is_flag=True, help="count the objects, estimate time and cost, change nothing")
@click.option("--limit", type=POSITIVE_INT, help="at most this many objects (the first by name)")
@click.option("--model", help="model version (default: the models bucket's current one, pinned at launch)")
@click.option("--keep-source", is_flag=True, help="leave the source objects in place")
@click.option("--runner", type=RUNNERS, default="local", show_default=True)
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def backfill(
    context: Context,
    source: str,
    dry_run: bool,
    limit: int | None,
    model: str | None,
    keep_source: bool,
    runner: str,
    beam_args: tuple[str, ...],
) -> int:
    from fashionctl import backfill as core

    if not source.startswith("gs://"):
        raise CommandError(f"{source!r}: expected gs://BUCKET[/PREFIX]", USAGE)
    args = core.backfill_args(
        source, dry_run=dry_run, limit=limit, model=model, keep_source=keep_source, runner=runner, beam_args=beam_args
    )
    try:
        return _finish(*core.run(args, {**os.environ, **context.env}))
    except core.BeamMissing as exc:
        raise CommandError(str(exc), USAGE) from exc


@click.command(
    "reclassify",
    short_help="what a candidate model would change in the processed bucket (report; --apply moves)",
    help="Score the processed bucket with a candidate model and write a report (report.json and report.html "
    "with thumbnails) of what would change, moving nothing. With --apply, move the files whose category "
    "changed and update their records, keeping the old decision in the record's `previous` list.",
)
@state_dir_option
@click.option("--model", required=True, help="the candidate model version (in the models bucket)")
@click.option("--report", "report_dir", default="build/reclassify", show_default=True, help="folder (or gs:// prefix)")
@click.option("--prefix", default="", help="only objects of the processed bucket under this prefix")
@click.option("--limit", type=POSITIVE_INT, help="at most this many files (the first by name)")
@click.option("--apply", is_flag=True, help="move the changed files and update their records")
@click.option("--runner", type=RUNNERS, default="local", show_default=True)
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def reclassify(
    context: Context,
    model: str,
    report_dir: str,
    prefix: str,
    limit: int | None,
    apply: bool,
    runner: str,
    beam_args: tuple[str, ...],
) -> int:
    from fashionctl import backfill as core

    args = core.reclassify_args(model, report_dir, prefix=prefix, limit=limit, apply=apply, runner=runner, beam_args=beam_args)
    try:
        return _finish(*core.run(args, {**os.environ, **context.env}))
    except core.BeamMissing as exc:
        raise CommandError(str(exc), USAGE) from exc


COMMANDS = (backfill, reclassify)
