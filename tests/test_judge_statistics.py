"""The judge's statistics, tested statistically: false detections stay under alpha at every look, real
regressions are caught early, and the intervals hold the truth. Each figure is over many seeded
rollouts, and each bound allows three binomial standard errors of the rollouts counted. The counts are
drawn here, straight from the Poisson model, not by a simulator."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

import pytest

from console.controller.sequential import Regression, SequentialJudge
from console.judge.rate_bound import rate_bounds, rate_excluded
from console.judge.rate_ratio import RateRatioTest
from console.samples import TrackCounts
from console.sim.traffic import poisson

STAGES = ((5, 60), (25, 60), (50, 60))
"""The reference canary's weights, each for 60 samples of 10 s."""
SERVICE_RPS = 2000
INTERVAL_S = 10
LATENCIES = ("latency_p99", "latency_p50", "latency_p95")
"""With errors, the four e-processes of a plan judging every latency quantile: alpha is shared four ways."""

BOUNDS_S = (0.05, 0.1, 0.2, 0.3, 0.5, math.inf)
"""The latency histogram's bucket bounds, in seconds."""
STABLE_SLOWER = (0.4, 0.04, 0.006, 0.002, 0.0005, 0.0)
"""The share of stable's requests slower than each bound: p50 under 50ms, p95 under 100ms, p99 under 200ms,
each clear of its bound, so the bound each quantile is tested at is the same in every rollout."""
THREE_TIMES_SLOWER_PAST_200MS = (0.4, 0.052, 0.018, 0.006, 0.0015, 0.0)
"""A canary with three times stable's requests slower than 200ms (its p99 267ms against 188ms), the same below."""


def track_counts(rng: random.Random, requests: float, error_rate: float, slower: Sequence[float] = STABLE_SLOWER) -> TrackCounts:
    """One track's interval: each latency bucket's requests Poisson (`slower`: the share slower than each of
    BOUNDS_S), the requests their sum, the errors Poisson."""
    buckets, served, above = [], 0, 1.0
    for bound, share in zip(BOUNDS_S, slower, strict=True):
        served += poisson(rng, requests * (above - share))
        buckets.append((bound, float(served)))
        above = share
    return TrackCounts(float(served), float(poisson(rng, requests * error_rate)), tuple(buckets))


def tracks_at(weight: float) -> tuple[float, float]:
    """The canary's and stable's requests over one interval at `weight` percent."""
    canary = SERVICE_RPS * weight / 100 * INTERVAL_S
    return canary, SERVICE_RPS * INTERVAL_S - canary


@dataclasses.dataclass
class JudgedRollout:
    judge: SequentialJudge
    rejected_at: int | None = None
    """The first sample at which any e-process's journaled evidence reached its threshold (floors aside)."""
    regression_at: int | None = None
    regression: Regression | None = None
    """The first regression the judge called; the rollout ends there."""


def judged_rollout(
    seed: int, alpha: float, canary_slower: Sequence[float], stable_slower: Sequence[float] = STABLE_SLOWER, error_ratio: float = 1.0, stages=STAGES
) -> JudgedRollout:
    """One rollout through the judge of a plan judging every latency quantile, as the controller drives it
    (counts added, evidence journaled, a regression looked for), the counts drawn here."""
    rng = random.Random(seed)
    outcome, sample = JudgedRollout(SequentialJudge(alpha, tolerance=0.2, floor=0.0, metrics=LATENCIES)), 0
    for weight, samples in stages:
        canary, stable = tracks_at(weight)
        for _ in range(samples):
            sample += 1
            outcome.judge.add(track_counts(rng, canary, 0.002 * error_ratio, canary_slower), track_counts(rng, stable, 0.002, stable_slower))
            if outcome.rejected_at is None and any(e["log_e"] >= e["log_threshold"] for e in outcome.judge.journaled().values()):
                outcome.rejected_at = sample
            outcome.regression = outcome.judge.regression()
            if outcome.regression is not None:
                outcome.regression_at = sample
                return outcome
    return outcome


