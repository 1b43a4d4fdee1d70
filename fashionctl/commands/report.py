"""``fashionctl report``: the HTML report and exports (fashionctl/report.py)."""

from __future__ import annotations

from pathlib import Path

import click

from fashionctl.context import POSITIVE_INT, Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.command("report", help="an HTML report with charts plus CSV and JSON exports of the last N days")
@state_dir_option
@click.option("--days", type=POSITIVE_INT, default=7, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/report"), show_default=True, help="folder")
@click.option("--upload", is_flag=True, help="also write them to reports/<time>/ in the processed bucket")
@pass_context
def report(context: Context, days: int, out: Path, upload: bool) -> int:
    import importlib.util

    from fashionctl.preflight import reaching_the_stack

    if importlib.util.find_spec("matplotlib") is None:
        raise CommandError(
            "the report needs matplotlib, which this environment lacks: run `make venv` and use .venv/bin/fashionctl"
        )
    from fashionctl import report as core

    with reaching_the_stack(context.env, "build the report"):
        try:
            return core.run(context.env, days, out, to_bucket=upload)
        except KeyError as exc:
            raise CommandError(f"missing setting {exc} (environment or the stack's env file)", USAGE) from exc


COMMANDS = (report,)
