"""``fashionctl up|status|upload|down`` as a user runs them (subprocesses),
on free ports, with a recording CloudEvent function standing in for the
classify function so that these tests do not depend on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localcloud import ENV_FILE, STATE_FILE, State, alive, choose_firestore, find_tools, read_env_file, storage_client
from shared.model_layout import POINTER
from tests.emulators import firestore_kind, free_port, require, unavailable
from tests.localcloud.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
ECHO = Path(__file__).with_name("echo_function.py")
FREE_PORTS = ["--storage-port", "0", "--pubsub-port", "0", "--firestore-port", "0", "--function-port", "0"]
EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "INCOMING_BUCKET")


def require_stack() -> None:
    """Skip unless storage, Pub/Sub and some Firestore emulator can run here."""
    require("pubsub", "storage")
    if firestore_kind() is None:
        unavailable(f"firestore emulator unavailable: {choose_firestore(find_tools())[1]}")


def fashionctl(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in EMULATOR_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "fashionctl.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _kill_leftovers(state_dir: Path) -> None:
    """Safety net for a failing test: the recorded process groups must not outlive the tests."""
    state = State.load(state_dir)
    for proc in state.components if state else []:
        if alive(proc):
            os.killpg(proc.pid, signal.SIGKILL)


def make_model_store(root: Path) -> Path:
    version = root / "models" / "v-test"
    version.mkdir(parents=True)
    (version / "model.tflite").write_bytes(b"\x00tflite")
    (version / "manifest.json").write_text(json.dumps({"version": "v-test"}))
    (version / "metrics.json").write_text("{}")
    (root / POINTER).write_text(json.dumps({"version": "v-test"}))
    return root


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory):
    require_stack()
    state_dir = tmp_path_factory.mktemp("stack")
    store = make_model_store(tmp_path_factory.mktemp("model-store"))
    result = fashionctl(
        "up",
        "--state-dir",
        str(state_dir),
        *FREE_PORTS,
        "--model-store",
        str(store),
        "--function-source",
        str(ECHO),
        "--function-target",
        "record_event",
        "--bridge-arg=--min-backoff=0.2",
    )
    try:
        assert result.returncode == 0, result.stderr
        yield state_dir, store, result
    finally:
        fashionctl("down", "--state-dir", str(state_dir))
        _kill_leftovers(state_dir)


def test_up_prints_the_components_and_the_variables_to_export(running_stack):
    state_dir, _, result = running_stack
    for name in ("pubsub", "firestore", "storage", "function", "bridge"):
        assert f"  {name} " in result.stdout
    env = read_env_file(state_dir / ENV_FILE)
    assert env["GOOGLE_CLOUD_PROJECT"] == "demo-fashion"
    assert env["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
    assert env["FIRESTORE_EMULATOR_HOST"].startswith("127.0.0.1:")
    assert env["PUBSUB_EMULATOR_HOST"].startswith("127.0.0.1:")
    assert env["INCOMING_BUCKET"] == "demo-fashion-incoming"
    for key, value in env.items():
        assert f"export {key}={value}" in result.stdout


def test_status_shows_every_component_alive_with_port_pid_and_log(running_stack):
    state_dir, _, _ = running_stack
    result = fashionctl("status", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stdout
    state = State.load(state_dir)
    assert [p.name for p in state.components] == ["pubsub", "firestore", "storage", "function", "bridge"]
    for proc in state.components:
        line = next(line for line in result.stdout.splitlines() if line.split()[:1] == [proc.name])
        assert str(proc.pid) in line
        assert "alive" in line
        assert proc.log in line
        assert Path(proc.log).is_file()
        if proc.port:
            assert str(proc.port) in line


def test_a_second_up_says_a_stack_runs_and_fails(running_stack):
    state_dir, _, _ = running_stack
    before = (state_dir / STATE_FILE).read_text()
    result = fashionctl("up", "--state-dir", str(state_dir), *FREE_PORTS)
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert (state_dir / STATE_FILE).read_text() == before


def test_up_created_the_buckets_and_published_the_model(running_stack):
    state_dir, store, _ = running_stack
    env = read_env_file(state_dir / ENV_FILE)
    client = storage_client(env["STORAGE_EMULATOR_HOST"])
    assert {b.name for b in client.list_buckets()} >= {"demo-fashion-incoming", "demo-fashion-processed", "demo-fashion-models"}
    local = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    published = sorted(b.name for b in client.list_blobs("demo-fashion-models"))
    assert published == local
    assert client.bucket("demo-fashion-models").blob(POINTER).download_as_bytes() == (store / POINTER).read_bytes()


def test_uploaded_files_reach_the_function_as_cloudevents(running_stack, tmp_path):
    state_dir, _, _ = running_stack
    (tmp_path / "sub").mkdir()
    (tmp_path / "one.jpg").write_bytes(b"\xff\xd8\xff one")
    (tmp_path / "sub" / "two.png").write_bytes(b"\x89PNG\r\n\x1a\n two")
    (tmp_path / "notes.txt").write_text("not an image: not uploaded")
    # Names that browsers and phones give: the content decides, not the extension.
    (tmp_path / "sub" / "three.jfif").write_bytes(b"\xff\xd8\xff three")
    (tmp_path / "sub" / "four.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic four")  # a HEIC called .jpg
    result = fashionctl("upload", str(tmp_path), "--prefix", "batch", "--state-dir", str(state_dir))
    # Every file of the folder is taken; the one that is not an image is
    # reported, not uploaded, and makes the exit status 1 (issue 13, kind 8).
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[1/5] NOT UPLOADED {tmp_path / 'notes.txt'}: not an image" in result.stdout
    assert "[5/5]" in result.stdout and "uploaded 4 of 5 file(s)" in result.stdout and "1 not uploaded" in result.stdout

    function_log = Path(State.load(state_dir).components[3].log)

    def received() -> list[dict]:
        lines = function_log.read_text().splitlines()
        return [json.loads(line)["received"] for line in lines if line.startswith('{"received"')]

    wait_for(lambda: len(received()) >= 4, 20, "four events at the function")
    events = {e["data"]["name"]: e for e in received()}
    assert set(events) == {"batch/one.jpg", "batch/sub/two.png", "batch/sub/three.jfif", "batch/sub/four.jpg"}
    assert events["batch/sub/three.jfif"]["data"]["contentType"] == "image/jpeg"
    assert events["batch/sub/four.jpg"]["data"]["contentType"] == "image/heic"
    assert events["batch/sub/two.png"]["data"]["contentType"] == "image/png"
    event = events["batch/one.jpg"]
    assert event["attributes"]["type"] == "google.cloud.storage.object.v1.finalized"
    assert event["attributes"]["source"] == "//storage.googleapis.com/projects/_/buckets/demo-fashion-incoming"
    assert event["attributes"]["subject"] == "objects/batch/one.jpg"
    assert event["data"]["contentType"] == "image/jpeg"
    assert event["data"]["size"] == str(len(b"\xff\xd8\xff one"))
    env = read_env_file(state_dir / ENV_FILE)
    assert event["env"] == {
        "GOOGLE_CLOUD_PROJECT": "demo-fashion",
        "INCOMING_BUCKET": "demo-fashion-incoming",
        "STORAGE_EMULATOR_HOST": env["STORAGE_EMULATOR_HOST"],
    }


def test_down_stops_every_process_it_started(running_stack):
    """Runs last in this module: the stack is gone afterwards."""
    state_dir, _, _ = running_stack
    procs = State.load(state_dir).components
    assert all(alive(p) for p in procs)
    result = fashionctl("down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("stopped") == len(procs)
    assert not [p.name for p in procs if alive(p)]
    assert not [p.pid for p in procs if _group_alive(p.pid)]
    assert not (state_dir / STATE_FILE).exists()
    assert fashionctl("status", "--state-dir", str(state_dir)).returncode == 3
    assert fashionctl("down", "--state-dir", str(state_dir)).returncode == 0  # nothing to stop is fine


def _group_alive(pgid: int) -> bool:
    from localcloud.processes import _group_members

    return bool(_group_members(pgid))


def test_up_without_a_function_skips_it_and_the_bridge(tmp_path):
    require_stack()
    state_dir = tmp_path / "state"
    missing = tmp_path / "functions" / "main.py"
    result = fashionctl(
        "up",
        "--state-dir",
        str(state_dir),
        *FREE_PORTS,
        "--function-source",
        str(missing),
        "--model-store",
        str(tmp_path / "none"),
    )
    try:
        assert result.returncode == 0, result.stderr
        assert f"function: skipped: {missing} does not exist" in result.stdout
        assert "bridge: skipped" in result.stdout
        assert "model: skipped: no model store" in result.stdout
        assert [p.name for p in State.load(state_dir).components] == ["pubsub", "firestore", "storage"]
    finally:
        procs = State.load(state_dir).components if (state_dir / STATE_FILE).exists() else []
        down = fashionctl("down", "--state-dir", str(state_dir))
        _kill_leftovers(state_dir)
    assert down.returncode == 0
    assert not [p.name for p in procs if alive(p)]


def test_up_reports_absent_emulators_and_starts_nothing(tmp_path):
    result = fashionctl(
        "up", "--state-dir", str(tmp_path / "state"), *FREE_PORTS, "--sdk-root", str(tmp_path), "--firestore", "official"
    )
    assert result.returncode == 2
    assert "cannot start pubsub: pubsub emulator absent" in result.stderr
    assert "cannot start firestore: firestore emulator absent" in result.stderr
    assert not (tmp_path / "state" / STATE_FILE).exists()


def test_up_cleans_up_when_a_component_fails_to_start(tmp_path):
    require_stack()
    broken = tmp_path / "main.py"
    broken.write_text("raise SystemExit('this function cannot even be imported')\n")
    state_dir = tmp_path / "state"
    ports = {name: free_port() for name in ("storage", "pubsub", "firestore", "function")}
    flags = [item for name, port in ports.items() for item in (f"--{name}-port", str(port))]
    result = fashionctl(
        "up", "--state-dir", str(state_dir), *flags, "--function-source", str(broken), "--model-store", str(tmp_path / "none")
    )
    assert result.returncode == 1
    assert "function exited during startup" in result.stderr
    assert "cannot even be imported" in result.stderr  # the log's tail is shown
    assert not (state_dir / STATE_FILE).exists()
    assert (state_dir / "pubsub.log").read_text().startswith("--- ")  # the emulators did start, and were stopped:
    assert _processes_using(ports.values()) == []


def _processes_using(ports) -> list[str]:
    """Command lines of live processes that were given one of ``ports`` as an argument."""
    wanted = {str(p) for p in ports} | {f"--port={p}" for p in ports}
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or (entry / "stat").read_text().split(") ")[1].startswith("Z"):
                continue
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if wanted & set(args):
            found.append(" ".join(args))
    return found


def test_up_refuses_a_port_that_something_else_listens_on(tmp_path):
    import socket

    require_stack()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ["--storage-port", "0", "--pubsub-port", str(port), "--firestore-port", "0", "--function-port", "0"]
        result = fashionctl("up", "--state-dir", str(tmp_path / "state"), *flags)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} (pubsub) is in use" in result.stderr
    assert not (tmp_path / "state" / STATE_FILE).exists()
