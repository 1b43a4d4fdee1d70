"""Failpoints: named places in the processing core where a test can make an
instance crash, hang or fail, to prove that every step can be repeated.

TEST-ONLY. Configured by the ``FAILPOINTS`` setting (shared/settings.py),
read once at start and handed to :class:`functions.processing.Processor`;
empty (the default, and what Terraform deploys) means off, and then
:meth:`FailPoints.hit` returns at its first test. Syntax::

    FAILPOINTS="after_download=crash"
    FAILPOINTS="after_copy=hang:30,before_delete=error"

Points (in the order one delivery reaches them): ``after_download`` (the
bytes are read, nothing decided), ``after_decision`` (the decision is written
to Firestore), ``after_copy`` (the processed copy exists, its destination is
not yet recorded), ``before_delete`` (destination recorded, the source not
yet deleted), ``after_delete`` (the source is deleted, the record not yet
final). The review desk's decisions: ``review_after_copy`` (the copy at the
final name exists, not yet recorded), ``review_before_delete`` (recorded, the
review copy not yet deleted), ``review_after_delete`` (deleted, the decision
not yet committed), ``review_before_publish`` (the decision committed with its
event pending in the record's outbox, the event not yet published). The completion events: ``before_publish`` (the record is
final with its event pending in its outbox, the event not yet published).

Actions:

- ``crash``: the instance dies in the middle of the request (``os._exit``:
  no response, no cleanup, no failure recorded, the lease left held).
- ``hang:<seconds>``: logs ``failpoint <name> reached`` (one JSON line) and
  sleeps, so that a test can take a dependency down at exactly that step
  before the delivery goes on.
- ``error``: raises ConnectionError, which the core treats as transient.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

POINTS = (
    "after_download",
    "after_decision",
    "after_copy",
    "before_delete",
    "after_delete",
    # the review desk's move (functions/review_desk.py): the new copy written,
    # its name recorded (review copy not yet deleted), the review copy deleted
    "review_after_copy",
    "review_before_delete",
    "review_after_delete",
    # the decision committed with its event pending in the outbox, not yet published
    "review_before_publish",
    # the record is final with its completion event pending, the event not yet published
    "before_publish",
)
CRASH_EXIT_CODE = 70


class FailPointError(ValueError):
    """The FAILPOINTS setting does not parse."""


@dataclass(frozen=True)
class FailPoints:
    """Point name -> action; empty: every point is off."""

    actions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> FailPoints:
        actions: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, sep, action = item.partition("=")
            name, action = name.strip(), action.strip()
            if not sep or name not in POINTS:
                raise FailPointError(f"failpoint {item!r}: expected NAME=ACTION with NAME one of {', '.join(POINTS)}")
            if action.startswith("hang:"):
                try:
                    float(action.removeprefix("hang:"))
                except ValueError:
                    raise FailPointError(f"failpoint {item!r}: hang needs seconds, e.g. hang:30") from None
            elif action not in ("crash", "error"):
                raise FailPointError(f"failpoint {item!r}: the action is crash, error or hang:<seconds>")
            actions[name] = action
        return cls(actions)

    def __bool__(self) -> bool:
        return bool(self.actions)

    def hit(self, name: str) -> None:
        """Do what ``name`` is set to do; nothing when it is not set."""
        if not self.actions:
            return
        action = self.actions.get(name)
        if action is None:
            return
        log.warning("failpoint %s reached", name, extra={"failpoint": name, "action": action})
        if action == "crash":
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(CRASH_EXIT_CODE)
        if action == "error":
            raise ConnectionError(f"failpoint {name}: injected error")
        time.sleep(float(action.removeprefix("hang:")))
