"""The sequential judge's evidence as the state fold reads it from the journal: the latest per metric, said
as a person reads it, and the interval's history kept whole over the rollout in bounded memory."""

from __future__ import annotations

import math

from console.journal import events as ev
from console.journal.evidence import BandHistory, BandPoint, JudgeEvidence, by_trigger, trigger_metric, trigger_said
from console.journal.state import HISTORY_LENGTH, fold


def sample(t: float, judge: dict) -> ev.SampleTaken:
    return ev.SampleTaken(t, stage=0, metrics={"error_rate": {"canary": 0.003, "stable": 0.001}}, requests=100.0, verdict="pass", judge=judge)


def entry(ratio, low, high, **more) -> dict:
    return {"ratio": ratio, "low": low, "high": high, "log_e": 1.5, "log_threshold": 4.6052, "canary_requests": 1400.0, "canary_errors": 4, **more}


def test_evidence_is_said_as_ratio_and_interval_and_an_unbounded_end_as_zero_or_infinity():
    assert JudgeEvidence.from_journal(entry(2.8, 1.1, 5.8)).said() == "×2.8 [1.1–5.8]"
    assert JudgeEvidence.from_journal(entry(0.7234, 0.3121, 12.4)).forms() == ("×0.72 [0.31–12]", "×0.31–12", "×0.72")
    nothing_yet = JudgeEvidence.from_journal(entry(None, None, None))
    assert nothing_yet.said() == "×? [0–∞]" and nothing_yet.forms() == ("×? [0–∞]", "×0–∞"), "no estimate: no ratio to say alone"


def test_a_journaled_value_that_is_no_number_is_unknown_never_zero():
    evidence = JudgeEvidence.from_journal({"ratio": "3", "low": True, "high": float("nan"), "bound_ms": 500})
    assert (evidence.ratio, evidence.low, evidence.high, evidence.canary_requests, evidence.bound_ms) == (None, None, None, None, 500.0)


def test_a_trigger_names_its_metric_whether_a_limit_or_the_judge_decided():
    assert trigger_metric("judge:error_rate") == trigger_metric("error_rate") == "error_rate"
    assert trigger_metric("judge:latency_p99") == "latency_p99"
    assert trigger_metric("operator") == "operator"


def test_the_fold_keeps_the_latest_evidence_through_samples_that_carry_none():
    state = fold([sample(10, {"error_rate": entry(None, None, None)}), sample(20, {"error_rate": entry(2.8, 1.1, 5.8)}), sample(30, {})])
    assert state.judge["error_rate"].said() == "×2.8 [1.1–5.8]", "a sample with no evidence (no traffic counted) leaves the last"
    assert [(p.t, p.low, p.high) for p in state.judge_history["error_rate"]] == [(10, None, None), (20, 1.1, 5.8)]
    assert "latency_p99" not in state.judge


def test_an_entry_of_a_shape_this_version_does_not_know_is_no_evidence():
    state = fold([sample(10, {"error_rate": [1, 2], "latency_p99": entry(1.0, 0.5, 2.0, bound_ms=500)})])
    assert list(state.judge) == ["latency_p99"] and state.judge["latency_p99"].bound_ms == 500


def test_the_band_history_spans_the_whole_rollout_evenly_in_bounded_memory():
    history = BandHistory(HISTORY_LENGTH)
    samples = 6 * 60 * 3  # three hours of 10s samples: 1080, nine times the points kept
    for i in range(samples):
        history.add(BandPoint(float(i * 10), 1.0, 0.5, 2.0))
    times = [point.t for point in history]
    assert len(times) <= HISTORY_LENGTH + 1, "bounded, the latest point besides"
    assert times[0] == 0.0 and times[-1] == (samples - 1) * 10, "from the first sample to the latest"
    gaps = {b - a for a, b in zip(times, times[1:-1])}
    assert len(gaps) == 1 and len(times) > HISTORY_LENGTH // 2, "evenly spaced, and never fewer than half the points it may keep"


def test_a_short_rollout_keeps_every_point():
    history = BandHistory(HISTORY_LENGTH)
    for i in range(HISTORY_LENGTH):
        history.add(BandPoint(float(i), None, None, None))
    assert [point.t for point in history] == [float(i) for i in range(HISTORY_LENGTH)]


def test_a_trigger_is_said_as_a_person_says_it():
    assert trigger_said("judge:error_rate") == "the sequential judge (error rate vs stable)"
    assert trigger_said("judge:latency_p99") == "the sequential judge (latency p99 vs stable)"
    assert trigger_said("error_rate") == "error_rate" and trigger_said("operator") == "operator"
    assert by_trigger("judge:error_rate") == " by the sequential judge (error rate vs stable)" and by_trigger("cpu") == " (cpu)"


def test_the_e_value_is_said_in_plain_figures_against_the_one_that_rolls_back():
    evidence = JudgeEvidence.from_journal({"log_e": math.log(163.2), "log_threshold": math.log(100)})
    assert evidence.e_value_said == "e-value 160 of the 100 that rolls back"
    assert JudgeEvidence.from_journal({"log_e": -3.5, "log_threshold": 9.21}).e_value_said == "e-value 0.03 of the 10,000 that rolls back"
    assert "over 10^300" in JudgeEvidence.from_journal({"log_e": 5000.0, "log_threshold": 4.6}).e_value_said
    assert JudgeEvidence.from_journal({}).e_value_said == "", "nothing journaled: nothing said"
    assert JudgeEvidence.from_journal({"bound_ms": 500}).counted == "requests slower than 500ms"
