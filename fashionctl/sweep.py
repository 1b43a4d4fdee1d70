"""``fashionctl sweep``: one sweep run against the local stack (or the cloud).

With ``SWEEP_URL`` set (in the environment or the stack's env file) it posts
to that sweep function, as Cloud Scheduler would; otherwise it runs the same
core (functions/sweep.py) in this process, with the clients the stack's env
file names. Prints the run's document as JSON; exits 1 when objects failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from functions.sweep import Sweeper, SweepOptions
from shared.settings import Settings

REQUEST_TIMEOUT = 600.0


def storage_client(env: Mapping[str, str]) -> Any:
    """fake-gcs-server's client when ``STORAGE_EMULATOR_HOST`` is set, else the real one."""
    from google.cloud import storage

    from localcloud.clients import storage_client as emulator_client
    from localcloud.defaults import PROJECT

    if url := env.get("STORAGE_EMULATOR_HOST"):
        return emulator_client(url, env.get("GOOGLE_CLOUD_PROJECT") or PROJECT)
    return storage.Client(project=env.get("GOOGLE_CLOUD_PROJECT"))


def local_sweeper(env: Mapping[str, str]) -> Sweeper:
    """The sweep core wired (functions/wiring.py: bounded retries and
    timeouts) to the clients ``env`` names."""
    from fashionctl.results import firestore_client
    from functions import wiring

    settings = Settings.from_env(env)
    return wiring.sweeper(wiring.build(settings, storage=storage_client(env), db=firestore_client(env)))


def options_body(dry_run: bool, budget: float | None, min_age: float | None, limit: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"dry_run": dry_run}
    for key, value in (("budget", budget), ("min_age", min_age), ("limit", limit)):
        if value is not None:
            body[key] = value
    return body


def run(env: Mapping[str, str], body: Mapping[str, Any], out: TextIO | None = None) -> int:
    """One run; prints its document; 0 when nothing failed."""
    if url := env.get("SWEEP_URL"):
        import requests

        response = requests.post(url, json=dict(body), timeout=REQUEST_TIMEOUT)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")
        result = response.json()
    else:
        sweeper = local_sweeper(env)
        result = sweeper.run(SweepOptions.from_request(body, sweeper.settings)).to_dict()
    print(json.dumps(result, indent=2, default=str, sort_keys=True), file=out or sys.stdout)
    return 1 if result["counts"]["failed"] else 0
