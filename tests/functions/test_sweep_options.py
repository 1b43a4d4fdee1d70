"""Sweep options from a request body, with defaults from the settings."""

from __future__ import annotations

import pytest

from functions.sweep import SweepOptions
from shared.settings import Settings

ENV = {"GOOGLE_CLOUD_PROJECT": "demo-x", "INCOMING_BUCKET": "in", "PROCESSED_BUCKET": "out", "MODELS_BUCKET": "m"}


def test_defaults_come_from_the_settings() -> None:
    settings = Settings.from_env(ENV | {"SWEEP_MIN_AGE_SECONDS": "60", "SWEEP_BUDGET_SECONDS": "30", "SWEEP_MAX_OBJECTS": "5"})
    assert SweepOptions.from_request({}, settings) == SweepOptions(dry_run=False, min_age=60.0, budget=30.0, limit=5)
    body = {"dry_run": True, "min_age": 0, "max_age": 10, "budget": 1.5, "limit": 2}
    assert SweepOptions.from_request(body, settings) == SweepOptions(True, 0.0, 10.0, 1.5, 2)


@pytest.mark.parametrize(
    "body",
    [{"budget": 0}, {"min_age": -1}, {"limit": 0}, {"min_age": 10, "max_age": 5}, {"dry_run": "yes"}, {"x": 1}, []],
)
def test_bad_options_are_refused(body: object) -> None:
    with pytest.raises(ValueError):
        SweepOptions.from_request(body, Settings.from_env(ENV))  # type: ignore[arg-type]
