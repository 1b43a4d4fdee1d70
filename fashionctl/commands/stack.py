"""``fashionctl up|down|status``: the local emulated cloud (package
``localcloud``), its results printed.

Exit codes: ``up`` 0 when up, 1 when a stack already runs or a start failed,
2 when a program is absent or a setting is invalid; ``down`` 0 when nothing
is left running; ``status`` 0 when every component is alive, 1 otherwise,
3 when no stack is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

import localcloud
from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError
from shared.dev_paths import default_model_store

NOT_RECORDED = 3

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def stack_errors() -> Iterator[None]:
    """localcloud's typed errors as CommandErrors: absent programs exit 2, the rest 1."""
    try:
        yield
    except localcloud.ToolsMissing as exc:
        raise CommandError(str(exc), USAGE) from exc
    except localcloud.AlreadyRunning as exc:
        raise CommandError(f"{exc}\nsee `fashionctl status`, or stop it with `fashionctl down`") from exc
    except localcloud.StackError as exc:
        raise CommandError(str(exc)) from exc


#: the components with a loopback port, in ``--help`` order (localcloud.Ports' fields)
PORT_NAMES = ("storage", "pubsub", "firestore", "function", "predict", "sweep", "review")

#: ``up``'s options past the ports, in ``--help`` order: flags -> click.option's keywords
UP_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--project",), {"default": localcloud.PROJECT, "show_default": True, "help": "a demo- project id"}),
    (
        ("--model-store",),
        {
            "type": click.Path(path_type=Path),
            "default": None,
            "help": f"local model store to publish (default: {localcloud.DEFAULT_MODEL_STORE} once it has a current "
            "model, else the embedded default-model/)",
        },
    ),
    (
        ("--function-source",),
        {"type": click.Path(path_type=Path), "default": localcloud.DEFAULT_FUNCTION_SOURCE, "show_default": True},
    ),
    (("--function-target",), {"default": localcloud.DEFAULT_FUNCTION_TARGET, "show_default": True}),
    (("--no-function",), {"is_flag": True, "help": "start neither the function nor the bridge"}),
    (("--bridge-target",), {"help": "post events to this URL instead of the function"}),
    (
        ("--set", "overrides"),
        {"multiple": True, "metavar": "VAR=VALUE", "help": "a function setting (shared/settings.py Settings.ENV), repeatable"},
    ),
    (
        ("--bridge-source",),
        {
            "type": click.Choice(localcloud.BRIDGE_SOURCES),
            "default": "auto",
            "show_default": True,
            "help": "where the bridge finds uploads: storage notifications through the Pub/Sub emulator, or listing "
            "the incoming bucket; auto: pubsub when its emulator can run",
        },
    ),
    (("--bridge-arg",), {"multiple": True, "metavar": "ARG", "help": "extra argument for the bridge, repeatable"}),
    (
        ("--events-webhook",),
        {
            "metavar": "URL",
            "help": "POST every completion event to this URL (the push subscription's part; docs/events.md); needs "
            "the Pub/Sub emulator",
        },
    ),
    (("--events-push-arg",), {"multiple": True, "metavar": "ARG", "help": "extra argument for the events push, repeatable"}),
    (("--start-timeout",), {"type": float, "default": 90.0, "show_default": True, "help": "seconds per component"}),
    (
        ("--sdk-root",),
        {"type": click.Path(path_type=Path), "help": "Google Cloud CLI root holding platform/ (default: found from gcloud)"},
    ),
    (
        ("--firestore",),
        {
            "type": click.Choice(localcloud.FIRESTORE_KINDS),
            "default": "auto",
            "show_default": True,
            "help": "the Cloud CLI emulator, the npm @firestore-emulator/server, or the first that can run",
        },
    ),
    (
        ("--node-dir",),
        {
            "type": click.Path(path_type=Path),
            "default": localcloud.DEFAULT_NODE_DIR,
            "show_default": True,
            "help": "npm prefix for the fallback",
        },
    ),
)


def _port_options(command: F) -> F:
    """``--storage-port`` ... ``--review-port``."""
    defaults = localcloud.Ports()
    for name in reversed(PORT_NAMES):
        command = click.option(
            f"--{name}-port", type=int, default=getattr(defaults, name), show_default=True, help="0 picks a free port"
        )(command)
    return command


