"""The judge's statistics, tested statistically: false detections stay under alpha at every look, real
regressions are caught early, and the intervals hold the truth. Each figure is over many seeded
rollouts, and each bound allows three binomial standard errors of the rollouts counted."""

from __future__ import annotations

import math
import random

import pytest

from console.judge.rate_bound import over_limit, rate_bounds
from console.judge.rate_ratio import RateRatioTest
from console.sim.traffic import poisson

STAGES = ((5, 60), (25, 60), (50, 60))
"""The reference canary's weights, each for 60 samples of 10 s."""
SERVICE_RPS = 2000
INTERVAL_S = 10


def rollout(seed: int, base_rate: float, ratio: float, tolerance: float, alpha: float) -> tuple[int | None, list]:
    """One simulated rollout's looks: the sample at which the test first rejects (None if never), and its evidence at every look."""
    rng = random.Random(seed)
    test = RateRatioTest(tolerance)
    looks, rejected_at, sample = [], None, 0
    for weight, samples in STAGES:
        canary = SERVICE_RPS * weight / 100 * INTERVAL_S
        stable = SERVICE_RPS * INTERVAL_S - canary
        for _ in range(samples):
            sample += 1
            test.update(canary, poisson(rng, canary * base_rate * ratio), stable, poisson(rng, stable * base_rate))
            evidence = test.evidence(alpha)
            looks.append(evidence)
            if rejected_at is None and evidence.rejects(alpha):
                rejected_at = sample
    return rejected_at, looks


def three_sigma(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("ratio", [1.0, 1.2], ids=["identical", "at the tolerance"])
def test_a_canary_no_worse_than_the_tolerance_is_rarely_called_a_regression_however_often_it_is_looked_at(ratio):
    alpha, runs = 0.05, 300
    rejected = sum(rollout(seed, 0.002, ratio, 0.2, alpha)[0] is not None for seed in range(runs))
    assert rejected / runs <= alpha + three_sigma(alpha, runs), f"{rejected} of {runs} rollouts rejected at alpha {alpha}"


def test_a_fixed_sample_test_checked_at_every_look_would_not_keep_alpha():
    """Why the e-process: a z-test on the totals, checked at every sample, rejects a canary at the tolerance far more often."""
    alpha, runs, rejected = 0.05, 200, 0
    for seed in range(runs):
        rng, totals = random.Random(seed), [0.0, 0, 0.0, 0]
        for weight, samples in STAGES:
            canary = SERVICE_RPS * weight / 100 * INTERVAL_S
            stable = SERVICE_RPS * INTERVAL_S - canary
            for _ in range(samples):
                totals = [totals[0] + canary, totals[1] + poisson(rng, canary * 0.002 * 1.2), totals[2] + stable, totals[3] + poisson(rng, stable * 0.002)]
                share = 1.2 * totals[0] / (1.2 * totals[0] + totals[2])
                errors = totals[1] + totals[3]
                if errors and (totals[1] - errors * share) / math.sqrt(errors * share * (1 - share)) > 1.645:
                    rejected += 1
                    break
    assert rejected / runs > 2 * alpha


def test_a_canary_with_three_and_a_half_times_the_errors_at_5_percent_is_caught_within_the_first_window():
    """0.28% against 0.08% at 5% of 2,000 rps (the case a window's mean only caught at t=600)."""
    alpha, runs = 0.01 / 4, 200
    caught = [rollout(seed, 0.0008, 3.5, 0.2, alpha)[0] for seed in range(runs)]
    within_first_window = sum(1 for at in caught if at is not None and at <= 60)
    assert within_first_window / runs >= 0.95
    assert sorted(at for at in caught if at is not None)[runs // 2] * INTERVAL_S <= 300


def test_the_interval_holds_the_true_ratio_at_every_look():
    alpha, runs = 0.05, 200
    missed = 0
    for seed in range(runs):
        _, looks = rollout(seed, 0.003, 2.0, 0.2, alpha)
        if any(e.estimate is not None and not ((e.low or 0) <= 2.0 * 1.0001 and 2.0 <= (e.high or math.inf) * 1.0001) for e in looks):
            missed += 1
    assert missed / runs <= alpha + three_sigma(alpha, runs)


def test_the_evidence_carries_across_stages_weighed_by_each_stages_requests():
    """The same errors mean more at 5% than at 50%: one canary error among 20 at 5% is no news, 10 of 20 is."""
    at_five = RateRatioTest(0.2)
    at_five.update(1000, 10, 19000, 10)
    at_half = RateRatioTest(0.2)
    at_half.update(10000, 10, 10000, 10)
    assert at_five.evidence(0.01).log_e_value > at_half.evidence(0.01).log_e_value
    assert at_half.evidence(0.01).estimate == pytest.approx(1.0, rel=0.1)


def test_no_errors_at_all_is_no_evidence_either_way():
    test = RateRatioTest(0.2)
    test.update(1000, 0, 19000, 0)
    evidence = test.evidence(0.01)
    assert evidence.estimate is None and evidence.low is None and evidence.high is None
    assert not evidence.rejects(0.01)
    assert evidence.canary_requests == 1000


def test_a_tolerance_of_zero_is_refused():
    with pytest.raises(ValueError, match="above 0"):
        RateRatioTest(0.0)


def test_twice_a_rate_too_small_to_matter_is_no_regression():
    """0.002% against 0.001% with a mountain of traffic: the ratio is clear, the floor keeps it from acting."""
    test = RateRatioTest(0.2)
    for _ in range(200):
        test.update(1_000_000, 20, 1_000_000, 10)
    evidence = test.evidence(0.01)
    assert evidence.rejects(0.01)
    assert not evidence.regressed(0.01, floor=0.0001)
    assert evidence.regressed(0.01, floor=0.00001)


def test_two_errors_in_a_hundred_requests_are_not_over_a_one_percent_limit():
    assert over_limit(2, 100, 0.01, alpha=0.01) is False
    assert over_limit(40, 1000, 0.01, alpha=0.01) is True
    assert over_limit(0, 0, 0.01, alpha=0.01) is None


def test_the_rate_bounds_hold_the_true_rate_at_every_look():
    alpha, runs, rate, missed = 0.05, 300, 0.01, 0
    for seed in range(runs):
        rng, errors, requests = random.Random(seed), 0, 0
        for _ in range(50):
            requests += 200
            errors += sum(1 for _ in range(200) if rng.random() < rate)
            low, high = rate_bounds(errors, requests, alpha)
            if not low <= rate <= high:
                missed += 1
                break
    assert missed / runs <= alpha + three_sigma(alpha, runs)


def test_the_rate_bounds_are_not_wider_than_they_need_to_be():
    """Tight enough to be useful: at 10,000 requests with 1% errors, within a factor of two of the rate."""
    low, high = rate_bounds(100, 10_000, 0.01)
    assert 0.005 < low < 0.01 < high < 0.02
