"""``fashionctl``: operator commands for the fashion classifier."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.dev_paths import default_model_store
from shared.errors import ModelError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionctl", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    classify = commands.add_parser("classify", help="classify local image files offline")
    classify.add_argument(
        "--model-dir",
        help="a model version folder (model.tflite + manifest.json) or a model store holding models/current.json "
        "(default: build/model-store once `make train` has published a model there, else the embedded default-model/)",
    )
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("--top-k", type=int, default=3)
    classify.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER")
    _stack_parsers(commands)
    return p


def _stack_parsers(commands: argparse._SubParsersAction) -> None:
    from fashionctl.stack import (
        DEFAULT_FUNCTION_SOURCE,
        DEFAULT_MODEL_STORE,
        DEFAULT_NODE_DIR,
        DEFAULT_STATE_DIR,
        FIRESTORE_KINDS,
        PROJECT,
        Ports,
    )

    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="state, logs and env file (default %(default)s)")

    up = commands.add_parser("up", parents=[state], help="start the local emulated cloud on loopback")
    ports = Ports()
    for name in ("storage", "pubsub", "firestore", "function", "predict", "sweep"):
        up.add_argument(
            f"--{name}-port", type=int, default=getattr(ports, name), help="0 picks a free port (default %(default)s)"
        )
    up.add_argument("--project", default=PROJECT, help="a demo- project id (default %(default)s)")
    up.add_argument(
        "--model-store",
        type=Path,
        help=f"local model store to publish (default: {DEFAULT_MODEL_STORE} once it has a current model, "
        "else the embedded default-model/)",
    )
    up.add_argument("--function-source", type=Path, default=DEFAULT_FUNCTION_SOURCE, help="default %(default)s")
    up.add_argument("--function-target", default="classify_upload", help="default %(default)s")
    up.add_argument("--no-function", action="store_true", help="start neither the function nor the bridge")
    up.add_argument("--bridge-target", help="post events to this URL instead of the function")
    up.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="a function setting (shared/settings.py Settings.ENV), repeatable",
    )
    up.add_argument("--bridge-arg", action="append", default=[], metavar="ARG", help="extra argument for the bridge, repeatable")
    up.add_argument("--start-timeout", type=float, default=90.0, help="seconds per component (default %(default)s)")
    up.add_argument("--sdk-root", type=Path, help="Google Cloud CLI root holding platform/ (default: found from gcloud)")
    up.add_argument(
        "--firestore",
        choices=FIRESTORE_KINDS,
        default="auto",
        help="the Cloud CLI emulator, the npm @firestore-emulator/server, or the first that can run (default %(default)s)",
    )
    up.add_argument("--node-dir", type=Path, default=DEFAULT_NODE_DIR, help="npm prefix for the fallback (default %(default)s)")

    commands.add_parser("down", parents=[state], help="stop the processes the stack started")
    commands.add_parser("status", parents=[state], help="show the stack's components, ports, PIDs and logs")

    upload = commands.add_parser("upload", parents=[state], help="upload image files to the incoming bucket")
    upload.add_argument("paths", nargs="+", metavar="FOLDER_OR_FILE")
    upload.add_argument("--prefix", default="", help="object name prefix")
    upload.add_argument("--bucket", help="default: INCOMING_BUCKET (from the environment or the stack's env file)")

    results = commands.add_parser(
        "results",
        parents=[state],
        help="the latest classification records from Firestore, newest first",
        description="Reads FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT from the environment, else from the "
        "stack's env file; without an emulator host, the real Firestore with default credentials.",
    )
    results.add_argument("--since", metavar="DURATION_OR_ISO", help="e.g. 15m, 2h, 1d, 1h30m or 2026-11-25T14:00:00")
    results.add_argument("--limit", type=_positive_int, default=50, help="at most this many records (default %(default)s)")
    results.add_argument("--json", action="store_true", help="one JSON object per line")

    sweep = commands.add_parser(
        "sweep",
        parents=[state],
        help="one sweep run: process uploads in incoming that no event finished",
        description="Posts to SWEEP_URL when set (environment or the stack's env file), else runs the sweep core here.",
    )
    sweep.add_argument("--dry-run", action="store_true", help="list what it would process, change nothing")
    sweep.add_argument("--budget", type=float, help="seconds (default: SWEEP_BUDGET_SECONDS)")
    sweep.add_argument("--min-age", type=float, help="seconds (default: SWEEP_MIN_AGE_SECONDS)")
    sweep.add_argument("--limit", type=_positive_int, help="at most this many objects")

    report = commands.add_parser(
        "report", parents=[state], help="an HTML report with charts plus CSV and JSON exports of the last N days"
    )
    report.add_argument("--days", type=_positive_int, default=7, help="default %(default)s")
    report.add_argument("--out", type=Path, default=Path("build/report"), help="folder (default %(default)s)")
    report.add_argument("--upload", action="store_true", help="also write them to reports/<time>/ in the processed bucket")

    health = commands.add_parser("health", parents=[state], help="model, backlog, last sweep, error rate; exits 1 when unhealthy")
    health.add_argument("--max-backlog-age", type=float, default=900.0, help="seconds (default %(default)s)")
    health.add_argument("--max-error-rate", type=float, default=0.1, help="last hour (default %(default)s)")
    health.add_argument("--json", action="store_true", help="one JSON object")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "classify":
        from fashionctl import classify

        try:
            return classify.run(str(args.model_dir or default_model_store()), args.paths, as_json=args.json, top_k=args.top_k)
        except ModelError as exc:
            print(f"fashionctl: {exc}", file=sys.stderr)
            return 2
    if args.command in ("up", "down", "status"):
        return _stack_command(args)
    if args.command == "upload":
        return _upload(args)
    if args.command == "results":
        return _results(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        return _report(args)
    if args.command == "health":
        return _health(args)
    return 2


def _stack_command(args: argparse.Namespace) -> int:
    from fashionctl import stack

    if args.command == "down":
        return stack.down(args.state_dir)
    if args.command == "status":
        return stack.status(args.state_dir)
    try:
        overrides = stack.parse_settings_overrides(args.set)
    except ValueError as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 2
    config = stack.StackConfig(
        state_dir=args.state_dir,
        ports=stack.Ports(
            storage=args.storage_port,
            pubsub=args.pubsub_port,
            firestore=args.firestore_port,
            function=args.function_port,
            predict=args.predict_port,
            sweep=args.sweep_port,
        ),
        settings=stack.default_settings(args.project, **overrides),
        model_store=args.model_store or default_model_store(stack.DEFAULT_MODEL_STORE),
        function_source=None if args.no_function else args.function_source,
        function_target=args.function_target,
        bridge_target=args.bridge_target,
        bridge_args=tuple(args.bridge_arg),
        start_timeout=args.start_timeout,
        firestore=args.firestore,
    )
    return stack.up(config, stack.find_tools(args.sdk_root, os.environ.get("JAVA_HOME"), args.node_dir))


def _upload(args: argparse.Namespace) -> int:
    from fashionctl import stack, upload

    try:
        target = upload.UploadTarget.from_env(upload.merged_env(os.environ, args.state_dir / stack.ENV_FILE), args.bucket)
        return upload.run(args.paths, target, prefix=args.prefix)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 2


def _results(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import DefaultCredentialsError

    from fashionctl import results, stack

    try:
        since = results.parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 2
    env = results.merged_env(os.environ, args.state_dir / stack.ENV_FILE)
    try:
        return results.run(results.firestore_client(env), since=since, limit=args.limit, as_json=args.json)
    except (GoogleAPIError, DefaultCredentialsError) as exc:
        host = env.get("FIRESTORE_EMULATOR_HOST")
        hint = "is the stack running? see `fashionctl status`"
        if not host:
            hint = "start the local stack with `fashionctl up`, or set FIRESTORE_EMULATOR_HOST"
        print(f"fashionctl: cannot read the classification records from {host or 'Firestore'}: {exc}", file=sys.stderr)
        print(f"fashionctl: {hint}", file=sys.stderr)
        return 1


def _stack_env(state_dir: Path) -> dict[str, str]:
    """The stack's env file, overridden by the environment's settings and emulator hosts."""
    from fashionctl import stack
    from shared.settings import Settings

    names = {*Settings.ENV, "STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "SWEEP_URL"}
    return {**stack.read_env_file(state_dir / stack.ENV_FILE), **{k: v for k, v in os.environ.items() if k in names and v}}


def _sweep(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError
    from requests import RequestException

    from fashionctl import sweep

    body = sweep.options_body(args.dry_run, args.budget, args.min_age, args.limit)
    try:
        return sweep.run(_stack_env(args.state_dir), body)
    except ValueError as exc:  # SettingsError too
        print(f"fashionctl: {exc}", file=sys.stderr)
        return 2
    except (GoogleAPIError, RequestException, RuntimeError) as exc:
        print(f"fashionctl: the sweep failed: {exc}", file=sys.stderr)
        print("fashionctl: is the stack running? see `fashionctl status`", file=sys.stderr)
        return 1


def _report(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from fashionctl import report

    env = _stack_env(args.state_dir)
    try:
        return report.run(env, args.days, args.out, to_bucket=args.upload)
    except KeyError as exc:
        print(f"fashionctl: missing setting {exc} (environment or the stack's env file)", file=sys.stderr)
        return 2
    except GoogleAPIError as exc:
        print(f"fashionctl: cannot build the report: {exc}", file=sys.stderr)
        return 1


def _health(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from fashionctl import health

    thresholds = health.Thresholds(max_backlog_age=args.max_backlog_age, max_error_rate=args.max_error_rate)
    try:
        return health.run(_stack_env(args.state_dir), thresholds, as_json=args.json)
    except KeyError as exc:
        print(f"fashionctl: missing setting {exc} (environment or the stack's env file)", file=sys.stderr)
        return 2
    except GoogleAPIError as exc:
        print(f"fashionctl: cannot check the health: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
