"""brahma calibrate: the statistics and suggestions over replay outcomes, the options read, and whole A/A
calibrations on a real Prometheus serving generated history (testbed/history.py): a healthy stable, and a
stable that sits just outside the plan's error-rate limit at night."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from console.app.calibrate import CalibrationRefused, read_request
from console.app.cli import main
from console.backtest.replay import fetch_history, replay, replay_span
from console.backtest.times import format_wall
from console.calibrate.outcomes import Decision, ReplayOutcome, attribute, outcome_of, plan_items
from console.calibrate.run import a_a_population, history_replay, run_replays, start_times
from console.calibrate.summary import suggest, summarize, wilson
from console.journal import events as ev
from console.plan import load_plan_text
from console.plan.problems import PlanError
from console.preflight.checks import CHECKS
from console.preflight.context import PreflightContext
from testbed.history import Change, History, TrackRates, nightly, recent_range, require_history_tools, serving_history
from testbed.prometheus_server import PrometheusServer

PLAN = """\
app: checkout
image: registry.example.com/checkout:2.4.1
interval: 10s
pause_timeout: 3m
stages:
  - weight: 10
    observe: 5m
    criteria:
      error_rate: "< 0.1%"
  - name: monitoring
    weight: 100
    observe: 5m
    criteria:
      error_rate: "< 0.1%"
      latency_p99: "< 500ms"
metrics:
  provider: prometheus
