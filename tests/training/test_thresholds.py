"""The thresholds stage's choice (training/thresholds.py): pure logic on
hand-made scores, no model."""

from __future__ import annotations

import numpy as np
import pytest

from shared.thresholds import NEVER
from training.report import thresholds_html
from training.thresholds import Choice, ThresholdConfig, choose, measure, measure_class


def test_the_lowest_threshold_reaching_the_target_is_chosen() -> None:
    # 10 correct above 0.7, one wrong at 0.65, 10 correct below, one wrong at 0.3
    scores = [0.99, 0.95, 0.93, 0.9, 0.88, 0.85, 0.8, 0.78, 0.75, 0.72, 0.65, 0.6, 0.58, 0.55, 0.5, 0.48, 0.45, 0.42]
    scores += [0.4, 0.38, 0.35, 0.3]
    correct = [True] * 10 + [False] + [True] * 10 + [False]
    # at 0.72: 10/10; at 0.65: 10/11 (0.909); at 0.35: 20/21 (0.952); at 0.3: 20/22 (0.909)
    assert choose(scores, correct, 0.98, 5) == Choice(0.72, True, 10, 10)
    assert choose(scores, correct, 0.95, 5) == Choice(0.35, True, 21, 20)
    assert choose(scores, correct, 0.90, 5) == Choice(0.3, True, 22, 20)


def test_a_class_that_never_reaches_the_target_is_never_auto_filed() -> None:
    scores = [0.9, 0.8, 0.7, 0.6]
    assert choose(scores, [False, True, True, True], 0.98, 1) == Choice(NEVER, False, 0, 0)
    assert choose([], [], 0.98, 1) == Choice(NEVER, False, 0, 0)


def test_ties_go_in_or_out_together() -> None:
    # three images share 0.8; one of them is wrong: 0.8 takes all three in
    scores = [0.95, 0.9, 0.8, 0.8, 0.8, 0.7]
    correct = [True, True, True, False, True, True]
    assert choose(scores, correct, 0.98, 1) == Choice(0.9, True, 2, 2)
    assert choose(scores, correct, 0.8, 1) == Choice(0.7, True, 6, 5)  # 4/5 at 0.8, 5/6 at 0.7
    # the order of tied images does not matter
    assert choose(scores[::-1], correct[::-1], 0.98, 1) == Choice(0.9, True, 2, 2)


def test_a_threshold_needs_the_minimum_count_of_images() -> None:
    scores = [0.99, 0.97, 0.95, 0.6, 0.5]
    correct = [True, True, True, False, True]
    assert choose(scores, correct, 0.98, 3) == Choice(0.95, True, 3, 3)
    assert choose(scores, correct, 0.98, 4) == Choice(NEVER, False, 0, 0)  # 3/4 and 4/5 miss the target
    assert choose(scores, correct, 0.8, 4) == Choice(0.5, True, 5, 4)  # 3/4 at 0.6 misses, 4/5 at 0.5 reaches
    assert choose(scores[:3], correct[:3], 0.5, 4) == Choice(NEVER, False, 0, 0)  # too few predictions at all


def test_a_score_of_one_is_no_candidate() -> None:
    # 1.0 means never: saturated scores alone cannot make a threshold
    assert choose([1.0, 1.0, 1.0], [True, True, True], 0.98, 1) == Choice(NEVER, False, 0, 0)
    assert choose([1.0, 1.0, 0.99], [True, True, True], 0.98, 1) == Choice(0.99, True, 3, 3)


def test_check_is_at_or_below_auto_and_the_bands_add_up() -> None:
    config = ThresholdConfig(auto_precision=0.98, check_precision=0.9, min_auto_images=2, min_check_images=1)
    scores = np.array([0.99, 0.97, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, True, False])
    entry = measure_class(scores, correct, config)
    assert entry["auto"] == 0.9 and entry["auto_reached"] and entry["auto_images"] == 3 and entry["auto_precision"] == 1.0
    # the check band's own precision (of the 4 not auto-filed) never reaches 0.9: check = auto, no check band
    assert entry["check"] == 0.9 and entry["check_images"] == 0
    assert entry["review_images"] == 4 and entry["predicted"] == 7
    looser = measure_class(scores, correct, ThresholdConfig(0.98, 0.6, 2, 2))  # 1/2 at 0.7, 2/3 at 0.6, 2/4 at 0.5
    assert looser["check"] == 0.6 and looser["check_images"] == 3 and looser["check_precision"] == round(2 / 3, 4)
    assert looser["auto_images"] + looser["check_images"] + looser["review_images"] == 7


def test_never_reached_auto_keeps_a_check_band() -> None:
    entry = measure_class(np.array([0.9, 0.8, 0.7]), np.array([False, True, True]), ThresholdConfig(0.98, 0.5, 1, 1))
    assert entry["auto"] == NEVER and not entry["auto_reached"] and entry["auto_images"] == 0
    assert entry["check"] == 0.7 and entry["check_images"] == 3 and entry["auto_rate"] == 0.0


def test_measure_covers_every_label_and_the_report_shows_it() -> None:
    labels = ["A", "B", "C"]
    truth = np.array([0, 0, 1, 1, 0])
    predicted = np.array([0, 0, 1, 0, 1])
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    result = measure(labels, truth, predicted, confidence, ThresholdConfig(0.98, 0.6, 1))
    assert set(result["classes"]) == set(labels) and result["images"] == 5
    assert result["classes"]["A"]["auto"] == 0.8 and result["classes"]["A"]["predicted"] == 3
    assert result["classes"]["C"] == measure_class(np.array([]), np.array([], dtype=bool), ThresholdConfig(0.98, 0.6, 1))
    page = thresholds_html(result | {"variant": "float16-single"})
    assert "never (1.0)" in page and "Never auto-filed" in page and "C" in page
    assert "No per-class thresholds" in thresholds_html({})


@pytest.mark.parametrize(
    "config",
    [ThresholdConfig(0.9, 0.95), ThresholdConfig(1.1, 0.9), ThresholdConfig(0.98, 0.9, 0), ThresholdConfig(0.98, 0.9, 20, 0)],
)
def test_bad_targets_are_refused(config: ThresholdConfig) -> None:
    with pytest.raises(ValueError):
        measure(["A", "B"], np.array([0]), np.array([0]), np.array([0.9]), config)


def test_the_check_band_is_judged_on_its_own_images() -> None:
    # 20 right down to 0.895 (auto); below, one wrong at 0.75 and 9 right down to 0.48, then 5 wrong: check 0.48
    scores = np.array([0.99 - 0.005 * k for k in range(20)] + [0.75 - 0.03 * k for k in range(10)] + [0.1] * 5)
    correct = np.array([True] * 20 + [False] + [True] * 9 + [False] * 5)
    entry = measure_class(scores, correct, ThresholdConfig(0.98, 0.9, 20, 10))
    assert entry["auto"] == round(0.99 - 0.005 * 19, 6) and entry["auto_images"] == 20
    assert entry["check"] == pytest.approx(0.75 - 0.03 * 9) and entry["check_images"] == 10
    assert entry["check_precision"] == 0.9 and entry["review_images"] == 5
