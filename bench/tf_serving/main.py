"""The baseline for the HTTP benchmark: the same network served the
prototype's way, TensorFlow/Keras ``model.predict`` behind an HTTP function.
Benchmark use only; never deployed.

POST a multipart field ``file`` (as to the real ``/predict``); the answer is
the top-3 labels. Settings: BENCH_WORK_DIR (the training work folder with
model.keras and manifest.json).
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework

_lock = threading.Lock()


@cache
def _served() -> tuple[Any, list[str], int]:
    from bench.artifacts import load_keras_served
    from shared.manifest import read_manifest

    work_dir = Path(os.environ["BENCH_WORK_DIR"])
    manifest = read_manifest(work_dir / "manifest.json")
    flip = manifest.base_network.get("test_time_augmentation", "none") != "none"
    return load_keras_served(work_dir, flip), list(manifest.labels), manifest.input_size


def served() -> tuple[Any, list[str], int]:
    with _lock:
        return _served()


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    from shared.errors import ImageError
    from shared.preprocess import prepare_image

    if request.method != "POST":
        return flask.Response(json.dumps({"status": "ok"}), 200, mimetype="application/json")
    upload = request.files.get("file")
    if upload is None:
        return flask.Response(json.dumps({"error": "send a multipart field 'file'"}), 400, mimetype="application/json")
    model, labels, size = served()
    try:
        pixels = prepare_image(upload.read(), size)
    except ImageError as exc:
        return flask.Response(json.dumps({"error": exc.reason}), 422, mimetype="application/json")
    with _lock:
        scores = model.predict(pixels[None].astype("float32"), verbose=0)[0]
    order = scores.argsort()[::-1][:3]
    body = {"label": labels[order[0]], "top_k": [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order]}
    return flask.Response(json.dumps(body), 200, mimetype="application/json")
