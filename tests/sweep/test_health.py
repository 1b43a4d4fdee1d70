"""``fashionctl health``: non-zero with a stale backlog, zero when clear."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fashionctl import health
from tests.images import make_photo_like
from tests.sweep.conftest import SweepStack


def _env_file(stack_: SweepStack, state_dir: Path) -> None:
    import localcloud

    keys = ("GOOGLE_CLOUD_PROJECT", "INCOMING_BUCKET", "PROCESSED_BUCKET", "MODELS_BUCKET", "STORAGE_EMULATOR_HOST")
    localcloud.write_env_file(state_dir / localcloud.ENV_FILE, {k: stack_.env[k] for k in keys})


def test_health_fails_on_a_stale_backlog_and_passes_when_clear(
    swept: SweepStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fashionctl import cli

    _env_file(swept, tmp_path)
    base = ["health", "--state-dir", str(tmp_path), "--json"]
    assert cli.main(base) == 0
    clear = json.loads(capsys.readouterr().out)
    assert clear["healthy"] is True and clear["backlog"] == 0 and clear["model_version"] == "tiny-int8"

    swept.upload("stale-0.jpg", make_photo_like(seed=1))
    time.sleep(1.1)
    assert cli.main([*base, "--max-backlog-age", "1"]) == 1
    stale = json.loads(capsys.readouterr().out)
    assert stale["healthy"] is False and stale["backlog"] == 1 and stale["oldest_backlog_age_s"] > 1
    assert any("backlog" in problem for problem in stale["problems"])

    swept.sweep()  # the sweep clears it and is reported as the last one
    assert cli.main([*base, "--max-backlog-age", "1"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["backlog"] == 0 and after["last_sweep"]["counts"]["processed"] == 1


def test_assess_names_each_problem() -> None:
    sick = health.Health(None, 3, 5000.0, None, records_last_hour=10, failed_last_hour=5)
    problems = health.assess(sick, health.Thresholds(max_backlog_age=900, max_error_rate=0.1))
    assert len(problems) == 3 and problems[0] == "no current model"
    sick.problems = problems
    fine = health.Health("v1", 0, None, None, records_last_hour=10, failed_last_hour=1)
    assert health.assess(fine, health.Thresholds(max_error_rate=0.1)) == []
    assert "UNHEALTHY" in health.render(sick) and "healthy" in health.render(fine)


def test_a_failed_last_sweep_is_a_problem() -> None:
    failed = {"id": "run-1", "status": "failed", "error": {"reason": "dependency_unavailable", "message": "RetryError: x"}}
    sick = health.Health("v1", 0, None, failed, records_last_hour=0, failed_last_hour=0)
    assert health.assess(sick, health.Thresholds()) == ["the last sweep run run-1 failed: RetryError: x"]
    finished = failed | {"status": "finished", "error": None, "previous_run": {"run_id": "run-0", "status": "failed"}}
    fine = health.Health("v1", 0, None, finished, records_last_hour=0, failed_last_hour=0)
    assert health.assess(fine, health.Thresholds()) == []
    assert "the run before it, run-0, failed" in health.render(fine)
