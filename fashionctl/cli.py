"""``fashionctl``: operator commands for the fashion classifier.

A click command group: the group builds one :class:`~fashionctl.context.Context`
per command line, each module under ``fashionctl/commands/`` declares its
commands and their options, and :func:`main` is the one place that turns a
:class:`~fashionctl.errors.CommandError` (or a usage error) into a message on
stderr and an exit code.
"""

from __future__ import annotations

import sys

import click

from fashionctl.commands import backfill, classify, dataset, events, health, model, report, results, review, stack, sweep, upload
from fashionctl.context import Context
from fashionctl.errors import CommandError


@click.group(name="fashionctl", help="Operator commands for the fashion classifier.")
@click.pass_context
def group(ctx: click.Context) -> None:
    ctx.obj = Context()


for _module in (classify, stack, upload, results, sweep, report, health, review, events, backfill, dataset, model):
    for _command in _module.COMMANDS:
        group.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run one command line (``argv``, default ``sys.argv[1:]``); returns the
    exit code: the command's own (0, or 1 for e.g. an unhealthy stack), 1 or
    2 from a :class:`CommandError`, 2 for a usage error."""
    try:
        code = group.main(args=argv, prog_name="fashionctl", standalone_mode=False)
    except CommandError as exc:
        for line in exc.message.splitlines() or [""]:
            click.echo(f"fashionctl: {line}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("fashionctl: aborted", err=True)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
