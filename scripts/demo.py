"""``make demo``: the event pipeline on the local emulated cloud, end to end.

Gets a model (``--model-dir``, else the ``--out`` store's current model,
else the embedded default model in ``default-model/``; it trains one only
when asked with ``--train``), starts the stack (``localcloud.up``, what
``fashionctl up`` runs) with it,
uploads real held-out images (the committed ``samples/``, or with
``--data`` images of the model's test split) and one file that is not an image to the
incoming bucket through google-cloud-storage, waits until every upload has a
finished record in Firestore and the incoming bucket is empty, prints the
results and the processed bucket's layout, and stops the stack (``--keep``
leaves it running). Whatever goes wrong, Ctrl-C included, a stack this
script started is stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import mimetypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

import localcloud
from fashionctl import results
from shared.dev_paths import EMBEDDED_MODEL_STORE, SAMPLES_DIR
from shared.errors import ModelError
from shared.model_layout import MANIFEST_FILE, MODELS_PREFIX, POINTER, pointer_payload, resolve_model_dir
from shared.records import Field, classification_id, is_finished

REJECT_NAME = "not-a-photo.jpg"
REJECT_BYTES = b"This is a shopping list, not a photo: socks, more socks.\n"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Sample:
    """One file to upload: a real image (``truth`` its category) or the
    deliberately unusable file (``truth`` None)."""

    name: str
    truth: str | None
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


# --------------------------------------------------------------------------
# The model


def get_model(args: argparse.Namespace, out: TextIO = sys.stdout) -> Path:
    """A model store (holding models/current.json) to publish: ``--model-dir``
    (a store or a version folder), else a new one trained into ``--out``
    when ``--train`` asks, else the ``--out`` store when it has a current
    model, else the embedded default model."""
    if args.model_dir:
        return store_for(Path(args.model_dir), Path(args.state_dir) / "demo-model-store")
    store = Path(args.out)
    if getattr(args, "train", False):
        train(args, out)
        return store
    if (store / POINTER).is_file():
        try:
            print(f"Using the current model of {store} (delete {store} to train a new one).", file=out)
            resolve_model_dir(store)
            return store
        except ModelError as exc:
            raise DemoError(f"{store} holds a broken model ({exc}); delete it or pass MODEL_DIR=") from exc
    return embedded_model(out)


def embedded_model(out: TextIO = sys.stdout, store: Path = EMBEDDED_MODEL_STORE) -> Path:
    """The default model committed with the repository (a model store)."""
    if not (store / POINTER).is_file():
        raise DemoError(f"no embedded model in {store}: pass MODEL_DIR=, or TRAIN=1 to train one")
    print(f"Using the embedded default model in {store} (`make train` or MODEL_DIR= for another).", file=out)
    return store


def train(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    print(f"Training a model into {args.out} on {args.data} (--train; the job logs its progress)...", file=out, flush=True)
    command = [sys.executable, "-m", "training", "run", "--data", str(args.data), "--weights", str(args.weights)]
    code = subprocess.call([*command, "--out", str(args.out)])
    if code not in (0, 3):
        raise DemoError(f"the training job failed with exit code {code}")
    if not (Path(args.out) / POINTER).is_file():
        raise DemoError(
            f"the training job published no model to {args.out} (its quality gate refused it, exit code {code}); "
            "see its report, or pass MODEL_DIR="
        )


def store_for(model_dir: Path, scratch: Path) -> Path:
    """``model_dir`` itself when it is a store; a version folder is copied
    into a one-version store under ``scratch``."""
    if (model_dir / POINTER).is_file():
        resolve_model_dir(model_dir)  # raises ModelError when the pointer names nothing usable
        return model_dir
    version_dir = resolve_model_dir(model_dir)
    version = json.loads((version_dir / MANIFEST_FILE).read_text())["version"]
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(version_dir, scratch / MODELS_PREFIX / version)
    (scratch / POINTER).write_text(pointer_payload(version))
    return scratch


def describe_model(version_dir: Path) -> str:
    manifest = json.loads((version_dir / MANIFEST_FILE).read_text())
    accuracy = (manifest.get("metrics") or {}).get("test_accuracy")
    quality = f", test accuracy {accuracy:.1%}" if isinstance(accuracy, int | float) else ""
    kind = (manifest.get("quantization") or {}).get("type", "?")
    return f"model {manifest.get('version')} ({kind}, {len(manifest.get('labels', []))} classes{quality})"


# --------------------------------------------------------------------------
# The sample


def sample(version_dir: Path, data: Path, per_class: int) -> list[Sample]:
    """``per_class`` images of each class from the model's own test split (so
    none was seen in training), in class order; the first images of the data
    folder, category unknown, when the model has no split.json."""
    split_file = version_dir / "split.json"
    if not split_file.is_file():
        paths = sorted((data / "images").glob("*.jpg"))[: per_class * 10]
        return [Sample(name=p.name, truth=None, path=p) for p in paths]
    taken: Counter[str] = Counter()
    chosen = []
    for image_id, label in json.loads(split_file.read_text())["items"]["test"]:
        path = data / "images" / f"{image_id}.jpg"
        if taken[label] < per_class and path.is_file():
            taken[label] += 1
            chosen.append(Sample(name=path.name, truth=label, path=path))
    return sorted(chosen, key=lambda s: (s.truth or "", s.name))


def committed_samples(folder: Path = SAMPLES_DIR) -> list[Sample]:
    """The sample files committed in ``folder``, as ``labels.csv`` lists them
    (columns file, label, source; an empty label for the file that is not a
    photo), in class order with unlabelled files last."""
    listing = folder / "labels.csv"
    if not listing.is_file():
        raise DemoError(f"no sample list at {listing}: pass DATA_DIR= to take images from a dataset instead")
    with listing.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chosen = [Sample(name=row["file"], truth=row["label"] or None, path=folder / row["file"]) for row in rows]
    missing = [s.name for s in chosen if not (s.path and s.path.is_file())]
    if missing:
        raise DemoError(f"{listing} names files that are not there: {', '.join(missing)}")
    return sorted(chosen, key=lambda s: (s.truth is None, s.truth or "", s.name))


def unusable_file() -> Sample:
    return Sample(name=REJECT_NAME, truth=None, data=REJECT_BYTES)


# --------------------------------------------------------------------------
# The stack


def choose_ports(free: bool, out: TextIO = sys.stdout) -> localcloud.Ports:
    """The usual ports, or free ones when asked or when one of them is taken."""
    if free:
        return localcloud.Ports.free()
    try:
        localcloud.Ports().check_free()
    except localcloud.StackError as exc:
        print(f"({exc}: using free ports instead)", file=out)
        return localcloud.Ports.free()
    return localcloud.Ports()


def start_stack(
    state_dir: Path, store: Path, ports: localcloud.Ports, firestore: str = "auto", out: TextIO = sys.stdout
) -> localcloud.State:
    """Start the local stack with ``store`` published; raises DemoError (the
    stack has then cleaned up after itself) when it does not come up."""
    tools = localcloud.find_tools()
    kind, why = localcloud.choose_firestore(tools, firestore)
    if kind == "npm":
        print(f"Firestore: the npm emulator ({why}).", file=out, flush=True)
        if not tools.npm_firestore_installed:
            print(f"Installing {localcloud.NPM_FIRESTORE} with npm (first run only)...", file=out, flush=True)
    config = localcloud.StackConfig(state_dir=state_dir, ports=ports, model_store=store, firestore=firestore)
    try:
        started = localcloud.up(config, tools)
    except localcloud.AlreadyRunning as exc:
        raise DemoError(f"{exc}; stop it with `.venv/bin/fashionctl down --state-dir {state_dir}`") from exc
    except localcloud.StackError as exc:
        raise DemoError(f"the stack did not come up: {exc}") from exc
    print(started.headline(), file=out)
    return started.state


def describe_stack(state: localcloud.State) -> list[str]:
    lines = [
        f"  {p.name:<10} {('port ' + str(p.port)) if p.port else '':<11} pid {p.pid:<8} log {p.log}" for p in state.components
    ]
    return lines + [f"  {key}: {state.info[key]}" for key in ("firestore", "model") if key in state.info]


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so that cleanup runs."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stack_running(state_dir: Path, keep: bool) -> Iterator[None]:
    """Stops the stack when the block fails (Ctrl-C and SIGTERM included), or
    when it ends unless ``keep``."""
    ok = False
    try:
        with sigterm_interrupts():
            yield
        ok = True
    finally:
        if not (ok and keep):
            print("Stopping the stack...", end=" ", flush=True)
            code = stop_stack(state_dir)
            print(
                "stopped." if code == 0 else f"`fashionctl down --state-dir {state_dir}` failed (exit code {code}).", flush=True
            )
            if not ok:
                print(f"(its logs stay in {state_dir})", flush=True)


def stop_stack(state_dir: Path) -> int:
    """Stop the stack (0 when nothing is left running, else 1), shielded from
    a second Ctrl-C that would leave it halfway."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return 0 if localcloud.down(state_dir).ok else 1
    except localcloud.StackError:
        return 1
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def clients(env: Mapping[str, str]) -> tuple[Any, Any]:
    """(storage, firestore) clients for the stack's emulators."""
    return localcloud.storage_client(env["STORAGE_EMULATOR_HOST"], env["GOOGLE_CLOUD_PROJECT"]), results.firestore_client(env)


