"""The context every ``fashionctl`` command gets: the stack's state folder,
the environment, the env file merged with it (built once), and the Google
clients it names (made on first use)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click

from localcloud.defaults import DEFAULT_STATE_DIR
from localcloud.state import ENV_FILE, read_env_file
from shared.settings import Settings

#: what the environment may override in the stack's env file: the function
#: settings (Settings.ENV), the emulator hosts, and the deployed sweep's and review desk's URLs
OVERRIDABLE = frozenset(
    {*Settings.ENV, "STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "SWEEP_URL", "REVIEW_URL"}
)

F = TypeVar("F", bound=Callable[..., Any])


def merged_env(environ: Mapping[str, str], env_file: Path) -> dict[str, str]:
    """The stack's env file (KEY=VALUE lines; {} when absent), overridden by
    the non-empty values ``environ`` sets for the :data:`OVERRIDABLE` names."""
    return {**read_env_file(env_file), **{k: v for k, v in environ.items() if k in OVERRIDABLE and v}}


@dataclass
class Context:
    """Built once per command line by the ``fashionctl`` group; ``--state-dir``
    sets ``state_dir`` before the command runs."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    state_dir: Path = DEFAULT_STATE_DIR

    @cached_property
    def env(self) -> dict[str, str]:
        """The stack's env file merged with the environment (:func:`merged_env`)."""
        return merged_env(self.environ, self.state_dir / ENV_FILE)

    @cached_property
    def firestore(self) -> Any:
        """A Firestore client: the emulator's when ``FIRESTORE_EMULATOR_HOST`` is set, else the real one."""
        from fashionctl.results import firestore_client

        return firestore_client(self.env)

    @cached_property
    def storage(self) -> Any:
        """A Cloud Storage client: fake-gcs-server's when ``STORAGE_EMULATOR_HOST`` is set, else the real one."""
        from fashionctl.sweep import storage_client

        return storage_client(self.env)


pass_context = click.make_pass_decorator(Context, ensure=True)


def _set_state_dir(ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    ctx.ensure_object(Context).state_dir = value
    return value


def state_dir_option(command: F) -> F:
    """``--state-dir``: where the stack keeps its state, logs and env file."""
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_STATE_DIR,
        show_default=True,
        expose_value=False,
        is_eager=True,
        callback=_set_state_dir,
        help="state, logs and env file",
    )(command)


class PositiveInt(click.ParamType):
    """An integer of at least 1."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if number < 1:
            self.fail(f"{value}: must be at least 1", param, ctx)
        return number


POSITIVE_INT = PositiveInt()
