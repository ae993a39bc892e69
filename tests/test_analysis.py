"""The judgement is a pure function: table tests, and property tests that no input crashes it."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.controller.analysis import (
    INCONCLUSIVE_STREAK,
    Confidence,
    WindowStats,
    decide,
    judge_sample,
    judge_window,
    trigger_key,
)
from console.judge.rate_bound import rate_bounds
from console.samples import Sample, TrackCounts, TrackValues
from console.units import format_duration
from tests.conftest import plan_from

PLAN = plan_from(
    "app: a\nimage: r/a:2\nstages:\n"
    "  - weight: 25\n    observe: 1m\n    criteria: {error_rate: '< 0.5%', latency_p99: ['< 400ms', '<= 1.2x stable']}\n"
    "triggers:\n  warning:\n    cpu: {when: '> 80%', consecutive: 3}\n"
)
STAGE, TRIGGERS = PLAN.stages[0], PLAN.triggers
CONFIDENCE = Confidence(PLAN.alpha, PLAN.tolerance)
HEALTHY = {
    "error_rate": TrackValues(0.001, 0.001),
    "success_rate": TrackValues(0.999, 0.999),
    "latency_p99": TrackValues(250, 240),
    "cpu": TrackValues(0.4, 0.4),
    "memory": TrackValues(0.5, 0.5),
    "health_check_failures": TrackValues(0, 0),
    "memory_oom_kills": TrackValues(0, 0),
}


def sample(requests: float | None = 1000, errors=(), **changes) -> Sample:
    values = dict(HEALTHY)
    for metric, value in changes.items():
        values[metric] = value if isinstance(value, TrackValues) else TrackValues(value, values[metric].stable)
    return Sample(values, requests, tuple(errors))


def counted(errors: float, requests: float, stable: tuple[float, float] | None = None, **changes) -> Sample:
    """A sample whose canary (and, given `stable` as (errors, requests), stable) served these counts, its rates derived from them."""
    tracks = {"canary": TrackCounts(requests, errors), "stable": TrackCounts(stable[1], stable[0]) if stable else None}
    rates = {track: None if counts is None else counts.errors / counts.requests for track, counts in tracks.items()}
    error_rate = TrackValues(rates["canary"], rates["stable"] if stable else HEALTHY["error_rate"].stable)
    success_rate = TrackValues(*(None if rate is None else 1 - rate for rate in (error_rate.canary, error_rate.stable)))
    taken = sample(requests, error_rate=error_rate, success_rate=success_rate, **changes)
    return Sample(taken.values, requests, canary_counts=tracks["canary"], stable_counts=tracks["stable"])


def run(samples, streaks=None, pause_on_warning=True):
    streaks = streaks or {}
    decision = None
    for s in samples:
        judgement = judge_sample(s, STAGE, TRIGGERS, PLAN.min_requests, PLAN.alpha)
        streaks, decision = decide(judgement, streaks, s, PLAN.inconclusive_limit, pause_on_warning)
    return streaks, decision


@pytest.mark.parametrize(
    "samples, action, trigger",
    [
        ([sample()], "continue", ""),
        ([sample(error_rate=0.02)], "rollback", "error_rate"),
        ([sample(memory_oom_kills=1)], "rollback", "memory_oom_kills"),
        ([sample(health_check_failures=4)], "rollback", "health_check_failures"),
        ([sample(success_rate=0.98)], "rollback", "success_rate"),
        ([sample(latency_p99=1200)], "rollback", "latency_p99"),
        ([sample(error_rate=0.006)], "continue", ""),  # a warning acts on the second breach in a row
        ([sample(error_rate=0.006), sample(error_rate=0.006)], "pause", "error_rate"),
        ([sample(error_rate=0.006), sample(), sample(error_rate=0.006)], "continue", ""),  # flapping
        ([sample(cpu=0.85), sample(cpu=0.85)], "continue", ""),  # cpu's plan limit is 3 in a row
        ([sample(cpu=0.85)] * 3, "pause", "cpu"),
        ([sample(memory=0.9), sample(memory=0.9)], "pause", "memory"),
        ([sample(error_rate=0.02, latency_p99=600)], "rollback", "error_rate"),  # critical wins
        ([sample(requests=10)] * 2, "continue", ""),
        ([sample(requests=10)] * 3, "pause", "inconclusive"),  # too little canary traffic
        ([sample(requests=None)] * 3, "pause", "inconclusive"),
        ([sample(error_rate=None)] * 3, "pause", "inconclusive"),
        ([sample(error_rate=None), sample(), sample(error_rate=None), sample(error_rate=None)], "continue", ""),
        ([sample(error_rate=float("nan"))] * 3, "pause", "inconclusive"),
    ],
)
def test_decisions(samples, action, trigger):
    _, decision = run(samples)
    assert (decision.action, decision.trigger) == (action, trigger)


@pytest.mark.parametrize(
    "taken, verdicts",
    [
        (sample(), {"error_rate": "pass", "latency_p99": "pass", "success_rate": "pass", "health_check_failures": "pass"}),
        (sample(error_rate=0.006), {"error_rate": "warning"}),  # over the criterion too: the worse verdict
        (sample(error_rate=0.02), {"error_rate": "critical"}),
        (sample(latency_p99=450), {"latency_p99": "unmet"}),  # a criterion alone: the window decides
        (sample(latency_p99=TrackValues(300, None)), {"latency_p99": "inconclusive"}),  # "<= 1.2x stable" without stable
        (sample(requests=10, error_rate=0.02), {"error_rate": "inconclusive", "memory_oom_kills": "pass"}),  # set aside
        (sample(cpu=0.85), {"cpu": "warning"}),
    ],
)
def test_each_metric_has_the_verdict_of_its_worst_check(taken, verdicts):
    judged = judge_sample(taken, STAGE, TRIGGERS, PLAN.min_requests, PLAN.alpha).verdicts
    assert {metric: judged[metric] for metric in verdicts} == verdicts
    assert "throughput" not in judged and set(judged) <= set(HEALTHY), "only what a check judged"


def test_critical_acts_even_when_traffic_is_thin_for_counts():
    # OOM kills do not depend on traffic: judged even under min_requests.
    _, decision = run([sample(requests=5, memory_oom_kills=2)])
    assert decision.action == "rollback" and decision.trigger == "memory_oom_kills"


def test_rates_are_inconclusive_under_min_requests_even_when_bad():
    judgement = judge_sample(sample(requests=5, error_rate=0.5), STAGE, TRIGGERS, 50, PLAN.alpha)
    assert "error_rate" in judgement.inconclusive and not judgement.held_triggers


def test_a_pause_for_thin_traffic_says_so():
    _, decision = run([sample(requests=10)] * 3)
    assert "the canary served 10 requests, fewer than min_requests 50" in decision.reason


def test_paused_rollouts_still_roll_back_on_critical_but_do_not_pause_again():
    _, warning = run([sample(error_rate=0.006)] * 2, pause_on_warning=False)
    _, critical = run([sample(error_rate=0.05)], pause_on_warning=False)
    assert warning.action == "continue" and critical.action == "rollback"


def test_streaks_count_and_reset():
    cpu = next(t for t in TRIGGERS if t.check.metric == "cpu")
    streaks, _ = run([sample(cpu=0.9), sample(cpu=0.9)])
    assert streaks[trigger_key(cpu)] == 2
    streaks, _ = run([sample(cpu=0.9), sample()], streaks=None)
    assert trigger_key(cpu) not in streaks
    streaks, _ = run([sample(cpu=None)], streaks={trigger_key(cpu): 2})
    assert streaks[trigger_key(cpu)] == 2, "missing data neither counts nor clears a streak"
    streaks, _ = run([sample(error_rate=None)])
    assert streaks[INCONCLUSIVE_STREAK] == 1


def test_reasons_say_what_breached():
    _, decision = run([sample(error_rate=0.031)])
    assert decision.reason.startswith("error_rate 3.1% > 1% (critical)")


@pytest.mark.parametrize(
    "samples, action, trigger",
    [
        ([counted(2, 100)], "continue", ""),  # "2%" against error_rate > 1% and success_rate < 99%: 2 errors are not enough to tell
        ([counted(2, 100)] * 5, "continue", ""),  # a critical acts on one breach beyond doubt, never on a pile of doubts
        ([counted(30, 100)], "rollback", "error_rate"),  # 30 in 100: over 1% beyond doubt (15%–49%)
        ([counted(30, 100, latency_p99=1200)], "rollback", "error_rate"),
        ([counted(5, 1000)], "continue", ""),  # 0.5%: under the critical, at the warning's limit
        ([counted(3, 10)] * 3, "pause", "inconclusive"),  # under min_requests, counts or not: set aside
        # error_rate > 0.5% warning, 2 in a row: 900 in 100,000 (0.77%–1.04%) is over it beyond doubt, not over the critical 1%
        ([counted(900, 100_000)] * 2, "pause", "error_rate"),
        ([counted(900, 100_000), counted(8, 1000), counted(900, 100_000)], "pause", "error_rate"),  # 0.8% in doubt: neither counts nor clears
        ([counted(900, 100_000), counted(1, 1000), counted(900, 100_000)], "continue", ""),  # 0.1%: under the limit, the streak starts again
    ],
)
def test_rate_triggers_on_counts_breach_only_beyond_doubt(samples, action, trigger):
    _, decision = run(samples)
    assert (decision.action, decision.trigger) == (action, trigger), decision.reason


def test_without_counts_a_rate_trigger_judges_the_value_as_before():
    _, decision = run([sample(error_rate=0.02, success_rate=0.98)])
    assert (decision.action, decision.trigger) == ("rollback", "error_rate")


def test_a_breach_on_counts_gives_its_evidence_and_a_doubt_is_no_pass():
    _, decision = run([counted(30, 100)])
    assert decision.reason.startswith("error_rate 30% > 1% (critical): 30 errors in 100 requests, 15.06%–48.59% of them"), decision.reason
    doubt = judge_sample(counted(2, 100), STAGE, TRIGGERS, PLAN.min_requests, PLAN.alpha)
    assert not doubt.held_triggers and doubt.verdicts["error_rate"] == "unmet" and doubt.verdicts["success_rate"] == "unmet"
    assert not doubt.inconclusive, "no data is missing: the doubt does not count towards an inconclusive pause"


def binomial_tail(requests: int, rate: float, at_least: int) -> float:
    """The chance of `at_least` errors or more among `requests`, each an error with chance `rate` (exact, in logs)."""

    def log_pmf(k: int) -> float:
        return math.lgamma(requests + 1) - math.lgamma(k + 1) - math.lgamma(requests - k + 1) + k * math.log(rate) + (requests - k) * math.log1p(-rate)

    return sum(math.exp(log_pmf(k)) for k in range(at_least, requests + 1))


def fewest_errors_over(limit: float, requests: int) -> int:
    return next(e for e in range(requests + 1) if rate_bounds(e, requests, PLAN.alpha)[0] > limit)


@pytest.mark.parametrize("requests, over_a_rollout", [(50, 0.09), (100, 0.045), (1000, 0.01), (10_000, 0.004)])
def test_a_canary_at_its_critical_limit_rarely_breaches_it(requests, over_a_rollout):
    """Exact, not sampled: the fewest errors that breach "> 1%" beyond doubt, and the binomial chance of as many
    at exactly 1%. The interval is valid at every sample size, so for one look it is far wider than alpha: a
    sample breaches with a chance under alpha / 50 (1.5e-4 at 50 requests, 1.6e-5 at 1,000), and a canary
    sitting at its limit for all 630 samples of the default plan is rolled back with the chance `over_a_rollout`."""
    chance = binomial_tail(requests, 0.01, fewest_errors_over(0.01, requests))
    assert chance < PLAN.alpha / 50
    assert 1 - (1 - chance) ** 630 < over_a_rollout


@pytest.mark.parametrize("requests, rate, caught", [(1000, 0.03, 0.75), (1000, 0.02, 0.1), (3000, 0.02, 0.7), (100, 0.1, 0.85)])
def test_a_canary_well_over_its_critical_limit_is_caught_within_a_few_samples(requests, rate, caught):
    """The cost of that certainty: at the default plan's 5% stage (1,000 canary requests a sample) 3% errors breach
    "> 1%" on 80% of samples, 2% on 11% (about 90s); the window's summed counts judge what a sample cannot tell."""
    assert binomial_tail(requests, rate, fewest_errors_over(0.01, requests)) > caught


