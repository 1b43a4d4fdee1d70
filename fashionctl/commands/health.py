"""``fashionctl health``: model, backlog, last sweep, error rate (fashionctl/health.py)."""

from __future__ import annotations

import click

from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.command("health", help="model, backlog, last sweep, error rate; exits 1 when unhealthy")
@state_dir_option
@click.option("--max-backlog-age", type=float, default=900.0, show_default=True, help="seconds")
@click.option("--max-error-rate", type=float, default=0.1, show_default=True, help="last hour")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@pass_context
def health(context: Context, max_backlog_age: float, max_error_rate: float, as_json: bool) -> int:
    from fashionctl import health as core
    from fashionctl.preflight import NO_STACK_HINT, reaching_the_stack

    thresholds = core.Thresholds(max_backlog_age=max_backlog_age, max_error_rate=max_error_rate)
    with reaching_the_stack(context.env, "check the health"):
        try:
            return core.run(context.env, thresholds, as_json=as_json)
        except KeyError as exc:
            raise CommandError(f"missing setting {exc} (environment or the stack's env file)\n{NO_STACK_HINT}", USAGE) from exc


COMMANDS = (health,)
