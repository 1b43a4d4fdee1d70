"""``up``, ``down`` and ``status`` of the local emulated cloud: the
emulators, the functions and the bridge on loopback, started and stopped by
the PIDs recorded in a state folder.

Nothing here prints: each returns what it did (:class:`Started`,
:class:`Stopped`, :class:`StackStatus`) or raises a :class:`StackError`
subclass; ``up`` reports the one slow step it may take (installing the npm
Firestore emulator) through an optional ``progress`` callback.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud import components
from localcloud.clients import create_buckets, create_topic_and_subscription, publish_model_store
from localcloud.defaults import DEFAULT_FUNCTION_SOURCE, DEFAULT_FUNCTION_TARGET, DEFAULT_MODEL_STORE, DEFAULT_STATE_DIR, PROJECT
from localcloud.errors import AlreadyRunning, StackError, StartFailed, ToolsMissing
from localcloud.processes import Proc, alive, http_answers, log_contains, stop, wait_until
from localcloud.state import ENV_FILE, STATE_FILE, Ports, State, locked, write_env_file
from localcloud.tools import NPM_FIRESTORE, NPM_FIRESTORE_VERSION, Tools, choose_firestore
from shared.settings import Settings

#: start order; ``down`` stops in the reverse order
COMPONENTS = ("pubsub", "firestore", "storage", "function", "predict", "sweep", "review", "bridge")
#: values of StackConfig.bridge_source
BRIDGE_SOURCES = ("auto", "pubsub", "listing")
#: the ``state.info`` keys that describe the stack, in the order to show them
INFO_KEYS = ("firestore", "model", "function", "predict", "sweep", "review", "bridge")

Progress = Callable[[str], None]


def default_settings(project: str = PROJECT, **overrides: Any) -> Settings:
    """The function settings of the local stack: buckets named after the
    project. Raises SettingsError (a ValueError) on an invalid value."""
    names = {
        "incoming_bucket": f"{project}-incoming",
        "processed_bucket": f"{project}-processed",
        "models_bucket": f"{project}-models",
    }
    settings = Settings(project=project, **{**names, **overrides})
    return Settings.from_env(components.settings_env(settings))  # validates


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
    """What ``up`` starts, and where. ``start_timeout`` is in seconds, per component."""

    state_dir: Path = DEFAULT_STATE_DIR
    ports: Ports = field(default_factory=Ports)
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
    #: where the bridge finds new uploads (one of BRIDGE_SOURCES): storage
    #: notifications through the Pub/Sub emulator, or listing the incoming
    #: bucket; auto: pubsub when its emulator can run, else listing
    bridge_source: str = "auto"


@dataclass(frozen=True)
class Started:
    """A stack ``up`` started: its recorded state and how long starting took (seconds)."""

    state: State
    seconds: float

    @property
    def env_file(self) -> Path:
        return Path(self.state.state_dir) / ENV_FILE

    def headline(self) -> str:
        """One line: the total time and each component's readiness time."""
        ready = ", ".join(f"{name} {t:.1f} s" for name, t in self.state.info.get("timings", {}).items())
        return f"stack up in {self.seconds:.1f} s (ready after: {ready}); state, logs and env file in {self.state.state_dir}"


@dataclass(frozen=True)
class ProcessStop:
    """What ``down`` did to one recorded process."""

    proc: Proc
    was_alive: bool
    stopped: bool  # nothing of its process group is left running

    @property
    def verdict(self) -> str:
        return ("stopped" if self.was_alive else "was not running") if self.stopped else "STILL RUNNING"


@dataclass(frozen=True)
class Stopped:
    """What ``down`` found and did; ``processes`` is None when no stack was recorded."""

    state_dir: Path
    processes: list[ProcessStop] | None

    @property
    def ok(self) -> bool:
        """Nothing recorded is left running."""
        return all(p.stopped for p in self.processes or [])


@dataclass(frozen=True)
class StackStatus:
    """The recorded stack (None: none recorded) and whether each of its processes is alive."""

    state_dir: Path
    state: State | None
    alive: list[bool] = field(default_factory=list)  # in the order of state.components

    @property
    def all_alive(self) -> bool:
        return self.state is not None and all(self.alive)


