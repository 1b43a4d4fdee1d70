"""The benchmark command line: which sections run, in which order."""

from __future__ import annotations

import pytest

from bench.cli import SECTIONS, parser, selected


def test_no_section_means_all_in_order() -> None:
    args = parser().parse_args([])
    assert selected(args.sections) == list(SECTIONS) == ["training", "inference", "http", "pipeline", "decode", "backfill"]


def test_sections_run_in_their_order_whatever_the_order_given() -> None:
    assert selected(["pipeline", "inference"]) == ["inference", "pipeline"]
    assert selected(["http", "all"]) == list(SECTIONS)


def test_an_unknown_section_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown section nope"):
        selected(["nope"])
    with pytest.raises(SystemExit):
        parser().parse_args(["--uploads", "many"])
