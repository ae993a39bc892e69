"""The sequential judge in the controller: a canary worse than stable under every limit, in its errors or
its latency, is rolled back in its first stage, with the evidence in the reason; one as good as stable is
promoted; the evidence carries through the stages and a resume; `judge: threshold` is the limits alone."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.controller.sequential import SequentialJudge
from console.derived import track_values
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from console.plan.problems import PlanError
from console.samples import HistoryPoint, Sample, TrackCounts, TrackValues
from console.sim.target import SimTarget
from console.sim.traffic import LatencyShape, draw_track_counts
from testbed import SAMPLES
from tests.conftest import plan_from, sim_controller, stop_at
from tests.test_judge_statistics import BOUNDS_S, SERVICE_RPS, STABLE_SLOWER, THREE_TIMES_SLOWER_PAST_200MS, track_counts


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


class LatencyTraffic:
    """A metric source of the test's own: each track's counts drawn at the target's weight of the moment
    (Poisson errors and latency buckets, seeded by the clock, so a resumed run draws what the killed one
    would have), its values derived from them as both real sources derive them, the pods' and resources'
    values healthy."""

    HEALTHY = {"cpu": 0.3, "memory": 0.4, "health_check_failures": 0.0, "memory_oom_kills": 0.0}

    def __init__(self, target: SimTarget, canary_slower: Sequence[float], seed: int = 1, error_rate: float = 0.0003):
        self.target, self.canary_slower, self.seed, self.error_rate = target, canary_slower, seed, error_rate

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        status = await self.target.status()
        canary_share = status.weight / 100 if status.new_image else 0.0
        rng = random.Random(self.seed * 7_000_003 + round(t * 1000))
        counts = {
            track: track_counts(rng, SERVICE_RPS * share * window_s, self.error_rate, slower) if share > 0 else None
            for track, share, slower in (("canary", canary_share, self.canary_slower), ("stable", 1 - canary_share, STABLE_SLOWER))
        }
        derived = {track: track_values(counted, window_s) if counted else None for track, counted in counts.items()}

        def value(metric: str, track: str) -> float | None:
            values = derived[track]
            return None if values is None else self.HEALTHY.get(metric, values.get(metric))

        return Sample(
            values={metric: TrackValues(value(metric, "canary"), value(metric, "stable")) for metric in metrics},
            canary_requests=counts["canary"].requests if counts["canary"] else None,
            canary_counts=counts["canary"],
            stable_counts=counts["stable"],
        )

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        return []

    async def close(self) -> None:
        return None


def latency_controller(plan, state_dir, canary_slower: Sequence[float], clock: VirtualClock | None = None) -> Controller:
    files = RolloutFiles(state_dir, plan.name)
    target = SimTarget(plan.strategy, plan.image, "registry.example.com/app:previous", 10, files.sim_state)
    metrics = LatencyTraffic(target, canary_slower)
    return Controller(plan, target, metrics, files.journal, clock or VirtualClock(), ControllerOptions(headless=True), actor="tester@host")


async def test_a_canary_with_three_times_stables_slow_requests_under_every_limit_is_rolled_back_at_5_percent_by_its_p99(tmp_path):
    """Its p99 267ms against stable's 188ms: under 500ms at 5% (and under 1.5× stable at 25%), so the limits
    pass it; the p99's e-process, at stable's 200ms bucket, calls it before the first window ends."""
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = latency_controller(plan, tmp_path, THREE_TIMES_SLOWER_PAST_200MS)
    assert await controller.run() == "rolled_back"
    rollback = [e for e in read_events(controller.journal.path) if isinstance(e, ev.RollbackStarted)][0]
    assert rollback.trigger == "judge:latency_p99"
    assert rollback.t < 600, "within the 5% stage's 10-minute window"
    assert rollback.reason.startswith("p99: ") and " of requests slower than 200ms: ×" in rollback.reason, rollback.reason
    assert rollback.reason.endswith("canary requests")
    evidence = samples(controller.journal.path)[-1].judge["latency_p99"]
    assert evidence["bound_ms"] == 200.0
    assert evidence["log_e"] >= evidence["log_threshold"] == round(math.log(4 / 0.01), 4), "alpha shared among errors and three quantiles"
    assert evidence["low"] > 1.0 and evidence["canary_errors"] > 0


async def test_a_canary_as_slow_as_stable_is_promoted_with_every_quantiles_evidence_journaled(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = latency_controller(plan, tmp_path, STABLE_SLOWER)
    assert await controller.run() == "completed"
    judged = [s.judge for s in samples(controller.journal.path) if s.judge]
    assert set(judged[-1]) == {"error_rate", "latency_p50", "latency_p95", "latency_p99"}
    assert {metric: judged[-1][metric]["bound_ms"] for metric in ("latency_p50", "latency_p95", "latency_p99")} == {
        "latency_p50": 50.0,
        "latency_p95": 100.0,
        "latency_p99": 200.0,
    }, "each at stable's bucket at or above its quantile"
    assert all(evidence["log_e"] < evidence["log_threshold"] for sample in judged for evidence in sample.values())
    requests = [j["latency_p99"]["canary_requests"] for j in judged if "latency_p99" in j]
    assert requests == sorted(requests) and requests[-1] > requests[0], "the latency evidence grows across the stages"


async def test_a_resumed_rollout_carries_the_latency_evidence_and_its_bound(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    whole = latency_controller(plan, tmp_path / "whole", STABLE_SLOWER)
    await whole.run()
    expected = {s.t: s.judge for s in samples(whole.journal.path)}

    first = latency_controller(plan, tmp_path / "resumed", STABLE_SLOWER, VirtualClock(stop_at=900))
    await stop_at(first, 900)
    resumed = latency_controller(plan, tmp_path / "resumed", STABLE_SLOWER)
    await resumed.run()
    after = [s for s in samples(resumed.journal.path) if s.t > 900 and s.judge]
    assert after and "latency_p99" in after[0].judge
    for sample in after[:5]:
        assert sample.judge == expected[sample.t], f"at t={sample.t} the resumed run's evidence differs from the whole run's"


def buckets(requests: float, slower: Sequence[float], bounds: Sequence[float] = BOUNDS_S) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets holding exactly `slower` of `requests` beyond each bound."""
    return tuple((bound, requests * (1 - share)) for bound, share in zip(bounds, slower, strict=True))