# --------------------------------------------------------------------------
# Upload, wait, report


def upload(bucket: Any, samples: list[Sample], out: TextIO = sys.stdout) -> dict[str, int]:
    """Upload each sample under its name; returns name -> generation."""
    print(f"Uploading {len(samples)} files to gs://{bucket.name}/ with google-cloud-storage...", file=out, flush=True)
    generations = {}
    for item in samples:
        blob = bucket.blob(item.name)
        content_type = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
        blob.upload_from_string(item.read(), content_type=content_type)
        generations[item.name] = int(blob.generation)
    return generations


def fetch_records(db: Any, bucket: str, generations: Mapping[str, int]) -> dict[str, dict]:
    """name -> the classification record of that upload, for those that have one."""
    refs = {
        db.collection(results.rec.COLLECTION).document(classification_id(bucket, name, generation)).path: name
        for name, generation in generations.items()
    }
    snapshots = db.get_all([db.document(path) for path in refs], timeout=15)
    return {refs[s.reference.path]: s.to_dict() or {} for s in snapshots if s.exists}


def wait_for_pipeline(
    db: Any,
    storage_client: Any,
    incoming: str,
    generations: Mapping[str, int],
    *,
    timeout: float,
    state: localcloud.State | None = None,
    out: TextIO = sys.stdout,
) -> dict[str, dict]:
    """Poll until every upload has a finished record and ``incoming`` is
    empty; prints a progress line. Raises DemoError on timeout, or as soon as
    a stack process has died."""
    started = time.monotonic()
    tty = out.isatty()
    last = ""
    while True:
        records = fetch_records(db, incoming, generations)
        done = sum(is_finished(r) for r in records.values())
        left = sum(1 for _ in storage_client.list_blobs(incoming, max_results=1000))
        elapsed = time.monotonic() - started
        line = f"Waiting for the pipeline: {done}/{len(generations)} finished, {left} left in incoming ({elapsed:.0f} s)"
        if tty:
            print(f"\r{line}", end="", file=out, flush=True)
        elif line.split(" (")[0] != last:
            print(line, file=out, flush=True)
        last = line.split(" (")[0]
        dead = [p.name for p in (state.components if state else []) if not localcloud.alive(p)]
        finished = done == len(generations) and left == 0
        if tty and (finished or dead or elapsed > timeout):
            print(file=out)
        if finished:
            return records
        if dead:
            raise DemoError(f"the stack's {', '.join(dead)} stopped running")
        if elapsed > timeout:
            pending = sorted(name for name in generations if not is_finished(records.get(name)))
            raise DemoError(f"timed out after {timeout:.0f} s; not finished: {', '.join(pending) or '(none)'}")
        time.sleep(0.25)


