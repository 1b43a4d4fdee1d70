"""Processes of the local stack: each started as the leader of its own
process group (so that stopping it stops its children too), recorded with its
start time (so that a reused PID is not mistaken for it), and polled until
ready."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from localcloud.defaults import HOST
from localcloud.errors import StackError


@dataclass
class Proc:
    """One started process: the leader of its own process group."""

    name: str
    pid: int
    log: str
    argv: list[str]
    port: int | None = None
    url: str | None = None
    start_ticks: int | None = None  # /proc/<pid>/stat start time, guards against PID reuse


#: Popen objects of the processes this Python process started, to reap them
_CHILDREN: dict[int, subprocess.Popen] = {}


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on at this moment (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(
    name: str,
    argv: list[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
    url: str | None = None,
) -> Proc:
    """Start ``argv`` in a new session (its own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"--- {datetime.now(UTC).isoformat()} starting {name}: {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    return Proc(
        name=name, pid=process.pid, log=str(log_path), argv=list(argv), port=port, url=url, start_ticks=_start_ticks(process.pid)
    )


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else None


def alive(proc: Proc) -> bool:
    """The recorded process still runs (not a zombie, and not a reused PID)."""
    if (child := _CHILDREN.get(proc.pid)) is not None and child.poll() is not None:
        return False
    stat = _proc_stat(proc.pid)
    if stat is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc: best effort
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if stat[0] in ("Z", "X"):
        return False
    return proc.start_ticks is None or int(stat[19]) == proc.start_ticks


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) and int(stat[2]) == pgid and stat[0] not in "ZX":
            members.append(int(entry.name))
    return members


def stop(proc: Proc, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by ``proc``, SIGKILL what is left after
    ``timeout``; True when nothing of it is left running."""
    child = _CHILDREN.pop(proc.pid, None)
    if alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    elif not _group_members(proc.pid):
        _reap(child)
        return True
    deadline = time.monotonic() + timeout
    while _group_members(proc.pid) and time.monotonic() < deadline:
        _reap(child, block=False)
        time.sleep(0.05)
    if _group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
    _reap(child)
    return not _group_members(proc.pid)


def _reap(child: subprocess.Popen | None, block: bool = True) -> None:
    if child is None:
        return
    if block:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    else:
        child.poll()


def log_tail(proc: Proc, lines: int = 15) -> str:
    """The last ``lines`` lines of the process's log, or "(no log)"."""
    try:
        return "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(proc: Proc, ready: Callable[[], bool], timeout: float) -> float:
    """Poll ``ready`` until it holds; returns the seconds waited. Raises
    :class:`StackError` (with the log's tail) if the process dies or time runs out."""
    start = time.monotonic()
    while True:
        if not alive(proc):
            raise StackError(f"{proc.name} exited during startup; last lines of {proc.log}:\n{log_tail(proc)}")
        if ready():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise StackError(
                f"{proc.name} did not become ready within {timeout:.0f} s; last lines of {proc.log}:\n{log_tail(proc)}"
            )
        time.sleep(0.1)


def http_answers(url: str, *, ok_only: bool = True) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 2xx (or any HTTP status when ``ok_only`` is false)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return not ok_only
        except (OSError, http.client.HTTPException):
            # HTTPException (BadStatusLine): something that is not an HTTP/1
            # server holds the port (another process's gRPC server took it
            # between our choice and our bind): not ready; the process's own
            # exit ("address already in use") then tells wait_until why
            return False

    return check


def log_contains(path: str, text: str, name: str | None = None) -> Callable[[], bool]:
    """A readiness check: ``text`` is in the log; with ``name``, only in the
    part that the latest start of ``name`` wrote (logs are appended to, so an
    earlier run's lines must not count)."""
    marker = f" starting {name}: " if name else None

    def check() -> bool:
        try:
            content = Path(path).read_text(errors="replace")
        except OSError:
            return False
        if marker is not None and (start := content.rfind(marker)) >= 0:
            end_of_marker = content.find("\n", start)  # the marker line quotes the command line: skip it
            content = content[end_of_marker + 1 :] if end_of_marker >= 0 else ""
        return text in content

    return check
