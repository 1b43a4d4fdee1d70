"""The library API of ``localcloud`` (what ``fashionctl`` and the demo call):
it returns values or raises a typed error and never prints; and
``fashionctl``'s one error path (a ``CommandError`` printed by ``main``).
Real processes (``sleep``) stand in for components; no emulator is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import localcloud
from fashionctl import cli
from fashionctl.context import Context

REPO = Path(__file__).resolve().parents[2]


def no_tools(tmp_path: Path) -> localcloud.Tools:
    return localcloud.Tools(fake_gcs=None, java=None, sdk_root=None, pubsub_jar=None, firestore_jar=None, node_dir=tmp_path)


def record_sleeper(state_dir: Path, name: str = "pubsub") -> localcloud.Proc:
    state_dir.mkdir(parents=True, exist_ok=True)
    proc = localcloud.spawn(name, ["sleep", "60"], state_dir / f"{name}.log")
    state = localcloud.State(state_dir=str(state_dir.resolve()), started_at="2026-11-29T00:00:00+00:00")
    state.add(proc)
    return proc


def test_up_without_the_programs_raises_tools_missing_and_prints_nothing(tmp_path, capsys):
    config = localcloud.StackConfig(state_dir=tmp_path / "state", ports=localcloud.Ports.free(), firestore="official")
    with pytest.raises(localcloud.ToolsMissing) as raised:
        localcloud.up(config, no_tools(tmp_path))
    assert set(raised.value.missing) == {"storage", "pubsub", "firestore"}
    assert "cannot start pubsub: pubsub emulator absent" in str(raised.value)
    assert not (tmp_path / "state" / localcloud.STATE_FILE).exists()
    assert capsys.readouterr() == ("", "")


def test_up_raises_already_running_naming_the_live_processes(tmp_path, capsys):
    state_dir = tmp_path / "state"
    sleeper = record_sleeper(state_dir)
    before = (state_dir / localcloud.STATE_FILE).read_text()
    try:
        with pytest.raises(localcloud.AlreadyRunning) as raised:
            localcloud.up(localcloud.StackConfig(state_dir=state_dir), no_tools(tmp_path))
        assert [p.pid for p in raised.value.running] == [sleeper.pid]
        assert f"pubsub (pid {sleeper.pid})" in str(raised.value)
        assert (state_dir / localcloud.STATE_FILE).read_text() == before
        status = localcloud.status(state_dir)
        assert status.all_alive and status.alive == [True]
    finally:
        localcloud.stop(sleeper, timeout=2)
    assert capsys.readouterr() == ("", "")


def test_down_returns_what_it_stopped_and_status_then_finds_nothing(tmp_path, capsys):
    state_dir = tmp_path / "state"
    sleeper = record_sleeper(state_dir)
    (state_dir / localcloud.ENV_FILE).write_text("A=1\n")
    stopped = localcloud.down(state_dir)
    assert stopped.ok
    assert [(p.proc.pid, p.verdict) for p in stopped.processes or []] == [(sleeper.pid, "stopped")]
    assert not localcloud.alive(sleeper)
    assert not (state_dir / localcloud.STATE_FILE).exists() and not (state_dir / localcloud.ENV_FILE).exists()
    assert localcloud.down(state_dir).processes is None
    assert localcloud.status(state_dir).state is None
    assert capsys.readouterr() == ("", "")


def test_an_unreadable_state_file_is_a_stack_error(tmp_path):
    (tmp_path / localcloud.STATE_FILE).write_text("{not json")
    with pytest.raises(localcloud.StackError, match="unreadable"):
        localcloud.status(tmp_path)


def test_a_command_error_is_printed_once_with_its_exit_code(tmp_path, capsys):
    code = cli.main(["up", "--state-dir", str(tmp_path), "--set", "BOGUS=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fashionctl: --set 'BOGUS=1': expected VAR=VALUE")
    assert not (tmp_path / localcloud.STATE_FILE).exists()


def test_absent_programs_print_one_line_each_and_exit_2(tmp_path, capsys):
    code = cli.main(["up", "--state-dir", str(tmp_path / "s"), "--sdk-root", str(tmp_path), "--firestore", "official"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert "fashionctl: cannot start pubsub: pubsub emulator absent" in "\n".join(lines)
    assert all(line.startswith("fashionctl: cannot start ") for line in lines)


def test_the_context_merges_the_env_file_with_the_environment(tmp_path):
    (tmp_path / localcloud.ENV_FILE).write_text("INCOMING_BUCKET=from-file\nSTORAGE_EMULATOR_HOST=http://127.0.0.1:1\n")
    context = Context(environ={"STORAGE_EMULATOR_HOST": "http://127.0.0.1:2", "HOME": "/root"}, state_dir=tmp_path)
    assert context.env == {"INCOMING_BUCKET": "from-file", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:2"}


def test_python_dash_m_fashionctl_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "fashionctl", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("classify", "up", "down", "status", "upload", "results", "sweep", "report", "health"):
        assert f"  {command} " in result.stdout