def window_of(*samples: Sample, span_s: float = 10, stage=STAGE) -> WindowStats:
    window = WindowStats()
    for s in samples:
        judgement = judge_sample(s, stage, TRIGGERS, PLAN.min_requests, PLAN.alpha)
        counts = {track: c.to_dict() for track, c in (("canary", s.canary_counts), ("stable", s.stable_counts)) if c is not None}
        window.add({m: {"canary": v.canary, "stable": v.stable} for m, v in s.values.items()}, not judgement.inconclusive, span_s, counts)
    return window


@pytest.mark.parametrize(
    "samples, outcome, metric",
    [
        ([sample()] * 6, "pass", ""),
        ([sample()] * 5 + [sample(error_rate=0.03)], "fail", "error_rate"),  # window mean 0.58% > 0.5%
        ([sample(latency_p99=TrackValues(300, 240))] * 6, "fail", "latency_p99"),  # 300 > 1.2 × 240
        ([sample(latency_p99=TrackValues(280, 240))] * 6, "pass", ""),
        ([sample()] * 4, "inconclusive", "coverage"),  # 40s of the 60s window < 80%
        ([sample()] * 4 + [sample(requests=1)] * 2, "inconclusive", "coverage"),
        ([sample()] * 5 + [sample(error_rate=0.004)], "pass", ""),
    ],
)
def test_window_judgement(samples, outcome, metric):
    verdict = judge_window(STAGE, window_of(*samples), elapsed_s=60, min_coverage=0.8, confidence=CONFIDENCE)
    assert (verdict.outcome, verdict.metric) == (outcome, metric), verdict.reason