"""
"""10 minutes planned; the error-rate limit is the one a stable at 0.12% at night sits just outside."""


def plan_from(text: str = PLAN):
    return load_plan_text(text, "plan.yaml")


# -- statistics ---------------------------------------------------------------------------------


def test_wilsons_interval_has_known_values():
    low, high = wilson(0, 100)
    assert low == pytest.approx(0, abs=1e-12) and high == pytest.approx(0.0370, abs=1e-4)
    low, high = wilson(5, 10)
    assert (low + high) / 2 == pytest.approx(0.5) and low == pytest.approx(0.2366, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_starts_run_every_every_from_the_first_up_to_the_end():
    assert start_times(1000.0, 1000.0 + 3600, 600) == [1000.0 + k * 600 for k in range(6)]
    assert start_times(1000.0, 1000.0 + 3601, 600)[-1] == 1000.0 + 3600
    assert start_times(1000.0, 900.0, 600) == []


def outcome(plan, start: float, stopped_by: str | None, action: str = "pause", observed: dict | None = None, value: float | None = None) -> ReplayOutcome:
    decision = Decision(action, start + 60, (stopped_by,), "why", value) if stopped_by else None
    ending = "promoted" if stopped_by is None else "rolled back"
    return ReplayOutcome(start, ending, decision, observed or {})


def test_the_rate_counts_rollbacks_over_finished_replays_and_each_item_its_own():
    plan = plan_from()
    items = plan_items(plan)
    key = "stages[0].criteria.error_rate"
    outcomes = [outcome(plan, k * 600.0, key if k % 4 == 0 else None, value=0.0012 + k * 1e-5) for k in range(20)]
    outcomes.append(ReplayOutcome(20 * 600.0, "not finished"))
    calibration = summarize(plan, items, outcomes, 0.0, 12000.0, 600.0, target=0.01)
    assert (calibration.false_rollbacks.count, calibration.false_rollbacks.of) == (5, 20)
    assert calibration.exceeds_target
    stopping = {summary.item.key: summary for summary in calibration.items if summary.stopped}
    assert list(stopping) == [key] and stopping[key].paused == 5
    assert stopping[key].worst.start_wall == 16 * 600.0  # the highest error rate at its decision
    # 20 replays of 10 minutes, one every 10 minutes: none overlaps, so the intervals agree.
    assert calibration.false_rollbacks.independent == pytest.approx(20)
    summary = calibration.to_json()
    assert summary["replays"] == {"started": 21, "finished": 20, "not_finished": 1, "promoted": 15, "rolled_back": 5, "paused": 5}
    assert summary["false_rollback_rate"]["estimate"] == 0.25 and summary["exceeds_target"] is True
    json.dumps(summary)


def test_overlapping_replays_count_as_fewer_independent_ones():
    plan = plan_from()
    outcomes = [outcome(plan, k * 60.0, None) for k in range(100)]
    calibration = summarize(plan, plan_items(plan), outcomes, 0.0, 6000.0, 60.0)
    assert calibration.false_rollbacks.independent == pytest.approx(10)
    assert calibration.false_rollbacks.independent_interval()[1] > calibration.false_rollbacks.interval()[1]


def test_a_limit_stable_fails_gets_a_suggestion_that_clears_what_stable_showed_as_yaml_to_paste():
    plan = plan_from()
    key = "stages[0].criteria.error_rate"
    observed = [0.0011, 0.0012, 0.00125, 0.0013, 0.0009]
    outcomes = [outcome(plan, k * 600.0, key if value > 0.001 else None, observed={key: value}) for k, value in enumerate(observed)]
    item = next(item for item in plan_items(plan) if item.key == key)
    suggestion = suggest(plan, item, outcomes, 0.01)
    assert suggestion.current == "< 0.1%" and suggestion.suggested == "< 0.15%"
    assert suggestion.would_stop == 0 and suggestion.value > max(observed)
    snippet = yaml.safe_load(suggestion.snippet)
    assert snippet == {"stages": [{"weight": 10, "criteria": {"error_rate": "< 0.15%"}}]}
    # Pasted in place of the stage's criterion, the plan reads the suggested limit as the suggestion's value.
    pasted = plan_from(PLAN.replace('error_rate: "< 0.1%"\n  - name', 'error_rate: "< 0.15%"\n  - name', 1))
    assert pasted.stages[0].criteria[0].value == pytest.approx(suggestion.value)


def test_a_success_rate_limit_is_suggested_lower_on_its_shortfall_and_a_trigger_in_its_own_form():
    plan = plan_from(PLAN.replace('      error_rate: "< 0.1%"\n  - name', '      success_rate: "> 99.95%"\n  - name', 1))
    item = next(item for item in plan_items(plan) if item.key == "stages[0].criteria.success_rate")
    outcomes = [outcome(plan, 0.0, item.key, observed={item.key: 0.99945})]
    assert suggest(plan, item, outcomes, 0.01).suggested == "> 99.92%"  # a shortfall of 0.055%, 10% more, rounded out to 0.08%
    trigger = next(item for item in plan_items(plan) if item.key == "triggers.warning.error_rate")
    suggestion = suggest(plan, trigger, [outcome(plan, 0.0, trigger.key, observed={trigger.key: 0.0062})], 0.01)
    assert suggestion.suggested == "> 0.8%"
    assert yaml.safe_load(suggestion.snippet) == {"triggers": {"warning": {"error_rate": "> 0.8%"}}}


def test_a_limit_that_already_clears_what_stable_showed_gets_no_suggestion():
    plan = plan_from()
    item = next(item for item in plan_items(plan) if item.key == "stages[0].criteria.error_rate")
    assert suggest(plan, item, [outcome(plan, 0.0, item.key, observed={item.key: 0.0004})], 0.01) is None


# -- which item stopped a replay -----------------------------------------------------------------


def test_each_decision_is_told_its_item():
    plan = plan_from()
    items = plan_items(plan)

    def keys(stage: int, trigger: str, reason: str, action: str = "pause") -> list[str]:
        return [item.key for item in attribute(plan, items, stage, trigger, reason, action)]

    assert keys(0, "error_rate", "stage 1 window failed: error_rate 0.13% (…) not < 0.1% — stable 0.13% fails it too") == ["stages[0].criteria.error_rate"]
    assert keys(1, "error_rate", "error_rate 0.12% not < 0.1%, but not beyond doubt (…)") == ["stages[1].criteria.error_rate"]
    assert keys(1, "latency_p99", "monitoring window failed: latency_p99 mean 612ms not < 500ms") == ["stages[1].criteria.latency_p99"]
    assert keys(0, "error_rate", "error_rate 2.1% > 1% (critical): 40 errors in 1,900 requests", "rollback") == ["triggers.critical.error_rate"]
    assert keys(0, "error_rate", "error_rate 0.7% > 0.5% (warning, 2 samples in a row)") == ["triggers.warning.error_rate"]
    assert keys(0, "judge:error_rate", "the sequential judge: …", "rollback") == ["analysis.judge.error_rate"]
    assert keys(0, "inconclusive", "inconclusive for 3 samples in a row (error_rate): no usable data") == ["analysis.inconclusive_limit"]
    assert keys(0, "drift", "the target changed beside the release: replicas") == ["other.drift"]


def test_an_outcome_names_its_first_decision_and_what_each_limit_saw():
    plan = plan_from()
    counts = {"canary": {"requests": 1000.0, "errors": 2.0, "latency_buckets": []}}
    events = [
        ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=10, observe_s=300.0),
        ev.SampleTaken(10.0, stage=0, metrics={"error_rate": {"canary": 0.002, "stable": 0.002}}, requests=1000.0, verdict="breach", counts=counts),
        ev.SampleTaken(20.0, stage=0, metrics={"error_rate": {"canary": 0.001, "stable": 0.001}}, requests=1000.0, verdict="pass", counts=counts),
        ev.Paused(300.0, reason="stage 1 window failed: error_rate 0.2% (…) not < 0.1%", trigger="error_rate"),
        ev.RollbackStarted(480.0, reason="paused 3m with no decision: …", trigger="error_rate"),
    ]
    result = outcome_of(plan, 5000.0, "rolled back", events, plan_items(plan))
    assert result.decision.action == "pause" and result.decision.at_wall == 5300.0
    assert result.decision.items == ("stages[0].criteria.error_rate",) and result.decision.value == 0.001
    assert result.observed["stages[0].criteria.error_rate"] == pytest.approx(0.002)  # the window's counts: 4 errors in 2,000
    assert result.observed["triggers.critical.error_rate"] == 0.002  # the worst sample


def test_replays_spread_over_forked_workers_come_back_in_start_order():
    plan = plan_from()

    async def fake_replay(start: float) -> ReplayOutcome:
        await asyncio.sleep(0)
        return outcome(plan, start, "stages[0].criteria.error_rate" if start % 3 == 0 else None)

    starts = [float(k) for k in range(23)]
    assert [result.start_wall for result in run_replays(starts, fake_replay, workers=2)] == starts
    assert run_replays(starts, fake_replay, workers=2) == run_replays(starts, fake_replay, workers=1)


# -- options ------------------------------------------------------------------------------------

NOW = 1_780_000_000.0


def test_the_options_are_read_against_the_plan():
    plan = plan_from()
    request = read_request(plan, "-3h", "-1h", None, "1%", now=NOW)
    assert (request.from_wall, request.to_wall, request.every_s, request.target) == (NOW - 3 * 3600, NOW - 3600, 300.0, 0.01)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("-1h", "-3h", None, "1%"), "is not after --from"),
        (("-3h", "-1h", "7s", "1%"), "whole number of its 10s interval"),
        (("-3h", "-1h", "soon", "1%"), "--every 'soon'"),
        (("-3h", "-1h", None, "1"), "--target-false-rollbacks"),
        (("-3h", "-1h", None, "0%"), "between 0% and 100%"),
        (("yesterday", "-1h", None, "1%"), "--from 'yesterday'"),
        (("-3h", "+1h", None, "1%"), "--to '+1h'"),
    ],
)
def test_bad_options_are_refused_with_what_is_wrong(args, said):
    with pytest.raises(CalibrationRefused, match=said.replace("(", r"\(").replace("+", r"\+")):
        read_request(plan_from(), *args, now=NOW)


def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    assert main(["calibrate", str(plan), "--from", "-3h", "--to", "-1h", "--every", "7s"]) == 2
    assert "--every '7s'" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text(PLAN.replace("interval: 10s", "interval: soon"))
    assert main(["calibrate", str(broken), "--from", "-3h", "--to", "-1h"]) == 2
    assert "broken.yaml:3: interval" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["calibrate", str(plan), "--from", "-3h", "--to", "-1h", "--workers", "0"])
    assert stopped.value.code == 2 and "--workers" in capsys.readouterr().err


def test_a_calibrate_item_is_advisory_unless_it_says_otherwise():
    plan = plan_from(PLAN + "preflight:\n  - {name: a-a, kind: calibrate, lookback: 3h, max_false_rollbacks: 5%}\n  - {name: up, kind: file, path: x}\n")
    calibrate, other = plan.preflight
    assert (calibrate.required, calibrate.lookback, calibrate.max_false_rollbacks) == (False, 10800.0, 0.05)
    assert other.required is True
    required = plan_from(PLAN + "preflight:\n  - {name: a-a, kind: calibrate, required: true}\n")
    assert required.preflight[0].required is True


@pytest.mark.parametrize(("written", "said"), [("max_false_rollbacks: 0%", "between 0% and 100%"), ("every: 0s", "longer than nothing")])
def test_a_calibrate_item_out_of_range_is_refused_at_its_line(written, said):
    with pytest.raises(PlanError) as refused:
        plan_from(PLAN + f"preflight:\n  - {{name: a-a, kind: calibrate, {written}}}\n")
    assert said in str(refused.value) and "plan.yaml:19: preflight[0]" in str(refused.value)


# -- whole calibrations on a real Prometheus -------------------------------------------------------

HEALTHY = TrackRates(rps=200.0, error_rate=0.0001)
NIGHT_ERRORS = 0.0012
"""Stable's error rate between 00:00 and 06:00: just outside the plan's < 0.1%."""
RECENT_START, RECENT_END = recent_range(4 * 3600)
ELEVATED_FROM = RECENT_START + 2 * 3600
"""The recent history's stable sits at the night's error rate for its last two hours."""
DAY = math.floor(time.time() / 86400) * 86400 - 86400
"""Yesterday's midnight (UTC): the night history runs from 22:00 the day before to 04:00."""
NIGHT = History(
    DAY - 2 * 3600,
    DAY + 4 * 3600,
    stable=HEALTHY,
    canary=HEALTHY,
    changes=nightly("stable", DAY - 2 * 3600, DAY + 4 * 3600, 0, 6, error_rate=NIGHT_ERRORS),
    seed=11,
)
RECENT = History(
    RECENT_START, RECENT_END, stable=HEALTHY, canary=HEALTHY, changes=(Change("stable", ELEVATED_FROM, RECENT_END + 1, error_rate=NIGHT_ERRORS),), seed=12
)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_history_tools()
    with serving_history(NIGHT, tmp_path_factory.mktemp("night")) as (server, _):
        yield server


