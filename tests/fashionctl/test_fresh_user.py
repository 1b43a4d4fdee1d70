"""What a fresh user met (notes of the trial of main): ``health`` without
matplotlib, ``health``/``upload`` with no stack (no env file and no
credentials, or emulator hosts of a stopped stack: a fast, clear error),
``report`` without matplotlib, ``upload`` of an empty file, the CLI's 409
message, and a dry-run sweep in ``health``. The commands run through
:func:`fashionctl.cli.main`, as the console script does."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fashionctl import cli
from fashionctl import health as health_core
from fashionctl.review import render_result
from tests.images import make_photo_like

REPO = Path(__file__).resolve().parents[2]
EMULATOR_NAMES = ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No emulator hosts, no stack env file, and no Google credentials
    (GOOGLE_APPLICATION_CREDENTIALS names a missing file, so the library
    fails at once instead of trying the metadata server)."""
    for name in (*EMULATOR_NAMES, "INCOMING_BUCKET", "MODELS_BUCKET", "PROCESSED_BUCKET", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-credentials.json"))
    return tmp_path / "state"


def test_health_runs_without_matplotlib():
    """The `make demo` venv has no matplotlib: importing and running the
    health command's modules must not need it (matplotlib hidden here)."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import fashionctl.commands.health, fashionctl.health as h\n"
        "from fashionctl import cli\n"
        "from functions.review_desk import read_backlog\n"
        "from shared.model_layout import current_version\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_report_without_matplotlib_is_one_clean_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli.main(["report", "--state-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0] and "make venv" in err[0]
    assert not (tmp_path / "out").exists()


def test_health_with_no_stack_and_no_credentials_says_start_the_stack(no_stack: Path, capsys: pytest.CaptureFixture):
    started = time.monotonic()
    assert cli.main(["health", "--state-dir", str(no_stack)]) == 1
    err = capsys.readouterr().err
    assert "fashionctl up" in err and "Traceback" not in err
    assert time.monotonic() - started < 20


def test_a_stopped_stack_fails_fast_with_a_hint(
    no_stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
):
    """Old emulator variables, nothing listening: health, upload, results
    and dataset export fail in seconds (not after ~95 s of client retries)
    and say what to do."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("INCOMING_BUCKET", "incoming")
    monkeypatch.setenv("MODELS_BUCKET", "models")
    photo = tmp_path / "11979.jpg"
    photo.write_bytes(make_photo_like(seed=3))
    for argv in (["health"], ["upload", str(photo)], ["results"], ["dataset", "export", "--out", str(tmp_path / "set")]):
        capsys.readouterr()
        started = time.monotonic()
        assert cli.main([*argv, "--state-dir", str(no_stack)]) == 1
        seconds = time.monotonic() - started
        err = capsys.readouterr().err
        assert "is the stack running? (fashionctl up)" in err, err
        assert "emulator at" in err
        assert seconds < 15, f"{argv}: {seconds:.1f} s"


def test_upload_of_an_empty_file_says_it_is_empty(
    no_stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
):
    """As classify and predict say it; checked before anything is sent (the
    storage host is only probed, and here a listening socket stands in)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("INCOMING_BUCKET", "incoming")
        empty = tmp_path / "empty.jpg"
        empty.write_bytes(b"")
        assert cli.main(["upload", str(empty), "--state-dir", str(no_stack)]) == 1
    out = capsys.readouterr().out
    assert f"NOT UPLOADED {empty}: the file is empty" in out
    assert "not an image" not in out


def test_a_409_names_the_cli_flag():
    result = {
        "id": "abc",
        "ok": False,
        "error": {
            "code": "already_decided",
            "message": "the item was already rejected; send change: true to replace that decision",
        },
    }
    line = render_result(result)
    assert "pass --change to replace that decision" in line and "change: true" not in line


def test_health_says_a_dry_run_sweep_was_a_dry_run():
    def health(sweep: dict) -> str:
        return health_core.render(health_core.Health("v1", 0, None, sweep, 0, 0))

    dry = health({"id": "r1", "status": "finished", "dry_run": True, "would_process": ["a", "b"], "counts": {}})
    assert "r1 (finished, dry run," in dry and "would process 2, moved nothing" in dry
    real = health({"id": "r2", "status": "finished", "dry_run": False, "counts": {"processed": 3, "failed": 0}})
    assert "dry run" not in real and "processed 3, failed 0" in real