def test_the_latency_bound_is_chosen_once_from_stables_first_samples_which_it_does_not_test():
    """p99: stable's bound once it served 5,000 requests (50 expected beyond its p99), tested from the next sample on."""
    judge = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, metrics=("error_rate", "latency_p99", "cpu"))
    assert judge.metrics == ("error_rate", "latency_p99") and judge.alpha_each == 0.005

    def add(canary: float, stable: float, stable_slower: Sequence[float] = STABLE_SLOWER) -> None:
        assert judge.add(TrackCounts(canary, 1.0, buckets(canary, STABLE_SLOWER)), TrackCounts(stable, 1.0, buckets(stable, stable_slower)))

    add(200.0, 3000.0)
    assert judge.bound_s("latency_p99") is None and "latency_p99" not in judge.journaled()
    add(300.0, 3000.0)
    assert judge.bound_s("latency_p99") == 0.2, "99.4% of stable's requests within 200ms"
    assert "latency_p99" not in judge.journaled(), "the samples that chose the bound are not tested at it"
    add(1000.0, 19000.0)
    evidence = judge.journaled()["latency_p99"]
    assert (evidence["bound_ms"], evidence["canary_requests"], evidence["canary_errors"], evidence["stable_errors"]) == (200.0, 1000.0, 6, 114)
    assert evidence["log_threshold"] == round(math.log(2 / 0.01), 4)
    add(1000.0, 19000.0, stable_slower=(0.9, 0.5, 0.3, 0.1, 0.05, 0.0))
    assert judge.bound_s("latency_p99") == 0.2, "chosen once: a slower stable later moves no bound"
    assert judge.journaled()["error_rate"]["canary_requests"] == 2500.0, "the errors were tested from the first sample"


