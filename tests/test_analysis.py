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
from console.samples import Sample, TrackValues
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


def window_of(*samples: Sample, span_s: float = 10) -> WindowStats:
    window = WindowStats()
    for s in samples:
        judgement = judge_sample(s, STAGE, TRIGGERS, PLAN.min_requests, PLAN.alpha)
        window.add({m: {"canary": v.canary, "stable": v.stable} for m, v in s.values.items()}, not judgement.inconclusive, span_s)
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


def test_window_memory_is_constant():
    window = window_of(*[sample()] * 1000)
    assert window.samples == 1000 and len(window.metrics) == len(HEALTHY)


maybe_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6))
track = st.builds(TrackValues, maybe_value, maybe_value)
samples_strategy = st.builds(
    Sample,
    st.dictionaries(st.sampled_from(sorted(HEALTHY) + ["latency_p50", "unknown"]), track, max_size=9),
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**6)),
)


@given(st.lists(samples_strategy, min_size=1, max_size=8))
def test_judgement_never_crashes(samples):
    streaks, decision = run(samples)
    assert decision.action in ("continue", "pause", "rollback")
    assert all(isinstance(n, int) and n > 0 for n in streaks.values())
    verdict = judge_window(STAGE, window_of(*samples), 60, 0.8, CONFIDENCE)
    assert verdict.outcome in ("pass", "fail", "inconclusive")
    for means in verdict.means.values():
        assert means.canary is None or math.isfinite(means.canary)