def up(config: StackConfig, tools: Tools, progress: Progress | None = None) -> Started:
    """Start the whole stack and record it in ``config.state_dir``.

    Raises :class:`AlreadyRunning` when live processes are recorded there,
    :class:`ToolsMissing` when a program is absent (nothing started),
    :class:`StartFailed` when a component failed (everything started is
    stopped again), :class:`StackError` for a busy lock, a used port or an
    unreadable state file. ``progress`` gets a line before a slow step."""
    state_dir = config.state_dir.resolve()
    with locked(state_dir):
        existing = State.load(state_dir)
        running = [p for p in existing.components if alive(p)] if existing else []
        if running:
            raise AlreadyRunning(state_dir, running)
        if existing:  # all dead: stale
            _stop_all(existing)
            (state_dir / STATE_FILE).unlink(missing_ok=True)
        if config.bridge_source not in BRIDGE_SOURCES:
            raise StackError(f"bridge source {config.bridge_source!r}: expected one of {', '.join(BRIDGE_SOURCES)}")
        use_pubsub = config.bridge_source == "pubsub" or (config.bridge_source == "auto" and not tools.missing("pubsub"))
        needed = ("storage", "pubsub") if use_pubsub else ("storage",)
        missing = {c: reason for c in needed if (reason := tools.missing(c))}
        firestore_kind, firestore_why = choose_firestore(tools, config.firestore)
        if firestore_kind is None:
            missing["firestore"] = firestore_why
        if missing and not use_pubsub and (reason := tools.missing("pubsub")):
            missing = {"pubsub": reason, **missing}  # nothing starts anyway: name every absent program
        if missing:
            raise ToolsMissing(missing)
        if firestore_kind == "npm" and not tools.npm_firestore_installed:
            if progress is not None:
                progress(f"installing {NPM_FIRESTORE}@{NPM_FIRESTORE_VERSION} into {tools.node_dir} with npm...")
            components.install_npm_firestore(tools)
        config = replace(
            config, firestore=firestore_kind, state_dir=state_dir, bridge_source="pubsub" if use_pubsub else "listing"
        )
        state = State(state_dir=str(state_dir), started_at=datetime.now(UTC).isoformat())
        started = time.monotonic()
        try:
            _start_all(config, tools, state)
        except BaseException as exc:
            _stop_all(state)  # whatever happened, leave nothing running
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            if not isinstance(exc, _start_errors()):
                raise
            raise StartFailed(exc) from exc
    return Started(state=state, seconds=time.monotonic() - started)


def _start_errors() -> tuple[type[BaseException], ...]:
    from google.api_core.exceptions import GoogleAPIError

    from shared.errors import ModelError

    return (StackError, OSError, GoogleAPIError, ModelError)


