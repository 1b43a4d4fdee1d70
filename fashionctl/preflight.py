"""Before and while a command talks to the local stack: a quick TCP probe of
the emulator hosts the environment names, so that a stopped stack is reported
in seconds instead of after the client libraries' retries (about 95 s), and
the one mapping of "nothing to talk to" errors to a CommandError with a hint
(:func:`reaching_the_stack`), which every command that reads or writes the
stack's services uses."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

from fashionctl.errors import CommandError

#: the emulator host variables, and what each one names
EMULATORS = {"STORAGE_EMULATOR_HOST": "Cloud Storage", "FIRESTORE_EMULATOR_HOST": "Firestore"}
#: seconds to wait for one TCP connection
PROBE_TIMEOUT = 3.0
#: what to do when there is no stack and no credentials
NO_STACK_HINT = "start the local stack with `fashionctl up`, or set up Google credentials for the real services"
#: what to do when a call to the stack's emulators failed
RUNNING_HINT = "is the stack running? see `fashionctl status`"


def host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``http://host:port/...`` -> (host, port). Raises ValueError without a port."""
    parts = urlsplit(value if "://" in value else f"//{value}")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{value!r} has no host:port")
    return parts.hostname, parts.port


def probe_emulators(env: Mapping[str, str], names: tuple[str, ...] = tuple(EMULATORS), timeout: float = PROBE_TIMEOUT) -> None:
    """Open (and close) one TCP connection to each emulator host of ``names``
    that ``env`` sets. Raises CommandError (exit 1) naming the first one that
    does not accept it within ``timeout`` seconds; unset hosts are skipped
    (the real services are used then)."""
    for name in names:
        value = env.get(name)
        if not value:
            continue
        try:
            host, port = host_port(value)
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"cannot reach the {EMULATORS[name]} emulator at {value} ({name}): {exc}\nis the stack running? (fashionctl up)"
            ) from exc


def stack_hint(env: Mapping[str, str], names: tuple[str, ...] = tuple(EMULATORS)) -> str:
    """:data:`RUNNING_HINT` when ``env`` names an emulator host of ``names``
    (a stack was meant to be there), else :data:`NO_STACK_HINT`."""
    return RUNNING_HINT if any(env.get(name) for name in names) else NO_STACK_HINT


@contextmanager
def reaching_the_stack(env: Mapping[str, str], action: str, names: tuple[str, ...] = tuple(EMULATORS)) -> Iterator[None]:
    """Probe the emulators of ``names`` (:func:`probe_emulators`), then run
    the block, turning the client libraries' errors into one CommandError
    (exit 1), ``cannot ACTION: ...`` with a hint: no emulator host and no
    Google credentials -> start the stack; a failed call -> check it."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import DefaultCredentialsError

    probe_emulators(env, names)
    try:
        yield
    except DefaultCredentialsError as exc:
        raise CommandError(f"cannot {action}: no local stack and no Google credentials\n{NO_STACK_HINT}") from exc
    except GoogleAPIError as exc:
        raise CommandError(f"cannot {action}: {exc}\n{stack_hint(env, names)}") from exc
