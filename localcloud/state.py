"""The state folder: the ports, the recorded processes (state.json), the env
file that shells and ``fashionctl`` read, and the lock that keeps two callers
from starting or stopping the same stack at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud.defaults import HOST
from localcloud.errors import StackError
from localcloud.processes import Proc, free_port

STATE_FILE = "state.json"
ENV_FILE = "env"


@dataclass(frozen=True)
class Ports:
    """Loopback ports; 0 picks a free one."""

    storage: int = 9023
    pubsub: int = 8085
    firestore: int = 8086
    function: int = 8087
    predict: int = 8088
    sweep: int = 8089
    review: int = 8090

    @classmethod
    def free(cls) -> Ports:
        """Every port chosen free at start (0)."""
        return cls(**dict.fromkeys(asdict(cls()), 0))

    def resolved(self) -> Ports:
        return Ports(**{name: port or free_port() for name, port in asdict(self).items()})

    def check_free(self, host: str = HOST) -> None:
        """Raise StackError naming the first port something else listens on
        (a readiness check would otherwise talk to that other server)."""
        for name, port in asdict(self).items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    raise StackError(
                        f"{host}:{port} ({name}) is in use: pass another --{name}-port, or 0 for a free one"
                    ) from exc


@dataclass
class State:
    """What ``up`` recorded in ``state_dir/state.json``: the processes, the
    env file's variables, and ``info`` (what each component is; readiness
    times in seconds under ``timings``)."""

    state_dir: str
    started_at: str
    env: dict[str, str] = field(default_factory=dict)
    components: list[Proc] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> State | None:
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StackError(f"{state_dir / STATE_FILE} is unreadable: {exc}") from exc
        data["components"] = [Proc(**c) for c in data.get("components", [])]
        return cls(**data)

    def add(self, proc: Proc) -> Proc:
        self.components.append(proc)
        self.save()
        return proc


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """KEY=VALUE lines, readable by ``set -a; . FILE; set +a`` and :func:`read_env_file`."""
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments ignored); {} if absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip().removeprefix("export "): value.strip() for key, value in pairs}


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state folder's lock (created if absent) for the block; raises
    :class:`StackError` at once when another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StackError(f"another process is starting or stopping the stack in {state_dir}") from exc
        yield
