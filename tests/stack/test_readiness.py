"""Readiness checks on logs that several runs append to (a second
``fashionctl up`` in the same state folder, or a component restarted)."""

from __future__ import annotations

import time
from pathlib import Path

from fashionctl import stack


def _run(name: str, script: str, log: Path) -> stack.Proc:
    return stack.spawn(name, ["sh", "-c", script], log)


def test_a_log_readiness_check_ignores_the_lines_of_an_earlier_run(tmp_path: Path):
    log = tmp_path / "bridge.log"
    first = _run("bridge", "echo 'bridge started'", log)
    deadline = time.monotonic() + 10
    while stack.alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.stop(first, timeout=2)
    assert "bridge started" in log.read_text()

    second = _run("bridge", "sleep 0.5; echo 'bridge started'; sleep 30", log)
    try:
        check = stack.log_contains(str(log), "bridge started", "bridge")
        assert not check()  # only the earlier run said so
        assert stack.log_contains(str(log), "bridge started")()  # without a name: anywhere in the file
        assert stack.wait_until(second, check, 10) >= 0.3
    finally:
        stack.stop(second, timeout=2)


def test_the_npm_firestore_readiness_only_counts_its_latest_start(tmp_path: Path):
    log = tmp_path / "firestore.log"
    log.write_text("--- t0 starting firestore: node launcher.js\nfirestore emulator listening on 127.0.0.1:1\n")
    proc = _run("firestore", "sleep 30", log)
    proc.url = "grpc://127.0.0.1:1"
    try:
        assert not stack.firestore_ready(proc)()
        with log.open("a") as out:
            out.write("firestore emulator listening on 127.0.0.1:1\n")
        assert stack.firestore_ready(proc)()
    finally:
        stack.stop(proc, timeout=2)
