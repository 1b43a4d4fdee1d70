"""``fashionctl events tail``: the completion events as they are published (fashionctl/events.py)."""

from __future__ import annotations

import contextlib

import click

from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.group("events", help="completion events (docs/events.md)")
def events() -> None:
    """The ``events`` command group."""


@events.command("tail", help="print completion events as they are published, until interrupted")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line: the CloudEvent plus its attributes")
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="stop after this many events")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="stop after this many seconds")
@pass_context
def tail(context: Context, as_json: bool, max_events: int | None, timeout: float | None) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from fashionctl import events as core

    try:
        topic = core.topic_path(context.env)
    except KeyError as exc:
        raise CommandError(f"missing setting {exc} (environment or the stack's env file): events are off", USAGE) from exc
    render = core.as_json if as_json else core.line
    client = core.subscriber(context.env)
    try:
        with core.tail_subscription(client, topic) as subscription:
            if not as_json:
                click.echo(f"tailing {topic} (Ctrl-C to stop)", err=True)
            with contextlib.suppress(KeyboardInterrupt):
                core.tail(
                    client,
                    subscription,
                    lambda event, attributes: click.echo(render(event, attributes)),
                    max_events=max_events,
                    timeout=timeout,
                )
    except GoogleAPIError as exc:
        raise CommandError(f"cannot read the events of {topic}: {exc}") from exc
    finally:
        client.close()
    return 0


COMMANDS = (events,)
