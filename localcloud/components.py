"""Starting each component of the local stack: the Pub/Sub and Firestore
emulators, fake-gcs-server, functions under functions-framework, and the
Eventarc bridge (``python -m localcloud.bridge``), and the events push
(``python -m localcloud.event_push``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from localcloud.defaults import HOST, PROJECT, REPO_ROOT
from localcloud.errors import StackError
from localcloud.processes import Proc, http_answers, log_contains, spawn
from localcloud.state import Ports
from localcloud.tools import NPM_FIRESTORE, NPM_FIRESTORE_VERSION, Tools
from shared.settings import Settings


def emulator_env(ports: Ports, host: str = HOST) -> dict[str, str]:
    """The variables the Google client libraries read to talk to the emulators."""
    return {
        "STORAGE_EMULATOR_HOST": f"http://{host}:{ports.storage}",
        "FIRESTORE_EMULATOR_HOST": f"{host}:{ports.firestore}",
        "PUBSUB_EMULATOR_HOST": f"{host}:{ports.pubsub}",
    }


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the environment variables of the contract (Settings.ENV)."""
    return {variable: str(getattr(settings, name)) for variable, name in Settings.ENV.items()}


def start_pubsub(tools: Tools, port: int, log_dir: Path) -> Proc:
    """The Cloud CLI Pub/Sub emulator (a JVM) on loopback; raises StackError when it is absent."""
    if reason := tools.missing("pubsub"):
        raise StackError(reason)
    argv = [str(tools.java), "-jar", str(tools.pubsub_jar), f"--host={HOST}", f"--port={port}"]  # any project id is valid
    return spawn("pubsub", argv, log_dir / "pubsub.log", port=port, url=f"http://{HOST}:{port}")


def start_firestore(tools: Tools, port: int, log_dir: Path, project: str = PROJECT) -> Proc:
    """The Cloud CLI Firestore emulator (java run directly, in its own process group); raises StackError when absent."""
    if reason := tools.missing("firestore"):
        raise StackError(reason)
    argv = [
        str(tools.java),
        "-Duser.language=en",
        "-cp",
        str(tools.firestore_jar),
        "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
        f"--host={HOST}",
        f"--port={port}",
        f"--project_id={project}",
    ]
    return spawn("firestore", argv, log_dir / "firestore.log", port=port, url=f"http://{HOST}:{port}")


NPM_FIRESTORE_LAUNCHER = """\
// Written by localcloud: serve @firestore-emulator/server on loopback only
// (its own start() binds 0.0.0.0).
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");
const [host, port] = [process.argv[2], Number(process.argv[3])];
const emulator = new FirestoreServer();
emulator.server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
  if (err) { console.error(`cannot listen on ${host}:${port}: ${err.message}`); process.exit(1); }
  console.log(`firestore emulator (@firestore-emulator/server) listening on ${host}:${bound}`);
});
const stop = () => { emulator.stop(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
"""


