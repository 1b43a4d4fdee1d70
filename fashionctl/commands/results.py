"""``fashionctl results``: the latest classification records (fashionctl/results.py)."""

from __future__ import annotations

import click

from fashionctl.context import POSITIVE_INT, Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.command(
    "results",
    short_help="the latest classification records from Firestore, newest first",
    help="The latest classification records from Firestore, newest first. Reads FIRESTORE_EMULATOR_HOST and "
    "GOOGLE_CLOUD_PROJECT from the environment, else from the stack's env file; without an emulator host, the real "
    "Firestore with default credentials.",
)
@state_dir_option
@click.option("--since", metavar="DURATION_OR_ISO", help="e.g. 15m, 2h, 1d, 1h30m or 2026-11-25T14:00:00")
@click.option("--limit", type=POSITIVE_INT, default=50, show_default=True, help="at most this many records")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@pass_context
def results(context: Context, since: str | None, limit: int, as_json: bool) -> int:
    from fashionctl import results as core
    from fashionctl.preflight import reaching_the_stack

    try:
        since_time = core.parse_since(since) if since else None
    except ValueError as exc:
        raise CommandError(str(exc), USAGE) from exc
    action = f"read the classification records from {context.env.get('FIRESTORE_EMULATOR_HOST') or 'Firestore'}"
    with reaching_the_stack(context.env, action, ("FIRESTORE_EMULATOR_HOST",)):
        return core.run(context.firestore, since=since_time, limit=limit, as_json=as_json)


COMMANDS = (results,)