def rollout(seed: int, base_rate: float, ratio: float, tolerance: float, alpha: float) -> tuple[int | None, list]:
    """One simulated rollout's looks: the sample at which the test first rejects (None if never), and its evidence at every look."""
    rng = random.Random(seed)
    test = RateRatioTest(tolerance)
    looks, rejected_at, sample = [], None, 0
    for weight, samples in STAGES:
        canary, stable = tracks_at(weight)
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
    assert not rate_excluded(0.01, 2, 100, alpha=0.01)
    assert rate_excluded(0.01, 40, 1000, alpha=0.01) and rate_bounds(40, 1000, 0.01)[0] > 0.01
    assert rate_bounds(0, 0, 0.01) is None


@pytest.mark.parametrize("errors, requests", [(0, 10), (2, 100), (40, 1000), (7, 7), (350, 2_000_000), (1, 3)])
def test_a_rate_is_excluded_exactly_where_the_bounds_leave_it_out(errors, requests):
    low, high = rate_bounds(errors, requests, 0.01)
    for rate in (0.0, low * 0.999, low * 1.001 + 1e-12, (low + high) / 2, high * 0.999, min(1.0, high * 1.001 + 1e-12), 1.0):
        inside = low <= rate <= high
        assert rate_excluded(rate, errors, requests, 0.01) is not inside or rate in (low, high), rate


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


STABLE_P95_AT_A_BOUND = (0.4, 0.05, 0.006, 0.002, 0.0005, 0.0)
"""Stable's p95 right at 100ms: whether the p95's bound is 100ms or 200ms is the luck of its first sample."""


@pytest.mark.parametrize("ratio", [1.0, 1.2], ids=["identical", "at the tolerance"])
def test_a_canary_no_worse_in_errors_or_latency_is_rarely_rolled_back_by_any_of_the_four_e_processes(ratio):
    """Errors and every tail share ×`ratio`: whichever bounds stable's first samples chose (for the p95, one or
    the other by chance), the four e-processes together roll back at most alpha of the rollouts."""
    alpha, runs = 0.05, 300
    canary_slower = tuple(min(1.0, share * ratio) for share in STABLE_P95_AT_A_BOUND)
    outcomes = [judged_rollout(seed, alpha, canary_slower, STABLE_P95_AT_A_BOUND, error_ratio=ratio) for seed in range(runs)]
    rejected = sum(1 for outcome in outcomes if outcome.rejected_at is not None)
    assert rejected / runs <= alpha + three_sigma(alpha, runs), f"{rejected} of {runs} rollouts rejected at alpha {alpha}, floors aside"
    p95_bounds = {outcome.judge.bound_s("latency_p95") for outcome in outcomes}
    assert p95_bounds == {0.1, 0.2}, "the p95's bound was chosen by the data, both ways"


def test_a_canary_with_three_times_the_requests_slower_than_stables_p99_is_rolled_back_within_the_first_stage():
    """At 5% of 2,000 rps, the p99's e-process (at 200ms, stable's p99 bucket) calls it within the stage's 60 samples."""
    runs = 200
    outcomes = [judged_rollout(seed, 0.01, THREE_TIMES_SLOWER_PAST_200MS, stages=STAGES[:1]) for seed in range(runs)]
    caught = [outcome.regression_at for outcome in outcomes if outcome.regression and outcome.regression.trigger == "judge:latency_p99"]
    assert len(caught) / runs >= 0.95, f"{len(caught)} of {runs} caught by the p99 within the first stage"
    assert sorted(caught)[len(caught) // 2] * INTERVAL_S <= 300, "half of them within 5 minutes"
    judge, regression = outcomes[0].judge, outcomes[0].regression
    assert judge.bound_s("latency_p99") == 0.2
    assert regression.reason.startswith("p99: ") and " of requests slower than 200ms: ×" in regression.reason, regression.reason