def processed_layout(storage_client: Any, bucket: str) -> dict[str, int]:
    """Prefix (the object name's folder) -> number of objects."""
    counts = Counter(str(PurePosixPath(blob.name).parent) for blob in storage_client.list_blobs(bucket))
    return dict(sorted(counts.items()))


def result_lines(samples: list[Sample], records: Mapping[str, dict]) -> list[list[str]]:
    lines = []
    for item in samples:
        record = records.get(item.name, {})
        row = results.to_row(record)
        label = record.get(Field.LABEL)
        mark = "" if item.truth is None or label is None else ("ok" if label == item.truth else "MISS")
        lines.append(
            [item.name, item.truth or "-", row.category, row.confidence, row.status, row.destination, mark, row.attributes]
        )
    if not any(line[-1] for line in lines):  # a category-only model: no attributes column
        lines = [line[:-1] for line in lines]
    return lines


def summary(samples: list[Sample], records: Mapping[str, dict], seconds: float) -> str:
    labelled = [s for s in samples if s.truth is not None]
    correct = sum(records.get(s.name, {}).get(Field.LABEL) == s.truth for s in labelled)
    statuses = Counter(records.get(s.name, {}).get(Field.STATUS, "missing") for s in samples)
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    accuracy = f"{correct}/{len(labelled)} correct ({correct / len(labelled):.0%})" if labelled else "no known categories"
    return f"{accuracy}; {len(samples)} files: {by_status}; wall time {seconds:.1f} s"


