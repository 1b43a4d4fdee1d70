"""Readiness checks on logs that several runs append to (a second
``fashionctl up`` in the same state folder, or a component restarted)."""

from __future__ import annotations

import time
from pathlib import Path

import localcloud


def _run(name: str, script: str, log: Path) -> localcloud.Proc:
    return localcloud.spawn(name, ["sh", "-c", script], log)


def test_a_log_readiness_check_ignores_the_lines_of_an_earlier_run(tmp_path: Path):
    log = tmp_path / "bridge.log"
    first = _run("bridge", "echo 'bridge started'", log)
    deadline = time.monotonic() + 10
    while localcloud.alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    localcloud.stop(first, timeout=2)
    assert "bridge started" in log.read_text()

    second = _run("bridge", "sleep 0.5; echo 'bridge started'; sleep 30", log)
    try:
        check = localcloud.log_contains(str(log), "bridge started", "bridge")
        assert not check()  # only the earlier run said so
        assert localcloud.log_contains(str(log), "bridge started")()  # without a name: anywhere in the file
        assert localcloud.wait_until(second, check, 10) >= 0.3
    finally:
        localcloud.stop(second, timeout=2)


def test_the_npm_firestore_readiness_only_counts_its_latest_start(tmp_path: Path):
    log = tmp_path / "firestore.log"
    log.write_text("--- t0 starting firestore: node launcher.js\nfirestore emulator listening on 127.0.0.1:1\n")
    proc = _run("firestore", "sleep 30", log)
    proc.url = "grpc://127.0.0.1:1"
    try:
        assert not localcloud.firestore_ready(proc)()
        with log.open("a") as out:
            out.write("firestore emulator listening on 127.0.0.1:1\n")
        assert localcloud.firestore_ready(proc)()
    finally:
        localcloud.stop(proc, timeout=2)
