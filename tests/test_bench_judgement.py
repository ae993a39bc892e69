"""bench/bench_judgement.py on a corpus of a few canaries: the harness runs the real controller under each
judge, repeats itself exactly, and its outcomes are sane."""

import math
import sys
from dataclasses import replace

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import bench_judgement as bench  # noqa: E402

TINY = (("none", 6), ("errors_x1.5", 2), ("errors_x5", 4), ("errors_x2_at_100rps_0.5pct", 3), ("p99_+100pct", 2), ("onset_stage_2", 2), ("flapping", 2))


@pytest.fixture(scope="module")
def canaries():
    return bench.corpus(classes=TINY)


@pytest.fixture(scope="module")
def outcomes(canaries):
    return bench.run_canaries(canaries, reuse=False)


def outcome(outcomes, canary, judge):
    return next(o for o in outcomes if o.canary == canary.index and o.judge == judge)


def test_the_corpus_is_the_same_for_the_same_seed_and_another_for_another():
    assert bench.corpus(classes=TINY) == bench.corpus(classes=TINY)
    assert bench.corpus(seed=16, classes=TINY) != bench.corpus(classes=TINY)
    assert bench._reference_plan().stages[0].weight == bench.FIRST_WEIGHT  # the traffic is drawn at the first stage's weight


def test_every_x5_error_canary_is_rolled_back_by_the_sequential_judge_within_its_first_stage(canaries, outcomes):
    for canary in (c for c in canaries if c.effect_class == "errors_x5"):
        rolled = outcome(outcomes, canary, "sequential")
        assert rolled.trigger.startswith(bench.JUDGE_TRIGGER_PREFIX), rolled
        assert rolled.rolled_back_t <= 600 and not rolled.promoted


def test_healthy_canaries_are_promoted_by_every_judge(canaries, outcomes):
    # Six healthy canaries: the figures' false rollback rates are a few percent at most, so all six promoted.
    for canary in (c for c in canaries if c.healthy):
        for judge in bench.JUDGES:
            assert outcome(outcomes, canary, judge).promoted, (canary, judge)


def test_the_mann_whitney_judge_decides_only_at_a_window_end(canaries, outcomes):
    window_ends = bench._stage_starts(bench._reference_plan())[1:]
    decided = [o for o in outcomes if o.judge == "mann_whitney" and o.trigger.startswith(bench.JUDGE_TRIGGER_PREFIX)]
    assert decided, "the Mann-Whitney judge rolled back no canary, not even a ×5 one"
    assert {o.rolled_back_t for o in decided} <= set(window_ends)


def test_outcomes_taken_from_the_watched_threshold_run_are_those_of_each_judges_own_run(canaries, outcomes):
    reused = bench.run_canaries(canaries, reuse=True)
    assert any(o.reused for o in reused)
    assert [replace(o, reused=False) for o in reused] == outcomes


def test_the_figures_are_those_of_the_outcomes(canaries, outcomes):
    found = bench.figures(canaries, outcomes)
    assert set(found) == {f"judge_{judge}_{figure}" for judge in bench.JUDGES for figure in FIGURES}
    assert found["judge_sequential_false_rollback_pct"] == 0.0
    assert found["judge_sequential_detect_2x_s"] <= 600
    assert all(math.isfinite(found[f"judge_{judge}_exposure_requests_median"]) for judge in bench.JUDGES)


FIGURES = (
    "false_rollback_pct",
    "within_tolerance_rollback_pct",
    "missed_pct",
    "missed_2x_50rps_pct",
    "detect_median_s",
    "detect_2x_s",
    "exposure_requests_median",
)
