"""Before a command talks to the local stack: a quick TCP probe of the
emulator hosts the environment names, so that a stopped stack is reported in
seconds instead of after the client libraries' retries (about 95 s), and
the hint shown when there are neither emulators nor Google credentials."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from fashionctl.errors import CommandError

#: the emulator host variables, and what each one names
EMULATORS = {"STORAGE_EMULATOR_HOST": "Cloud Storage", "FIRESTORE_EMULATOR_HOST": "Firestore"}
#: seconds to wait for one TCP connection
PROBE_TIMEOUT = 3.0
#: what to do when there is no stack and no credentials
NO_STACK_HINT = "start the local stack with `fashionctl up`, or set up Google credentials for the real services"


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