def install_npm_firestore(tools: Tools, timeout: float = 600) -> None:
    """``npm install`` the pinned fallback into ``tools.node_dir`` (needs the npm registry)."""
    if tools.npm is None:
        raise StackError(f"npm is absent: cannot install {NPM_FIRESTORE}")
    tools.node_dir.mkdir(parents=True, exist_ok=True)
    command = [str(tools.npm), "install", "--no-audit", "--no-fund", "--prefix", str(tools.node_dir)]
    command.append(f"{NPM_FIRESTORE}@{NPM_FIRESTORE_VERSION}")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"npm install {NPM_FIRESTORE} took longer than {timeout:.0f} s") from exc
    if result.returncode != 0 or not tools.npm_firestore_installed:
        raise StackError(f"npm install {NPM_FIRESTORE} failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def start_firestore_npm(tools: Tools, port: int, log_dir: Path) -> Proc:
    """The npm Firestore emulator (gRPC only), installed on first use."""
    if reason := tools.missing("firestore-npm"):
        raise StackError(reason)
    if not tools.npm_firestore_installed:
        install_npm_firestore(tools)
    launcher = tools.node_dir / "fashionctl-firestore.js"
    launcher.write_text(NPM_FIRESTORE_LAUNCHER)
    argv = [str(tools.node), str(launcher), HOST, str(port)]
    return spawn("firestore", argv, log_dir / "firestore.log", cwd=tools.node_dir, port=port, url=f"grpc://{HOST}:{port}")


def firestore_ready(proc: Proc) -> Callable[[], bool]:
    """The official emulator answers ``GET /`` with Ok; the npm one speaks gRPC only."""
    if proc.url and proc.url.startswith("grpc://"):
        return log_contains(proc.log, "listening on", proc.name)
    return http_answers(proc.url or "")


def start_storage(
    tools: Tools,
    port: int,
    log_dir: Path,
    *,
    pubsub_host: str | None = None,
    project: str = PROJECT,
    topic: str | None = None,
    event_bucket: str | None = None,
) -> Proc:
    """fake-gcs-server, memory backend, plain http; with ``pubsub_host`` and
    ``topic`` it publishes OBJECT_FINALIZE notifications (of ``event_bucket``
    only, when given) to that topic."""
    if reason := tools.missing("storage"):
        raise StackError(reason)
    url = f"http://{HOST}:{port}"
    argv = [str(tools.fake_gcs), "-scheme", "http", "-host", HOST, "-port", str(port), "-backend", "memory"]
    argv += ["-external-url", url, "-public-host", f"{HOST}:{port}", "-log-level", "info"]
    env = dict(os.environ)
    if topic:
        if not pubsub_host:
            raise StackError("storage notifications need the Pub/Sub emulator's host")
        argv += ["-event.pubsub-project-id", project, "-event.pubsub-topic", topic, "-event.list", "finalize"]
        if event_bucket:
            argv += ["-event.bucket", event_bucket]
    if pubsub_host:
        env["PUBSUB_EMULATOR_HOST"] = pubsub_host  # read by its Go Pub/Sub client; without it, it wants ADC
    return spawn("storage", argv, log_dir / "storage.log", env=env, port=port, url=url)


def start_functions_framework(
    source: Path, target: str, signature: str, port: int, log_dir: Path, env: Mapping[str, str], name: str, url: str
) -> Proc:
    """functions-framework serving ``target`` from ``source`` on loopback."""
    executable = Path(sys.executable).with_name("functions-framework")
    launcher = [str(executable)] if executable.is_file() else [sys.executable, "-m", "functions_framework"]
    argv = [*launcher, "--source", str(source.resolve()), "--target", target, "--signature-type", signature]
    argv += ["--host", HOST, "--port", str(port)]
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return spawn(name, argv, log_dir / f"{name}.log", env=full_env, cwd=REPO_ROOT, port=port, url=url)


def start_function(source: Path, target: str, port: int, log_dir: Path, env: Mapping[str, str]) -> Proc:
    """functions-framework serving a CloudEvent function on loopback."""
    return start_functions_framework(source, target, "cloudevent", port, log_dir, env, "function", f"http://{HOST}:{port}/")


def start_http_function(
    source: Path, target: str, port: int, log_dir: Path, env: Mapping[str, str], name: str = "http-function"
) -> Proc:
    """functions-framework serving an HTTP function on loopback."""
    return start_functions_framework(source, target, "http", port, log_dir, env, name, f"http://{HOST}:{port}")


#: the listing bridge's memory of delivered object versions, in the state folder
DELIVERED_FILE = "bridge-delivered.jsonl"


def start_bridge(
    pubsub_host: str, project: str, subscription: str, target: str, log_dir: Path, extra_args: list[str] | None = None
) -> Proc:
    """The Eventarc stand-in (``python -m localcloud.bridge``): ``subscription`` in, CloudEvents POSTed to ``target``."""
    argv = [sys.executable, "-m", "localcloud.bridge", "--source", "pubsub", "--pubsub-host", pubsub_host, "--project", project]
    argv += ["--subscription", subscription, "--target", target, "--dead-letter", str(log_dir / "dead-letter.jsonl")]
    return _spawn_bridge(argv + (extra_args or []), log_dir, target)


def start_listing_bridge(
    storage_url: str, project: str, bucket: str, target: str, log_dir: Path, extra_args: list[str] | None = None
) -> Proc:
    """The Eventarc stand-in without Pub/Sub: it lists ``bucket`` every second
    and POSTs a CloudEvent to ``target`` for each new object version,
    remembering what it delivered in ``log_dir``/:data:`DELIVERED_FILE`."""
    argv = [sys.executable, "-m", "localcloud.bridge", "--source", "listing", "--storage-url", storage_url]
    argv += ["--bucket", bucket, "--project", project, "--target", target]
    argv += ["--dead-letter", str(log_dir / "dead-letter.jsonl"), "--delivered-file", str(log_dir / DELIVERED_FILE)]
    return _spawn_bridge(argv + (extra_args or []), log_dir, target)


def start_event_push(
    pubsub_host: str,
    project: str,
    subscription: str,
    target: str,
    log_dir: Path,
    dead_letter_topic: str | None = None,
    extra_args: list[str] | None = None,
) -> Proc:
    """The events push stand-in (``python -m localcloud.event_push``):
    completion events of ``subscription`` POSTed to the webhook ``target``."""
    argv = [sys.executable, "-m", "localcloud.event_push", "--pubsub-host", pubsub_host, "--project", project]
    argv += ["--subscription", subscription, "--target", target]
    if dead_letter_topic:
        argv += ["--dead-letter-topic", dead_letter_topic]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return spawn("events-push", argv + (extra_args or []), log_dir / "events-push.log", env=env, cwd=REPO_ROOT, url=target)


def _spawn_bridge(argv: list[str], log_dir: Path, target: str) -> Proc:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return spawn("bridge", argv, log_dir / "bridge.log", env=env, cwd=REPO_ROOT, url=target)