def _up_options(command: F) -> F:
    """Every option of :data:`UP_OPTIONS`, in its order."""
    for flags, keywords in reversed(UP_OPTIONS):
        command = click.option(*flags, **keywords)(command)
    return command


@click.command("up", help="start the local emulated cloud on loopback")
@state_dir_option
@_port_options
@_up_options
@pass_context
def up(
    context: Context,
    project: str,
    model_store: Path | None,
    function_source: Path,
    function_target: str,
    no_function: bool,
    bridge_target: str | None,
    overrides: tuple[str, ...],
    bridge_source: str,
    bridge_arg: tuple[str, ...],
    events_webhook: str | None,
    events_push_arg: tuple[str, ...],
    start_timeout: float,
    sdk_root: Path | None,
    firestore: str,
    node_dir: Path,
    **ports: int,
) -> int:
    """Start the stack; ``ports`` holds ``--storage-port`` ... ``--review-port``."""
    try:
        settings = localcloud.default_settings(project, **localcloud.parse_settings_overrides(list(overrides)))
    except ValueError as exc:  # SettingsError too
        raise CommandError(str(exc), USAGE) from exc
    config = localcloud.StackConfig(
        state_dir=context.state_dir,
        ports=localcloud.Ports(**{name: ports[f"{name}_port"] for name in PORT_NAMES}),
        settings=settings,
        model_store=model_store or default_model_store(localcloud.DEFAULT_MODEL_STORE),
        function_source=None if no_function else function_source,
        function_target=function_target,
        bridge_target=bridge_target,
        bridge_args=bridge_arg,
        bridge_source=bridge_source,
        events_webhook=events_webhook,
        events_push_args=events_push_arg,
        start_timeout=start_timeout,
        firestore=firestore,
    )
    tools = localcloud.find_tools(sdk_root, context.environ.get("JAVA_HOME"), node_dir)
    with stack_errors():
        started = localcloud.up(config, tools, progress=lambda line: click.echo(line))
    print_started(started)
    return 0


def print_started(started: localcloud.Started) -> None:
    """What ``up`` started, and how to talk to it from a shell."""
    state = started.state
    click.echo(started.headline())
    for proc in state.components:
        where = f"port {proc.port}" if proc.port else "-"
        click.echo(f"  {proc.name:<10} {where:<11} pid {proc.pid:<8} {proc.log}")
    for key in localcloud.INFO_KEYS:
        click.echo(f"  {key}: {state.info.get(key)}")
    click.echo("To talk to it from a shell:")
    for key, value in state.env.items():
        click.echo(f"  export {key}={value}")
    click.echo(f"  (or: set -a; . {started.env_file}; set +a)")


@click.command("down", help="stop the processes the stack started")
@state_dir_option
@pass_context
def down(context: Context) -> int:
    with stack_errors():
        stopped = localcloud.down(context.state_dir)
    if stopped.processes is None:
        click.echo(f"no stack recorded in {stopped.state_dir}: nothing to stop")
        return 0
    click.echo(f"stopping the stack recorded in {stopped.state_dir}")
    for item in stopped.processes:
        click.echo(f"  {item.proc.name:<10} pid {item.proc.pid:<8} {item.verdict}")
    return 0 if stopped.ok else 1


@click.command("status", help="show the stack's components, ports, PIDs and logs")
@state_dir_option
@pass_context
def status(context: Context) -> int:
    with stack_errors():
        found = localcloud.status(context.state_dir)
    state = found.state
    if state is None:
        click.echo(f"no stack recorded in {found.state_dir} (start one with `fashionctl up`)")
        return NOT_RECORDED
    click.echo(f"stack started {state.started_at}, state in {found.state_dir}")
    click.echo(f"  {'component':<10} {'port':<6} {'pid':<8} {'state':<6} log")
    for proc, is_alive in zip(state.components, found.alive, strict=True):
        click.echo(f"  {proc.name:<10} {proc.port or '-'!s:<6} {proc.pid:<8} {'alive' if is_alive else 'DEAD':<6} {proc.log}")
    for key in localcloud.INFO_KEYS:
        if key in state.info:
            click.echo(f"  {key}: {state.info[key]}")
    click.echo(f"  env file: {found.state_dir / localcloud.ENV_FILE}")
    return 0 if found.all_alive else 1


COMMANDS = (up, down, status)