@pytest.mark.parametrize(
    "samples, span_s, elapsed_s, outcome",
    [
        (4, 15, 60, "pass"),  # four late samples, each measuring the 15s since the one before: the window is covered
        (5, 12, 60, "pass"),
        (4, 10, 60, "inconclusive"),  # late but measuring only their interval: 20s of the window nobody measured
        (6, 10, 90, "inconclusive"),  # the window's last sample 30s late: a hole at its end
        (6, 10, 70, "pass"),  # 60s of 70s: 86%
    ],
)
def test_window_coverage_is_the_share_of_its_time_samples_measured(samples, span_s, elapsed_s, outcome):
    verdict = judge_window(STAGE, window_of(*[sample()] * samples, span_s=span_s), elapsed_s, min_coverage=0.8, confidence=CONFIDENCE)
    assert verdict.outcome == outcome, verdict.reason
    if outcome == "inconclusive":
        assert verdict.metric == "coverage" and f"covered only {format_duration(samples * span_s)} of the" in verdict.reason


SERVICE_PLAN = plan_from("app: a\nimage: r/a:2\nstages:\n  - weight: 50\n    observe: 1m\n    criteria: {success_rate: '> 99.95%', latency_p99: '< 400ms'}\n")
SERVICE_STAGE = SERVICE_PLAN.stages[0]
BOTH_AT_7_IN_10_000 = ((70, 100_000), (70, 100_000))
"""0.07% errors on both tracks, each sample: 420 in 600,000 over the window, 0.055%–0.088%, beyond doubt over 0.05%."""