@pytest.fixture(scope="module")
def recent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_history_tools()
    with serving_history(RECENT, tmp_path_factory.mktemp("recent")) as (server, _):
        yield server


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return path


def calibrate(capsys, plan: Path, url: str, from_wall: float, to_wall: float, *extra: str) -> tuple[int, dict]:
    code = main(["calibrate", str(plan), "--from", format_wall(from_wall), "--to", format_wall(to_wall), "--prometheus", url, "--json", *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {"err": err}


def test_a_healthy_stable_calibrates_to_a_low_false_rollback_rate(night, plan_file, capsys):
    code, summary = calibrate(capsys, plan_file, night.url, DAY - 110 * 60, DAY - 50 * 60, "--every", "10m")
    assert code == 0, summary
    assert summary["replays"]["finished"] == 6
    assert summary["false_rollback_rate"]["estimate"] <= 1 / 6 and not summary["suggestions"]
    assert summary["cost"]["range_queries"] <= 8  # the history read once for all six replays


def test_two_label_sets_of_stable_are_read_at_the_same_instants(night, plan_file, capsys):
    """--canary-selector: another label set of the same population (here the canary track, served as stable is)."""
    selectors = ("--canary-selector", 'app="checkout",track="canary"', "--stable-selector", 'app="checkout",track="stable"')
    code, summary = calibrate(capsys, plan_file, night.url, DAY - 110 * 60, DAY - 80 * 60, "--every", "10m", *selectors)
    assert code == 0 and summary["replays"]["promoted"] == 3
    assert summary["a_a"] == '{app="checkout",track="canary"} against {app="checkout",track="stable"}'
    assert summary["cost"]["range_queries"] > 4  # each track's own queries, fetched once each


def test_a_stable_just_outside_a_limit_at_night_names_that_limit_and_suggests_one_it_meets(night, plan_file, capsys):
    code, summary = calibrate(capsys, plan_file, night.url, DAY + 600, DAY + 2 * 3600, "--every", "15m")
    assert code == 0 and summary["exceeds_target"]
    stopping = {item["key"]: item for item in summary["items"] if item["paused"] + item["rolled_back"]}
    assert "stages[0].criteria.error_rate" in stopping
    assert summary["false_rollback_rate"]["estimate"] >= 0.5
    suggested = {suggestion["key"]: suggestion for suggestion in summary["suggestions"]}
    first = suggested["stages[0].criteria.error_rate"]
    assert first["current"] == "< 0.1%" and first["would_stop"] == 0
    limit = yaml.safe_load(first["yaml"])["stages"][0]["criteria"]["error_rate"]
    pasted = plan_file.parent / "pasted.yaml"
    pasted.write_text(PLAN.replace('error_rate: "< 0.1%"', f'error_rate: "{limit}"'))
    code, again = calibrate(capsys, pasted, night.url, DAY + 600, DAY + 2 * 3600, "--every", "15m")
    assert not [item for item in again["items"] if item["key"] == "stages[0].criteria.error_rate" and item["paused"] + item["rolled_back"]]


def test_the_summary_reads_as_text_too(night, plan_file, capsys):
    code = main(["calibrate", str(plan_file), "--from", format_wall(DAY + 600), "--to", format_wall(DAY + 1800), "--every", "10m", "--prometheus", night.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "false rollbacks:" in out and "stage 1 (10%): error_rate < 0.1%" in out and "stages:\n" in out


def test_history_with_nothing_to_replay_exits_2(night, plan_file, capsys):
    code, summary = calibrate(capsys, plan_file, night.url, DAY - 6 * 3600, DAY - 5 * 3600)
    assert code == 2 and "no data" in summary["err"]


def preflight_plan(tmp_path: Path, maximum: str) -> Path:
    path = tmp_path / f"gate-{maximum.rstrip('%')}.yaml"
    path.write_text(PLAN + f"preflight:\n  - {{name: a-a, kind: calibrate, lookback: 3h30m, every: 15m, max_false_rollbacks: {maximum}, timeout: 2m}}\n")
    return path


@pytest.mark.parametrize(("maximum", "passes"), [("90%", True), ("5%", False)])
def test_the_preflight_item_passes_and_fails_by_its_threshold(recent, tmp_path, maximum, passes):
    """Over the last 3h30m, half the replays start in the two hours stable sits outside the limit."""
    from console.plan import load_plan

    plan = load_plan(preflight_plan(tmp_path, maximum))
    item = plan.preflight[0]
    passed, output = asyncio.run(CHECKS["calibrate"](item, PreflightContext(plan, prometheus_url=recent.url)))
    assert passed is passes, output
    assert f"max_false_rollbacks {float(maximum.rstrip('%')):.2f}%" in output


def test_a_replay_on_calibrates_fast_path_has_the_outcome_of_one_with_a_journal_on_disk_and_samples_of_its_own(night, tmp_path):
    """Starts across the evening and the night (promoted, then paused and rolled back by the night's errors): each
    replay calibrate runs (no journal kept, samples shared, their judgements kept with them, no judge's evidence in
    its events) ends as the same replay with a journal on disk, the judge's evidence in it, and its own source does,
    with the same decision and the same values observed."""
    plan = plan_from()
    population = a_a_population(plan)
    items = plan_items(plan)
    starts = start_times(DAY - 30 * 60, DAY + 40 * 60, 5 * 60)

    async def run() -> tuple[list[ReplayOutcome], list[ReplayOutcome]]:
        fetched = await fetch_history(plan, starts[0], starts[-1] + replay_span(plan), night.url, population.selectors)
        try:
            replay_one = history_replay(plan, fetched, population, items)
            fast = [await replay_one(start) for start in starts]
            slow = []
            for start in starts:
                own = await replay(plan, start, fetched, population.selectors, canary_lag_s=population.canary_lag_s, state_dir=tmp_path / str(start))
                assert own.journal is not None and own.journal.stat().st_size > 0
                assert any(event.judge for event in own.events if isinstance(event, ev.SampleTaken))
                slow.append(outcome_of(plan, start, own.outcome, own.events, items))
            return fast, slow
        finally:
            await fetched.close()

    fast, slow = asyncio.run(run())
    assert [replace(outcome, cpu_s=0.0) for outcome in fast] == slow
    assert {outcome.outcome for outcome in slow} == {"promoted", "rolled back"}
