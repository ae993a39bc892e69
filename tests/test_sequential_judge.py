"""The sequential judge in the controller: a canary worse than stable under every limit is rolled back
in its first stage, with the evidence in the reason; one as good as stable is promoted; the evidence
carries through the stages and a resume; `judge: threshold` is the limits alone."""

from __future__ import annotations

import dataclasses

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.controller.sequential import SequentialJudge
from console.journal import events as ev
from console.journal.journal import read_events
from console.plan import load_plan
from console.plan.problems import PlanError
from console.samples import TrackCounts
from testbed import SAMPLES
from tests.conftest import plan_from, sim_controller, stop_at


def scenario_file(tmp_path, canary_error_rate: float, stable_error_rate: float, seed: int = 1):
    path = tmp_path / f"errors-{canary_error_rate}-{seed}.yaml"
    path.write_text(f"name: errors\nseed: {seed}\nstable:\n  error_rate: {stable_error_rate}\ncanary:\n  error_rate: {canary_error_rate}\n")
    return str(path)


HEADLESS = ControllerOptions(headless=True)


def samples(journal) -> list[ev.SampleTaken]:
    return [event for event in read_events(journal) if isinstance(event, ev.SampleTaken)]


async def test_a_canary_with_three_and_a_half_times_the_errors_under_every_limit_is_rolled_back_at_5_percent(tmp_path):
    """0.28% against 0.08%: the limits (under 1% at 5%) pass it; the judge catches it before the first window ends."""
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = sim_controller(plan, tmp_path, scenario_file(tmp_path, 0.0028, 0.0008), HEADLESS)
    assert await controller.run() == "rolled_back"
    rollback = [e for e in read_events(controller.journal.path) if isinstance(e, ev.RollbackStarted)][0]
    assert rollback.trigger == "judge:error_rate"
    assert rollback.t < 600, "within the 5% stage's 10-minute window"
    assert rollback.reason.startswith("errors ") and " vs " in rollback.reason and "canary requests" in rollback.reason
    evidence = samples(controller.journal.path)[-1].judge["error_rate"]
    assert evidence["log_e"] >= evidence["log_threshold"]
    assert evidence["low"] > 1.0, "the interval lies above stable"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_canary_as_good_as_stable_is_promoted_and_the_evidence_is_journaled_at_every_sample(tmp_path, seed):
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = sim_controller(plan, tmp_path, scenario_file(tmp_path, 0.0003, 0.0003, seed), HEADLESS)
    assert await controller.run() == "completed"
    judged = [s.judge for s in samples(controller.journal.path) if s.judge]
    assert len(judged) >= 60 * 4, "every sample with both tracks counted carries the evidence"
    assert all(j["error_rate"]["log_e"] < j["error_rate"]["log_threshold"] for j in judged)
    requests = [j["error_rate"]["canary_requests"] for j in judged]
    assert requests == sorted(requests) and requests[-1] > requests[0], "the evidence grows across the stages, never restarts"


async def test_under_judge_threshold_the_counts_decide_nothing(tmp_path):
    plan = dataclasses.replace(load_plan(SAMPLES / "canary.yaml"), judge="threshold")
    controller = sim_controller(plan, tmp_path, scenario_file(tmp_path, 0.0028, 0.0008), HEADLESS)
    await controller.run()
    assert all(not s.judge for s in samples(controller.journal.path))
    rollbacks = [e for e in read_events(controller.journal.path) if isinstance(e, ev.RollbackStarted)]
    assert all(not r.trigger.startswith("judge") for r in rollbacks)
    assert not rollbacks or rollbacks[0].t >= 600, "the limits alone wait for a window's end at least"


async def test_a_resumed_rollout_carries_the_evidence_it_had_on(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    scenario = scenario_file(tmp_path, 0.0004, 0.0003)
    whole = sim_controller(plan, tmp_path / "whole", scenario, HEADLESS)
    await whole.run()
    expected = {s.t: s.judge for s in samples(whole.journal.path)}

    first = sim_controller(plan, tmp_path / "resumed", scenario, HEADLESS, VirtualClock(stop_at=900))
    await stop_at(first, 900)
    resumed = sim_controller(plan, tmp_path / "resumed", scenario, HEADLESS)
    await resumed.run()
    after = [s for s in samples(resumed.journal.path) if s.t > 900 and s.judge]
    assert after, "samples were taken after the resume"
    for sample in after[:5]:
        assert sample.judge == expected[sample.t], f"at t={sample.t} the resumed run's evidence differs from the whole run's"


def test_the_judges_settings_are_read_with_their_units_and_a_bare_tolerance_is_refused():
    base = (SAMPLES / "minimal.yaml").read_text()
    plan = plan_from(base + "analysis:\n  judge: sequential\n  alpha: 0.05\n  tolerance: 50%\n  floor: 0.02%\n")
    assert (plan.judge, plan.alpha, plan.tolerance, plan.floor) == ("sequential", 0.05, 0.5, 0.0002)
    assert plan_from(base).judge == "sequential" and plan_from(base).tolerance == 0.2
    with pytest.raises(PlanError, match=r"tolerance.*with its %"):
        plan_from(base + "analysis:\n  tolerance: 20\n")
    with pytest.raises(PlanError, match="judge"):
        plan_from(base + "analysis:\n  judge: bayesian\n")
    with pytest.raises(PlanError, match="alpha"):
        plan_from(base + "analysis:\n  alpha: 0\n")


def test_counts_that_are_not_numbers_are_no_evidence_and_leave_the_judge_as_it_was():
    judge = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001)
    stable = TrackCounts(1000.0, 1.0)
    for broken in (TrackCounts(float("nan"), 0.0), TrackCounts(100.0, float("inf")), TrackCounts(100.0, -1.0)):
        assert not judge.add(broken, stable), broken
    assert judge.journaled() == {} and judge.regression() is None
    assert judge.add(TrackCounts(1000.0, 2.0), stable) and judge.journaled()["error_rate"]["canary_errors"] == 2