def test_a_histogram_without_the_bound_or_without_inf_is_no_latency_evidence():
    judge = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, metrics=("latency_p99",))
    stable = TrackCounts(19000.0, 0.0, buckets(19000.0, STABLE_SLOWER))
    judge.add(TrackCounts(1000.0, 0.0, buckets(1000.0, STABLE_SLOWER)), stable)
    other_layout = buckets(1000.0, (0.4, 0.04, 0.0), bounds=(0.05, 0.15, math.inf))
    no_inf = buckets(1000.0, STABLE_SLOWER)[:-1]
    for canary in (other_layout, no_inf, ()):
        assert judge.add(TrackCounts(1000.0, 0.0, canary), stable), "still evidence for the errors"
    assert "latency_p99" not in judge.journaled()
    judge.add(TrackCounts(1000.0, 0.0, buckets(1000.0, STABLE_SLOWER)), stable)
    assert judge.journaled()["latency_p99"]["canary_requests"] == 1000.0
    assert judge.journaled()["error_rate"]["canary_requests"] == 5000.0


def test_a_replay_of_the_journaled_counts_rebuilds_every_e_process_and_its_bound():
    rng = random.Random(5)
    live = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, metrics=("latency_p99", "latency_p50", "latency_p95"), stages=3)
    journaled = []
    for index in range(40):
        stage = index // 15
        canary, stable = track_counts(rng, 1000.0, 0.001, THREE_TIMES_SLOWER_PAST_200MS), track_counts(rng, 19000.0, 0.001)
        live.add(canary, stable, stage)
        journaled.append((stage, json.loads(json.dumps({"canary": canary.to_dict(), "stable": stable.to_dict()}))))
    replayed = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, metrics=("latency_p99", "latency_p50", "latency_p95"), stages=3)
    replayed.replay(journaled)
    assert set(live.journaled()) == {"error_rate", "latency_p99", "latency_p50", "latency_p95"}
    assert replayed.journaled() == live.journaled()
    assert replayed.regression() == live.regression() is not None


def test_three_times_a_slow_share_too_small_to_move_the_quantile_is_no_regression():
    """Stable's p99 past the 100ms bucket, so the bound is 1s, which 0.01% of stable's requests pass: a canary
    with three times that is clearly worse, yet beyond doubt under a tenth of the p99's 1% tail."""
    judge = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001, metrics=("latency_p99",))
    bounds = (0.1, 1.0, math.inf)
    for _ in range(200):
        judge.add(
            TrackCounts(100_000.0, 0.0, buckets(100_000.0, (0.02, 0.0003, 0.0), bounds)),
            TrackCounts(100_000.0, 0.0, buckets(100_000.0, (0.02, 0.0001, 0.0), bounds)),
        )
    assert judge.bound_s("latency_p99") == 1.0
    assert judge.evidence("latency_p99").rejects(judge.alpha_each)
    assert judge.regression() is None


def test_judges_given_the_same_counts_weigh_them_as_judges_given_their_own():
    # Replays share their samples' counts, and a judge keeps what it worked out with them (TrackCounts.derived) for
    # the next: two judges of one tolerance and one of another, fed the same objects, must end where judges fed
    # copies do, to the float (each key names all its value depends on: a tolerance left out of it fails here).
    metrics = ("error_rate", "latency_p99", "latency_p50", "latency_p95")
    rng, shape, slower = random.Random(5), LatencyShape(40, 120, 240), LatencyShape(45, 150, 330)
    shared = [SequentialJudge(0.01, tolerance, 0.0001, metrics, stages=3) for tolerance in (0.2, 0.2, 0.5)]
    alone = [SequentialJudge(0.01, tolerance, 0.0001, metrics, stages=3) for tolerance in (0.2, 0.2, 0.5)]
    for sample in range(150):
        stage = sample // 50
        canary = draw_track_counts(rng, 50.0 * (stage + 1), 10.0, 0.004, slower)
        stable = draw_track_counts(rng, 500.0, 10.0, 0.002, shape)
        for judge in shared:
            judge.add(canary, stable, stage)
        for judge in alone:
            judge.add(dataclasses.replace(canary), dataclasses.replace(stable), stage)
    assert canary.derived and stable.derived  # kept with the counts
    for together, by_itself in zip(shared, alone, strict=True):
        assert together.to_plain() == by_itself.to_plain()
        assert together.regression() == by_itself.regression()
    assert shared[0].to_plain() != shared[2].to_plain()