@pytest.mark.parametrize(
    "canary, stable, judged_worse, outcome, the_service",
    [
        (*BOTH_AT_7_IN_10_000, {}, "fail", True),  # the window's own test finds no difference (judge: threshold)
        (*BOTH_AT_7_IN_10_000, {"success_rate": False}, "fail", True),  # nor has the sequential judge
        (*BOTH_AT_7_IN_10_000, {"success_rate": True}, "fail", False),  # the judge has shown the canary worse
        ((200, 100_000), (70, 100_000), {}, "fail", False),  # 0.2% against 0.07%: the canary's own failure
        ((70, 100_000), (20, 100_000), {"success_rate": False}, "fail", False),  # stable holds the limit
        ((7, 10_000), (70, 100_000), {}, "inconclusive", False),  # 42 in 60,000: over on the estimate, 0.03%–0.13%
        ((4, 10_000), (70, 100_000), {}, "pass", False),  # 24 in 60,000: the estimate meets the limit
    ],
)
def test_a_window_judges_its_rates_on_its_summed_counts(canary, stable, judged_worse, outcome, the_service):
    window = window_of(*[counted(*canary, stable=stable)] * 6, stage=SERVICE_STAGE)
    verdict = judge_window(SERVICE_STAGE, window, 60, 0.8, Confidence(PLAN.alpha, PLAN.tolerance, judged_worse))
    assert (verdict.outcome, verdict.the_service) == (outcome, the_service), verdict.reason
    assert verdict.metric == ("" if outcome == "pass" else "success_rate")
    if the_service:
        assert verdict.reason.endswith(
            "success_rate 99.93% (420 errors in 600,000 requests, 0.0549%–0.0877% of them) not > 99.95% — stable 99.93% fails it too: the service, not the canary"
        )
    if outcome == "inconclusive":
        assert "not > 99.95%, but not beyond doubt (42 errors in 60,000 requests" in verdict.reason