def _start_all(config: StackConfig, tools: Tools, state: State) -> None:
    ports = config.ports.resolved()
    ports.check_free()
    settings = config.settings
    use_pubsub = config.bridge_source == "pubsub"
    hosts = components.emulator_env(ports)
    if not use_pubsub:
        del hosts["PUBSUB_EMULATOR_HOST"]
    log_dir = config.state_dir
    state.env = {"GOOGLE_CLOUD_PROJECT": settings.project, **hosts}
    state.env.update(
        INCOMING_BUCKET=settings.incoming_bucket, PROCESSED_BUCKET=settings.processed_bucket, MODELS_BUCKET=settings.models_bucket
    )
    state.info = {"bridge_source": config.bridge_source, "timings": {}}
    if use_pubsub:
        state.info.update(topic=config.topic, subscription=config.subscription)
    timings = state.info["timings"]

    # The two JVMs start in parallel: about 3 s each on 2 cores.
    pubsub = state.add(components.start_pubsub(tools, ports.pubsub, log_dir)) if use_pubsub else None
    if config.firestore == "npm":
        firestore = state.add(components.start_firestore_npm(tools, ports.firestore, log_dir))
    else:
        firestore = state.add(components.start_firestore(tools, ports.firestore, log_dir, settings.project))
    state.env["FASHION_FIRESTORE_EMULATOR"] = config.firestore
    state.info["firestore"] = choose_firestore(tools, config.firestore)[1]
    if pubsub is not None:
        timings["pubsub"] = wait_until(pubsub, http_answers(pubsub.url), config.start_timeout)
        create_topic_and_subscription(hosts["PUBSUB_EMULATOR_HOST"], settings.project, config.topic, config.subscription)
        storage = state.add(
            components.start_storage(
                tools,
                ports.storage,
                log_dir,
                pubsub_host=hosts["PUBSUB_EMULATOR_HOST"],
                project=settings.project,
                topic=config.topic,
                event_bucket=settings.incoming_bucket,
            )
        )
    else:  # no notifications: the bridge lists the incoming bucket
        storage = state.add(components.start_storage(tools, ports.storage, log_dir, project=settings.project))
    timings["storage"] = wait_until(storage, http_answers(f"{storage.url}/storage/v1/b"), config.start_timeout)
    create_buckets(
        storage.url,
        settings.project,
        [settings.incoming_bucket, settings.processed_bucket, settings.models_bucket],
        versioned=(settings.processed_bucket,),
    )
    timings["firestore"] = wait_until(firestore, components.firestore_ready(firestore), config.start_timeout)

    state.info["model"] = _publish_model(config, storage.url)
    state.save()

    target = config.bridge_target
    source = config.function_source
    if source is not None and source.is_file():
        cache = settings
        if settings.model_cache_dir == Settings.model_cache_dir:  # the default: keep the cache with the stack
            cache = replace(settings, model_cache_dir=str(log_dir / "model-cache"))
        function = state.add(
            components.start_function(
                source, config.function_target, ports.function, log_dir, {**components.settings_env(cache), **hosts}
            )
        )
        timings["function"] = wait_until(function, http_answers(function.url, ok_only=False), config.start_timeout)
        target = target or function.url
        state.env["CLASSIFY_URL"] = function.url
        state.info["function"] = f"{config.function_target} from {source} at {function.url}"
        if config.function_target == "classify_upload":  # the same source also serves the prediction API
            predict = state.add(
                components.start_http_function(
                    source, "predict", ports.predict, log_dir, {**components.settings_env(cache), **hosts}, name="predict"
                )
            )
            timings["predict"] = wait_until(predict, http_answers(f"{predict.url}/health"), config.start_timeout)
            state.env["PREDICT_URL"] = predict.url
            state.info["predict"] = f"predict from {source} at {predict.url}"
            sweep = state.add(
                components.start_http_function(
                    source, "sweep", ports.sweep, log_dir, {**components.settings_env(cache), **hosts}, name="sweep"
                )
            )
            timings["sweep"] = wait_until(sweep, http_answers(sweep.url or "", ok_only=False), config.start_timeout)
            state.env["SWEEP_URL"] = sweep.url
            state.info["sweep"] = f"sweep from {source} at {sweep.url} (Cloud Scheduler's part: `fashionctl sweep`)"
            # the review desk on loopback: the reviewer from REVIEWER (default the OS user), image URLs
            # signed with a key made for this stack unless REVIEW_URL_KEY is set
            review_settings = cache if cache.review_url_key else replace(cache, review_url_key=secrets.token_hex(32))
            review = state.add(
                components.start_http_function(
                    source, "review", ports.review, log_dir, {**components.settings_env(review_settings), **hosts}, name="review"
                )
            )
            timings["review"] = wait_until(review, http_answers(f"{review.url}/api/me"), config.start_timeout)
            state.env["REVIEW_URL"] = review.url
            state.info["review"] = f"review desk from {source} at {review.url}/ (reviewer {review_settings.reviewer_name})"
    else:
        state.info["function"] = f"skipped: {source or 'no function source'} does not exist (yet)"
    if target and use_pubsub:
        bridge = state.add(
            components.start_bridge(
                hosts["PUBSUB_EMULATOR_HOST"], settings.project, config.subscription, target, log_dir, list(config.bridge_args)
            )
        )
        state.info["bridge"] = f"{config.subscription} -> {target}"
    elif target:
        bridge = state.add(
            components.start_listing_bridge(
                storage.url or "", settings.project, settings.incoming_bucket, target, log_dir, list(config.bridge_args)
            )
        )
        state.info["bridge"] = f"listing gs://{settings.incoming_bucket} (no Pub/Sub emulator) -> {target}"
    else:
        bridge = None
        waiting = f"notifications wait in subscription {config.subscription}" if use_pubsub else "uploads wait in incoming"
        state.info["bridge"] = f"skipped: no function to deliver to; {waiting}"
    if bridge is not None:
        timings["bridge"] = wait_until(bridge, log_contains(bridge.log, "bridge started", bridge.name), config.start_timeout)
    state.save()
    write_env_file(config.state_dir / ENV_FILE, state.env)


def _publish_model(config: StackConfig, storage_url: str) -> str:
    store = config.model_store
    if not store.is_dir():
        return f"skipped: no model store at {store} (run `make train` or pass --model-store DIR)"
    version = publish_model_store(storage_url, config.settings.project, config.settings.models_bucket, store)
    return f"published {version} from {store} to gs://{config.settings.models_bucket}"


def _stop_all(state: State) -> list[ProcessStop]:
    """Stop every recorded process, in the reverse of the start order."""
    order = {name: i for i, name in enumerate(COMPONENTS)}
    stops = []
    for proc in sorted(state.components, key=lambda p: order.get(p.name, -1), reverse=True):
        was_alive = alive(proc)
        stops.append(ProcessStop(proc=proc, was_alive=was_alive, stopped=stop(proc)))
    return stops


def down(state_dir: Path = DEFAULT_STATE_DIR) -> Stopped:
    """Stop every recorded process group; the state and env files are removed
    once none is left running. Raises :class:`StackError` when the lock is
    held or the state file is unreadable."""
    state_dir = state_dir.resolve()
    with locked(state_dir):
        state = State.load(state_dir)
        if state is None:
            return Stopped(state_dir=state_dir, processes=None)
        result = Stopped(state_dir=state_dir, processes=_stop_all(state))
        if result.ok:
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            (state_dir / ENV_FILE).unlink(missing_ok=True)
    return result


def status(state_dir: Path = DEFAULT_STATE_DIR) -> StackStatus:
    """The recorded stack and which of its processes are alive. Raises
    :class:`StackError` when the state file is unreadable."""
    state_dir = state_dir.resolve()
    state = State.load(state_dir)
    if state is None:
        return StackStatus(state_dir=state_dir, state=None)
    return StackStatus(state_dir=state_dir, state=state, alive=[alive(p) for p in state.components])
