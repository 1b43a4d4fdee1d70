"""FASHION_REQUIRE_EMULATORS=1 (cloudbuild.yaml's test step) turns the skip
of a test whose emulator is missing into a failure, so that a CI run cannot
pass by skipping the suites that need the emulators."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from tests import emulators
from tests.deploy.conftest import REPO


@pytest.mark.parametrize(("value", "required"), [("", False), ("0", False), ("1", True), ("yes", True)])
def test_the_switch(monkeypatch, value: str, required: bool):
    monkeypatch.setenv(emulators.REQUIRE_ENV, value)
    assert emulators.emulators_required() is required
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="pubsub emulator unavailable"):
        emulators.unavailable("pubsub emulator unavailable: none here")


def test_require_fails_a_missing_component_in_a_real_run(tmp_path):
    """A test asking for an emulator this machine cannot have (a component
    name no tool provides) is reported skipped, and failed once the switch is
    on: run by pytest itself, as CI runs it."""
    test = tmp_path / "test_needs_emulator.py"
    test.write_text(
        textwrap.dedent(
            """
            import localcloud as stack
            from tests import emulators

            def test_needs_it(monkeypatch):
                monkeypatch.setattr(stack.Tools, "missing", lambda self, component: "not installed here")
                emulators.tools.cache_clear()
                emulators.require("pubsub")
            """
        )
    )
    results = {}
    for value in ("", "1"):
        env = {"FASHION_REQUIRE_EMULATORS": value, "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", str(test)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        results[value] = run
    assert results[""].returncode == 0 and "1 skipped" in results[""].stdout, results[""].stdout
    assert results["1"].returncode == 1 and "1 failed" in results["1"].stdout, results["1"].stdout
    assert "FASHION_REQUIRE_EMULATORS is set" in results["1"].stdout


def test_cloud_build_requires_them():
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    step = next(s for s in build["steps"] if s["id"] == "test")
    assert f"{emulators.REQUIRE_ENV}=1" in step["env"]