def test_a_window_of_thin_samples_weighs_its_counts_not_the_mean_of_their_rates():
    """Six samples of 50 requests, one with 2 errors: the mean of their rates is 0.67%, over "< 0.5%"; the window's
    2 errors in 300 requests are not beyond doubt over it (0.04%–4.7%). Means alone would have failed it."""
    samples = [counted(0, 50)] * 5 + [counted(2, 50)]
    verdict = judge_window(STAGE, window_of(*samples), 60, 0.8, CONFIDENCE)
    assert (verdict.outcome, verdict.metric) == ("inconclusive", "error_rate"), verdict.reason
    assert window_of(*samples).track_counts("canary") == TrackCounts(300, 2)


@pytest.mark.parametrize(
    "latency, outcome, the_service",
    [
        (TrackValues(450, 440), "fail", True),  # without a test of latency, the means within the tolerance (20%)
        (TrackValues(600, 440), "fail", False),  # 600 > 1.2 × 440: the canary is worse
        (TrackValues(450, 300), "fail", False),  # stable holds "< 400ms"
        (TrackValues(450, None), "fail", False),  # nothing to compare with: not the service's
    ],
)
def test_on_means_stable_fails_too_when_the_canary_is_within_the_tolerance(latency, outcome, the_service):
    window = window_of(*[counted(0, 100_000, stable=(0, 100_000), latency_p99=latency)] * 6, stage=SERVICE_STAGE)
    verdict = judge_window(SERVICE_STAGE, window, 60, 0.8, CONFIDENCE)
    assert (verdict.outcome, verdict.metric, verdict.the_service) == (outcome, "latency_p99", the_service), verdict.reason


def test_a_relative_criterion_that_fails_is_the_canarys_own():
    window = window_of(*[sample(latency_p99=TrackValues(300, 240))] * 6)
    verdict = judge_window(STAGE, window, 60, 0.8, CONFIDENCE)
    assert (verdict.outcome, verdict.the_service) == ("fail", False)


def test_the_service_pauses_only_when_every_failure_is_the_services():
    both = counted(70, 100_000, stable=(70, 100_000), latency_p99=TrackValues(600, 300))
    verdict = judge_window(SERVICE_STAGE, window_of(*[both] * 6, stage=SERVICE_STAGE), 60, 0.8, CONFIDENCE)
    assert verdict.outcome == "fail" and not verdict.the_service, "the canary's own latency failure rolls back"
    assert "the service, not the canary" in verdict.reason, "the reason still says which failure is the service's"


def test_window_memory_is_constant():
    window = window_of(*[sample()] * 1000)
    assert window.samples == 1000 and len(window.metrics) == len(HEALTHY)


maybe_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6))
track = st.builds(TrackValues, maybe_value, maybe_value)
maybe_count = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**7))
counts = st.one_of(st.none(), st.builds(TrackCounts, maybe_count, maybe_count))
samples_strategy = st.builds(
    Sample,
    st.dictionaries(st.sampled_from(sorted(HEALTHY) + ["latency_p50", "unknown"]), track, max_size=9),
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**6)),
    canary_counts=counts,
    stable_counts=counts,
)


@given(st.lists(samples_strategy, min_size=1, max_size=8))
def test_judgement_never_crashes(samples):
    streaks, decision = run(samples)
    assert decision.action in ("continue", "pause", "rollback")
    assert all(isinstance(n, int) and n > 0 for n in streaks.values())
    for stage in (STAGE, SERVICE_STAGE):
        verdict = judge_window(stage, window_of(*samples, stage=stage), 60, 0.8, CONFIDENCE)
        assert verdict.outcome in ("pass", "fail", "inconclusive")
    for means in verdict.means.values():
        assert means.canary is None or math.isfinite(means.canary)
