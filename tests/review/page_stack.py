"""Helpers of the review page's browser tests (tests/review/test_page_*.py):
the local stack with every upload sent to review, the review function's URL,
uploads with custom metadata, and Debian's Chromium under Playwright.

The browser is the system's ``/usr/bin/chromium`` (Debian's package; `.ci/run`
and ``make browser`` install it); ``playwright install`` is never run.
Without that browser the tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import localcloud
from shared.records import FINISHED, NEEDS_REVIEW, classification_id
from tests.images import make_photo_like
from tests.pipeline.conftest import FIRESTORE_PREFERENCE, REPO
from tests.pipeline.test_end_to_end import DATA, Stack, make_store, require_stack, stop_leftovers, wait_for

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REVIEWER = "page-test-reviewer"
#: where every browser test run leaves its screenshot; REVIEW_PAGE_SCREENSHOT=path copies it there too
SCREENSHOT = REPO / "build" / "screenshots" / "review-page.png"


def chromium_or_skip() -> Path:
    """The Chromium executable; skips the test, saying why, when there is none."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return Path(found)
    pytest.skip(f"no Chromium at {CHROMIUM} or on PATH: install Debian's chromium (apt-get install chromium, or make browser)")


@dataclass
class Desk:
    """The running stack and the review function's base URL (no trailing slash)."""

    stack: Stack
    url: str

    def upload(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        """Uploads ``data`` as ``name`` into the incoming bucket; returns its record id."""
        blob = self.stack.storage().bucket(self.stack.incoming).blob(name)
        if metadata:
            blob.metadata = metadata
        blob.upload_from_string(data, content_type="image/jpeg")
        return classification_id(self.stack.incoming, name, int(blob.generation))

    def record(self, doc_id: str) -> dict[str, Any]:
        snapshot = self.stack.firestore().collection("classifications").document(doc_id).get()
        return snapshot.to_dict() or {} if snapshot.exists else {}

    def wait_in_review(self, ids: list[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
        """The records of ``ids`` once every one is finished; asserts they wait for review."""

        def finished() -> dict[str, dict[str, Any]] | None:
            found = {doc_id: self.record(doc_id) for doc_id in ids}
            return found if all(r.get("status") in FINISHED for r in found.values()) else None

        records = wait_for(finished, timeout, f"{len(ids)} finished records")
        for doc_id, record in records.items():
            assert record["status"] == NEEDS_REVIEW, (doc_id, record["status"], record.get("error"))
            assert record["destination"]["name"].startswith("review/"), record["destination"]
        return records


def photos(count: int) -> list[bytes]:
    """``count`` JPEG photos: real product photos of the dev data set when it
    is there (the screenshot then shows real products), generated ones else."""
    real = sorted((DATA / "images").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[:count]
    if len(real) == count:
        return [path.read_bytes() for path in real]
    return [make_photo_like((96, 128), seed=i) for i in range(count)]


def _up(config: localcloud.StackConfig) -> localcloud.Started:
    """``localcloud.up``, tried a second time on fresh ports when a port it
    chose was taken meanwhile (other test runs share this machine)."""
    try:
        return localcloud.up(config, localcloud.find_tools())
    except localcloud.StackError as exc:
        if "address already in use" not in str(exc):
            raise
        stop_leftovers(config.state_dir)
        return localcloud.up(replace(config, ports=localcloud.Ports.free()), localcloud.find_tools())


@contextmanager
def review_desk(root: Path, tiny_model_dir: Any) -> Iterator[Desk]:
    """``fashionctl up`` with the tiny model, every result below a confidence
    threshold of 1.0 (so every photo waits for review) and the reviewer's
    name set; the stack serves the review desk at REVIEW_URL. Everything is
    stopped afterwards."""
    require_stack()
    state_dir = root / "state"
    settings = localcloud.default_settings(confidence_threshold=1.0, reviewer=REVIEWER)
    config = localcloud.StackConfig(
        state_dir=state_dir,
        ports=localcloud.Ports.free(),
        settings=settings,
        model_store=make_store(root / "store", Path(tiny_model_dir.int8_dir)),
        bridge_args=("--min-backoff=0.2", "--max-backoff=1"),
        firestore=FIRESTORE_PREFERENCE,
    )
    try:
        started = _up(config)
        assert all(localcloud.alive(p) for p in started.state.components), started.headline()
        env = localcloud.read_env_file(state_dir / localcloud.ENV_FILE)
        url = env.get("REVIEW_URL")
        assert url, f"the stack started no review function: {started.state.info.get('review')}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FIRESTORE_EMULATOR_HOST", env["FIRESTORE_EMULATOR_HOST"])
            yield Desk(Stack(state_dir.resolve(), env, list(tiny_model_dir.labels)), url.rstrip("/"))
    finally:
        stop_leftovers(state_dir)


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser on Debian's Chromium (headless, no sandbox, no network beyond loopback use)."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


#: run in every page before its own scripts: records CSP violations, so that
#: a test can show the page itself never trips its policy
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def open_desk(browser: Any, url: str, **context_args: Any) -> tuple[Any, Any, dict[str, list]]:
    """A new context and page at the desk, loaded; ``seen`` collects the
    page's dialogs, the POSTs it sent (with their headers) and console errors."""
    context = browser.new_context(**context_args)
    context.add_init_script(CSP_RECORDER)
    page = context.new_page()
    seen: dict[str, list] = {"dialogs": [], "posts": [], "errors": []}

    def on_dialog(dialog: Any) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: seen["posts"].append((r.url, r.headers)) if r.method == "POST" else None)
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='true']", timeout=30_000)
    return context, page, seen
