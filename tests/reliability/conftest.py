"""Fixtures and hypothesis profiles for the reliability tests.

The functions under test are the same ones the pipeline and predict tests
serve (functions-framework over HTTP on fake-gcs-server and the Firestore
emulator): their fixtures are reused, not copied.

Hypothesis profiles: ``ci`` (the default: few examples, derandomized so that
every run tries the same inputs, no deadline on a busy 2-core machine) and
``long`` (many examples, random; chosen by ``pytest --long``).
``FASHION_FUZZ_EXAMPLES=<n>`` sets the examples of either, and
``HYPOTHESIS_PROFILE`` picks a profile by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.pipeline.conftest import pipeline
from tests.predict.conftest import api, services

__all__ = ["api", "pipeline", "services"]

_COMMON = {
    "deadline": None,  # the tests time each example themselves, with a generous bound
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    "print_blob": True,
}
#: failing examples of long runs are kept (and replayed first) here; build/ is not committed
_DATABASE = Path(__file__).resolve().parents[2] / "build" / "hypothesis"
settings.register_profile("ci", max_examples=60, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=3000, database=DirectoryBasedExampleDatabase(str(_DATABASE)), **_COMMON)


def fuzz_examples(base: int) -> int:
    """``base`` examples scaled by the loaded profile: ``base`` under ``ci``,
    50x under ``long``; ``FASHION_FUZZ_EXAMPLES`` replaces the ci figure of 60
    (every test scales alike)."""
    return max(1, round(base * settings.default.max_examples / 60))


def pytest_configure(config: pytest.Config) -> None:
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("long" if config.getoption("--long") else "ci")
    examples = os.environ.get("FASHION_FUZZ_EXAMPLES")
    if examples:
        settings.register_profile(name, parent=settings.get_profile(name), max_examples=int(examples))
    settings.load_profile(name)