def report(samples: list[Sample], records: Mapping[str, dict], layout: Mapping[str, int], processed: str, out: TextIO) -> None:
    lines = result_lines(samples, records)
    headers = ("file", "true category", "predicted", "confidence", "status", "destination", "", "attributes")
    print(file=out)
    print(results.format_table(headers[: len(lines[0])] if lines else headers[:-1], lines), file=out)
    print(f"\ngs://{processed}/ now holds:", file=out)
    print(
        results.format_table(
            ("prefix", "objects"), [[f"{prefix}/", str(n)] for prefix, n in layout.items()], frozenset({"objects"})
        ),
        file=out,
    )


def print_keep_instructions(state: localcloud.State, out: TextIO = sys.stdout) -> None:
    env_file = Path(state.state_dir) / localcloud.ENV_FILE
    flag = "" if Path(state.state_dir) == localcloud.DEFAULT_STATE_DIR else f" --state-dir {state.state_dir}"
    commands = [
        (f".venv/bin/fashionctl results{flag}", "the records, newest first (--json, --since 10m)"),
        (f".venv/bin/fashionctl upload FOLDER{flag}", "classify more images"),
        (f".venv/bin/fashionctl status{flag}", "components, ports, logs"),
        (f"set -a; . {env_file}; set +a", "the emulator variables, for other tools"),
    ]
    width = max(len(command) for command, _ in commands)
    print(f"\nThe stack keeps running (KEEP=1); state and logs in {state.state_dir}:", file=out)
    print("\n".join(describe_stack(state)), file=out)
    print("Try:", file=out)
    for command, what in commands:
        print(f"  {command:<{width}}  # {what}", file=out)
    print(f"Stop it with: .venv/bin/fashionctl down{flag}", file=out)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    p.add_argument(
        "--data", help="a dataset folder (styles.csv + images/): upload images of the model's test split from it, not samples/"
    )
    p.add_argument("--train", action="store_true", help="train a model into --out first (needs --data and TensorFlow)")
    p.add_argument("--samples", type=Path, default=SAMPLES_DIR, help="the sample files and labels.csv (default %(default)s)")
    p.add_argument("--weights", default="imagenet", help="for training")
    p.add_argument("--out", required=True, help="the model store: used when it has a current model; --train trains into it")
    p.add_argument("--model-dir", help="use this model (a version folder or a store) instead")
    p.add_argument("--per-class", type=int, default=3, help="images per class to upload (default %(default)s)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the pipeline (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p.add_argument("--state-dir", type=Path, default=localcloud.DEFAULT_STATE_DIR, help="the stack's state (default %(default)s)")
    p.add_argument("--free-ports", action="store_true", help="free ports instead of the usual ones")
    p.add_argument("--firestore", choices=localcloud.FIRESTORE_KINDS, default="auto", help="which emulator (default %(default)s)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    if (args.data or args.train) and not (Path(args.data or "") / "styles.csv").is_file():
        raise DemoError(
            f"no dataset at {args.data} (expected styles.csv and images/, the Kaggle layout): the demo uploads its images. "
            "Pass DATA_DIR=/path/to/fashion-product-images-small (from "
            "https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-small)"
        )
    store = get_model(args, out)
    version_dir = resolve_model_dir(store)
    print(f"Model: {describe_model(version_dir)}", file=out)
    if args.data:
        samples = [*sample(version_dir, Path(args.data), args.per_class), unusable_file()]
        if len(samples) == 1:
            raise DemoError(f"no images found under {args.data}/images")
    else:
        samples = committed_samples(Path(args.samples))
    state = start_stack(Path(args.state_dir), store, choose_ports(args.free_ports, out), args.firestore, out)
    with stack_running(Path(state.state_dir), args.keep):
        storage_client, db = clients(state.env)
        try:
            incoming, processed = state.env["INCOMING_BUCKET"], state.env["PROCESSED_BUCKET"]
            generations = upload(storage_client.bucket(incoming), samples, out)
            records = wait_for_pipeline(db, storage_client, incoming, generations, timeout=args.timeout, state=state, out=out)
            report(samples, records, processed_layout(storage_client, processed), processed, out)
        finally:
            db.close()
        print(f"\n{summary(samples, records, time.monotonic() - started)}", file=out)
        if args.keep:
            print_keep_instructions(state, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before gRPC loads: no info lines when an emulator stops
    from google.api_core.exceptions import GoogleAPIError

    args = parse_args(argv)
    try:
        with sigterm_interrupts():  # from the start: `localcloud.up` stops what it started when interrupted
            return run(args)
    except (DemoError, ModelError, GoogleAPIError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
