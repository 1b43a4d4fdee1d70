"""``fashionctl model compare|promote|rollback``: the candidate model against
the current one, and moving the pointers (training/model_loop.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError
from training.publish import GateConfig

_GATE = GateConfig()


@click.group("model", short_help="compare, promote and roll back models in the model store")
def model() -> None:
    """Compare the candidate model with the current one, promote it, roll back."""


def _store_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store",
        metavar="DIR|gs://BUCKET[/PREFIX]",
        help="the model store (default: gs://<MODELS_BUCKET> from the environment or the stack's env file)",
    )(command)


def _gate_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--min-accuracy", type=float, default=_GATE.min_accuracy, show_default=True, help="floor on the base test accuracy"
    )(command)
    command = click.option(
        "--max-regression",
        type=float,
        default=_GATE.max_regression,
        show_default=True,
        help="how far below the current model the candidate may be, on each source and on reviewed items",
    )(command)
    return click.option(
        "--data",
        "overrides",
        multiple=True,
        metavar="SOURCE=PATH",
        help="read a source of the candidate's split from another location (repeatable)",
    )(command)


def _open_store(context: Context, store: str | None) -> Any:
    from training.storage import GcsStore, open_store

    location = store or (f"gs://{context.env['MODELS_BUCKET']}" if context.env.get("MODELS_BUCKET") else None)
    if not location:
        raise CommandError("no model store: pass --store, or set MODELS_BUCKET (or start the stack)", USAGE)
    return GcsStore(location, context.storage) if location.startswith("gs://") else open_store(location)


def _compare(context: Context, store: str | None, min_accuracy: float, max_regression: float, overrides: tuple[str, ...]):
    from google.api_core.exceptions import GoogleAPIError

    from shared import records as rec
    from shared.errors import ModelError
    from training import dataset_export, model_loop

    pairs = dict(item.split("=", 1) for item in overrides if "=" in item)
    if len(pairs) != len(overrides):
        raise CommandError("--data takes SOURCE=PATH", USAGE)
    gate = GateConfig(min_accuracy=min_accuracy, max_regression=max_regression)
    target = _open_store(context, store)
    records: list[rec.Classification] = []
    fetch = None
    if context.env.get("FIRESTORE_EMULATOR_HOST") or context.env.get("GOOGLE_CLOUD_PROJECT"):
        try:
            records = [
                rec.Classification.from_firestore(s.to_dict(), s.id)
                for s in context.firestore.collection(rec.COLLECTION).stream()
            ]
            fetch = dataset_export.fetcher(context.storage)
        except GoogleAPIError as exc:
            raise CommandError(f"cannot read the classification records: {exc}") from exc
    try:
        return model_loop.compare(target, gate, records=records, fetch=fetch, overrides=pairs), target
    except (model_loop.LoopError, ModelError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from exc


@model.command(
    "compare",
    help="The candidate model against the current one: agreement of the shadow answers stored in the records, "
    "per-class would-be changes, accuracy of both on reviewed items (the candidate's own training items left out), and "
    "the quality gate's verdict on the candidate's fixed test sets per source. Prints JSON; exits 1 when the gate refuses.",
)
@state_dir_option
@_store_option
@_gate_options
@pass_context
def compare(context: Context, store: str | None, min_accuracy: float, max_regression: float, overrides: tuple[str, ...]) -> int:
    result, _ = _compare(context, store, min_accuracy, max_regression, overrides)
    click.echo(json.dumps(result.to_dict(), indent=2))
    return 0 if result.gate and result.gate.passed else 1


@model.command(
    "promote",
    help="Make the candidate the current model when the quality gate passes (as `compare` decides it); otherwise "
    "refuse, say why and exit 1. The current pointer records the version it replaced, for `rollback`.",
)
@state_dir_option
@_store_option
@_gate_options
@click.option("--force", is_flag=True, help="promote even when the gate refuses")
@pass_context
def promote(
    context: Context, store: str | None, min_accuracy: float, max_regression: float, overrides: tuple[str, ...], force: bool
) -> int:
    from training import model_loop

    result, target = _compare(context, store, min_accuracy, max_regression, overrides)
    try:
        click.echo(model_loop.promote(target, result, force=force))
    except model_loop.LoopError as exc:
        raise CommandError(str(exc)) from exc
    return 0


@model.command("rollback", help="Point the current model back at the version it replaced.")
@state_dir_option
@_store_option
@pass_context
def rollback(context: Context, store: str | None) -> int:
    from training import model_loop

    try:
        click.echo(model_loop.rollback(_open_store(context, store)))
    except model_loop.LoopError as exc:
        raise CommandError(str(exc)) from exc
    return 0


COMMANDS = (model,)
