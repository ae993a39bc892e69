"""The rollout's rate-ratio test with tests from each later stage's start beside it (console/judge/staged.py):
it keeps alpha over the whole rollout, and it catches a fault that begins late sooner than the whole
rollout's test alone. Statistical claims over many seeds, with three standard errors of tolerance."""

from __future__ import annotations

import itertools
import math
import random
import statistics

from console.controller.sequential import SequentialJudge
from console.judge.rate_ratio import RateRatioTest
from console.judge.staged import StagedRatioTest
from console.samples import TrackCounts
from console.sim.traffic import poisson
from tests.test_judge_statistics import STAGES, three_sigma, tracks_at

BASE_RATE = 0.002


def staged_rollout(seed: int, ratio_by_stage: tuple[float, ...], test) -> int | None:
    """The sample, counted from the rollout's first, at which `test` first reaches 1/alpha (alpha 0.01); None if never."""
    rng, sample = random.Random(seed), 0
    for stage, ((weight, samples), ratio) in enumerate(zip(STAGES, ratio_by_stage, strict=True)):
        canary, stable = tracks_at(weight)
        for _ in range(samples):
            sample += 1
            counts = (canary, poisson(rng, canary * BASE_RATE * ratio), stable, poisson(rng, stable * BASE_RATE))
            if isinstance(test, StagedRatioTest):
                test.update(stage, *counts)
            else:
                test.update(*counts)
            if test.log_e_value() >= math.log(100):
                return sample
    return None


def test_a_canary_at_the_tolerance_through_every_stage_is_rarely_rejected():
    """The mixture is a supermartingale from the first sample, so Ville's bound holds over the whole rollout."""
    alpha, runs = 0.05, 300
    rejected = 0
    for seed in range(runs):
        test, rng = StagedRatioTest(0.2, stages=3), random.Random(seed)
        for stage, (weight, samples) in enumerate(STAGES):
            canary, stable = tracks_at(weight)
            for _ in range(samples):
                test.update(stage, canary, poisson(rng, canary * BASE_RATE * 1.2), stable, poisson(rng, stable * BASE_RATE))
                if test.log_e_value() >= math.log(1 / alpha):
                    break
            else:
                continue
            rejected += 1
            break
    assert rejected / runs <= alpha + three_sigma(alpha, runs), f"{rejected} of {runs} rollouts rejected at alpha {alpha}"


def test_a_fault_that_begins_at_the_third_stage_is_caught_sooner_than_by_the_whole_rollouts_test_alone():
    """Twice the errors from the 50% stage on, after 120 clean samples at 5% and 25%: the clean evidence
    weighs on the whole rollout's test; the third stage's own test starts clean of it."""
    runs, onset = 100, STAGES[0][1] + STAGES[1][1]
    staged = [staged_rollout(seed, (1.0, 1.0, 2.0), StagedRatioTest(0.2, stages=3)) for seed in range(runs)]
    whole = [staged_rollout(seed, (1.0, 1.0, 2.0), RateRatioTest(0.2)) for seed in range(runs)]
    assert all(at is not None and at > onset for at in staged), "caught before the fault, or never"
    never = len(staged) + len(whole)
    assert statistics.median(at or never for at in staged) < statistics.median(at or never for at in whole)


def test_with_one_compared_stage_it_is_the_whole_rollouts_test():
    rng = random.Random(3)
    staged, whole = StagedRatioTest(0.2, stages=1), RateRatioTest(0.2)
    for _ in range(50):
        counts = (1000.0, poisson(rng, 3.0), 19000.0, poisson(rng, 38.0))
        staged.update(0, *counts)
        whole.update(*counts)
    assert staged.log_e_value() == whole.log_e_value()
    assert staged.leading(0.01).since_stage == 0


def test_a_rollback_for_a_fault_that_began_at_a_later_stage_quotes_that_stages_evidence():
    judge, rng = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, stages=3), random.Random(8)
    regression = None
    for stage, (weight, samples) in enumerate(STAGES):
        canary, stable = tracks_at(weight)
        for _ in range(samples):
            error_rate = BASE_RATE * (5.0 if stage == 2 else 1.0)
            judge.add(TrackCounts(canary, float(poisson(rng, canary * error_rate))), TrackCounts(stable, float(poisson(rng, stable * BASE_RATE))), stage)
            regression = judge.regression()
            if regression is not None:
                break
        if regression is not None:
            break
    assert regression is not None and regression.trigger == "judge:error_rate"
    assert " since stage 3: " in regression.reason, regression.reason


def test_the_log_e_value_kept_over_intervals_without_errors_is_the_one_computed_afresh():
    # An interval with no errors moves no likelihood, so the e-values read before it are kept; one read afresh from
    # the test's sums (restored: nothing kept) must be the same float, over every stage of a rollout.
    rng = random.Random(11)
    kept = StagedRatioTest(0.2, stages=3)
    unmoved = moved = 0
    for stage, samples in ((0, 40), (1, 40), (2, 40)):
        for _ in range(samples):
            counts = (1000.0, poisson(rng, 0.4), 19000.0, poisson(rng, 7.6) if rng.random() < 0.5 else 0)
            before = kept.log_e_value()  # read each sample, as the controller's regression check does
            kept.update(stage, *counts)
            afresh = StagedRatioTest(0.2, stages=3)
            afresh.restore(kept.to_plain())
            assert kept.log_e_value() == afresh.log_e_value()
            if counts[1] + counts[3] == 0:
                unmoved += 1
            else:
                moved += kept.log_e_value() != before
    assert unmoved >= 10 and moved >= 10


def test_an_interval_without_errors_says_it_moved_no_likelihood():
    test = RateRatioTest(0.2)
    assert test.update(1000.0, 2, 19000.0, 30) is True
    assert test.update(1000.0, 0, 19000.0, 0) is False
    assert test.update(0.0, 1, 19000.0, 30) is False  # no canary requests: nothing to compare
    assert test.canary_requests == 2000.0


def test_a_test_said_at_most_one_has_an_e_value_of_at_most_one():
    # The regression check skips the mixture where at_most_one says it is at most 1: over canaries as good as stable,
    # at the tolerance and well beyond it, every sample it says so of must compute to at most 1 (log ≤ 0, up to
    # rounding); and it must say so of most samples of the good canaries, or it saves nothing.
    said = exceeded = 0
    for seed, ratio in itertools.product(range(20), (1.0, 1.2, 3.0)):
        rng, test = random.Random(seed), StagedRatioTest(0.2, stages=len(STAGES))
        for stage, (weight, samples) in enumerate(STAGES):
            canary, stable = tracks_at(weight)
            for _ in range(samples):
                test.update(stage, canary, poisson(rng, canary * BASE_RATE * ratio), stable, poisson(rng, stable * BASE_RATE))
                log_e = test.log_e_value()
                exceeded += log_e > 0
                if test.at_most_one():
                    assert log_e <= 1e-9, (seed, ratio, log_e)
                    said += ratio == 1.0
    assert exceeded >= 100  # the ×3 canaries' e-values pass 1: the claim is tested where it could fail
    assert said >= 0.8 * 20 * sum(samples for _, samples in STAGES)
