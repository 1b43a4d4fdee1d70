"""``fashionctl sweep``: one sweep run (fashionctl/sweep.py)."""

from __future__ import annotations

import click

from fashionctl.context import POSITIVE_INT, Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.command(
    "sweep",
    short_help="one sweep run: process uploads in incoming that no event finished",
    help="One sweep run: process uploads in incoming that no event finished. Posts to SWEEP_URL when set "
    "(environment or the stack's env file), else runs the sweep core here.",
)
@state_dir_option
@click.option("--dry-run", is_flag=True, help="list what it would process, change nothing")
@click.option("--budget", type=float, help="seconds (default: SWEEP_BUDGET_SECONDS)")
@click.option("--min-age", type=float, help="seconds (default: SWEEP_MIN_AGE_SECONDS)")
@click.option("--limit", type=POSITIVE_INT, help="at most this many objects")
@pass_context
def sweep(context: Context, dry_run: bool, budget: float | None, min_age: float | None, limit: int | None) -> int:
    from google.api_core.exceptions import GoogleAPIError
    from requests import RequestException

    from fashionctl import sweep as core
    from fashionctl.preflight import RUNNING_HINT

    body = core.options_body(dry_run, budget, min_age, limit)
    try:
        return core.run(context.env, body)
    except ValueError as exc:  # SettingsError too
        raise CommandError(str(exc), USAGE) from exc
    except (GoogleAPIError, RequestException, RuntimeError) as exc:
        raise CommandError(f"the sweep failed: {exc}\n{RUNNING_HINT}") from exc


COMMANDS = (sweep,)
