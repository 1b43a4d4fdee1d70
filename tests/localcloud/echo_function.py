"""A CloudEvent function for the stack tests: logs each event it receives as
one JSON line (``{"received": ...}``) on stdout, so the function's log file in
the stack's state folder shows exactly what the bridge delivered."""

from __future__ import annotations

import json
import os
import sys
import threading

import functions_framework

_write = threading.Lock()  # functions-framework serves on several threads: keep lines whole


@functions_framework.cloud_event
def record_event(cloud_event) -> None:
    attributes = {key: value for key, value in cloud_event.get_attributes().items() if isinstance(value, str)}
    settings = {key: os.environ.get(key) for key in ("GOOGLE_CLOUD_PROJECT", "INCOMING_BUCKET", "STORAGE_EMULATOR_HOST")}
    line = json.dumps({"received": {"attributes": attributes, "data": cloud_event.data, "env": settings}}) + "\n"
    with _write:
        sys.stdout.write(line)
        sys.stdout.flush()
