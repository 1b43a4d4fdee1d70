"""The typed errors of the local emulated cloud. None of them prints: the
caller (``fashionctl``, the demo, the tests) decides what to show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localcloud.processes import Proc


class StackError(RuntimeError):
    """A component could not be started or the stack is in an unusable state
    (a port in use, another caller holding the state folder's lock, an
    unreadable state file)."""


class AlreadyRunning(StackError):
    """``up`` found live processes recorded in the state folder."""

    def __init__(self, state_dir: Path, running: Sequence[Proc]) -> None:
        self.state_dir = state_dir
        self.running = list(running)
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in self.running)
        super().__init__(f"a stack is already running from {state_dir}: {names}")


class ToolsMissing(StackError):
    """Programs an emulator needs are absent; ``missing`` maps the component
    (storage, pubsub, firestore) to why it cannot start. Nothing was started."""

    def __init__(self, missing: Mapping[str, str]) -> None:
        self.missing = dict(missing)
        super().__init__("\n".join(f"cannot start {component}: {reason}" for component, reason in self.missing.items()))


class StartFailed(StackError):
    """A component failed while the stack was starting; everything started so
    far has been stopped again. ``__cause__`` is the original error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"starting the stack failed: {cause}")
