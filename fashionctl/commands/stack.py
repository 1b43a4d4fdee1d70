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


def _port_options(command: F) -> F:
    """``--storage-port`` ... ``--sweep-port``."""
    defaults = localcloud.Ports()
    for name in reversed(("storage", "pubsub", "firestore", "function", "predict", "sweep", "review")):
        command = click.option(
            f"--{name}-port", type=int, default=getattr(defaults, name), show_default=True, help="0 picks a free port"
        )(command)
    return command


@click.command("up", help="start the local emulated cloud on loopback")
@state_dir_option
@_port_options
@click.option("--project", default=localcloud.PROJECT, show_default=True, help="a demo- project id")
@click.option(
    "--model-store",
    type=click.Path(path_type=Path),
    default=None,
    help=f"local model store to publish (default: {localcloud.DEFAULT_MODEL_STORE} once it has a current model, "
    "else the embedded default-model/)",
)
@click.option("--function-source", type=click.Path(path_type=Path), default=localcloud.DEFAULT_FUNCTION_SOURCE, show_default=True)
@click.option("--function-target", default=localcloud.DEFAULT_FUNCTION_TARGET, show_default=True)
@click.option("--no-function", is_flag=True, help="start neither the function nor the bridge")
@click.option("--bridge-target", help="post events to this URL instead of the function")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="VAR=VALUE",
    help="a function setting (shared/settings.py Settings.ENV), repeatable",
)
@click.option(
    "--bridge-source",
    type=click.Choice(localcloud.BRIDGE_SOURCES),
    default="auto",
    show_default=True,
    help="where the bridge finds uploads: storage notifications through the Pub/Sub emulator, or listing the "
    "incoming bucket; auto: pubsub when its emulator can run",
)
@click.option("--bridge-arg", multiple=True, metavar="ARG", help="extra argument for the bridge, repeatable")
@click.option("--start-timeout", type=float, default=90.0, show_default=True, help="seconds per component")
@click.option(
    "--sdk-root", type=click.Path(path_type=Path), help="Google Cloud CLI root holding platform/ (default: found from gcloud)"
)
@click.option(
    "--firestore",
    type=click.Choice(localcloud.FIRESTORE_KINDS),
    default="auto",
    show_default=True,
    help="the Cloud CLI emulator, the npm @firestore-emulator/server, or the first that can run",
)
@click.option(
    "--node-dir",
    type=click.Path(path_type=Path),
    default=localcloud.DEFAULT_NODE_DIR,
    show_default=True,
    help="npm prefix for the fallback",
)
@pass_context
def up(
    context: Context,
    storage_port: int,
    pubsub_port: int,
    firestore_port: int,
    function_port: int,
    predict_port: int,
    sweep_port: int,
    review_port: int,
    project: str,
    model_store: Path,
    function_source: Path,
    function_target: str,
    no_function: bool,
    bridge_target: str | None,
    overrides: tuple[str, ...],
    bridge_source: str,
    bridge_arg: tuple[str, ...],
    start_timeout: float,
    sdk_root: Path | None,
    firestore: str,
    node_dir: Path,
) -> int:
    try:
        settings = localcloud.default_settings(project, **localcloud.parse_settings_overrides(list(overrides)))
    except ValueError as exc:  # SettingsError too
        raise CommandError(str(exc), USAGE) from exc
    config = localcloud.StackConfig(
        state_dir=context.state_dir,
        ports=localcloud.Ports(
            storage=storage_port,
            pubsub=pubsub_port,
            firestore=firestore_port,
            function=function_port,
            predict=predict_port,
            sweep=sweep_port,
            review=review_port,
        ),
        settings=settings,
        model_store=model_store or default_model_store(localcloud.DEFAULT_MODEL_STORE),
        function_source=None if no_function else function_source,
        function_target=function_target,
        bridge_target=bridge_target,
        bridge_args=bridge_arg,
        bridge_source=bridge_source,
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
