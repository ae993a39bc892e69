"""The limits judged on counts in the controller: a window that fails where stable fails too, the canary no
worse, is the service's failure and pauses for a person (headless: rolled back after pause_timeout); a canary
clearly worse than stable is rolled back as before; a resumed rollout sums the window's counts it had on."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.derived import track_values
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state import Phase, read_state
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from console.samples import Sample, TrackCounts, TrackValues
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.target import SimTarget
from testbed import SAMPLES
from tests.conftest import stop_at

RPS = 2000.0
"""The service's requests per second, split between the tracks by the target's weight."""
COUNTED = ("error_rate", "success_rate", "throughput")
"""The values the double derives from its counts; the simulator's healthy scenario gives the others."""


def poisson(rng: random.Random, mean: float) -> int:
    """Arrivals of a unit-rate Poisson process within `mean`: exponential gaps, summed."""
    arrivals, elapsed = 0, rng.expovariate(1.0)
    while elapsed < mean:
        arrivals, elapsed = arrivals + 1, elapsed + rng.expovariate(1.0)
    return arrivals


class CountedService:
    """A metric source double until the simulator draws its own counts: each track serves its share of RPS at
    the target's weight, each request an error with its track's chance (Poisson counts, seeded by the clock
    reading, so a resumed run counts what the killed one would have), and its rates are derived from them."""

    def __init__(self, target: SimTarget, canary_error_rate: float, stable_error_rate: float, seed: int):
        self.target, self.seed = target, seed
        self.error_rates = {"canary": canary_error_rate, "stable": stable_error_rate}
        self.simulator = SimMetricSource(load_scenario("healthy"), target)

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        simulated = await self.simulator.sample(metrics, t, window_s)
        rng = random.Random(self.seed * 1_000_003 + round(t * 1000))
        weight = self.target.cluster.weight if self.target.cluster.new_deployed else 0
        shares = {"canary": weight / 100, "stable": 1 - weight / 100}
        counts = {}
        for track, share in shares.items():
            requests = RPS * share * window_s
            counts[track] = TrackCounts(requests, poisson(rng, requests * self.error_rates[track])) if requests > 0 else None
        derived = {track: track_values(c, window_s) if c else {} for track, c in counts.items()}
        values = dict(simulated.values)
        for metric in set(COUNTED) & set(metrics):
            values[metric] = TrackValues(derived["canary"].get(metric), derived["stable"].get(metric))
        canary_requests = counts["canary"].requests if counts["canary"] else None
        return Sample(values, canary_requests, simulated.errors, counts["canary"], counts["stable"])

    async def history(self, metric, start_t, end_t, step_s):  # noqa: ANN001, ANN201 (the protocol's)
        return []

    async def close(self) -> None:
        pass


def counted_controller(plan, state_dir, canary: float, stable: float, seed: int = 1, headless: bool = True, clock=None) -> Controller:
    files = RolloutFiles(state_dir, plan.name)
    target = SimTarget(plan.strategy, plan.image, "registry.example.com/app:previous", 10, files.sim_state)
    metrics = CountedService(target, canary, stable, seed)
    options = ControllerOptions(headless=headless, exit_when_finished=True)
    return Controller(plan, target, metrics, files.journal, clock or VirtualClock(), options, actor="tester@host")


def journaled(controller: Controller, kind: type[ev.Event]) -> list:
    return [event for event in read_events(controller.journal.path) if isinstance(event, kind)]


SERVICE_REASON = re.compile(r"success_rate 99\.9\d% \(.* not > 99\.95% — stable 99\.9\d% fails it too: the service, not the canary")
"""Both tracks at 0.07% errors, against the 50% stage's "success_rate > 99.95%" (at most 0.05%)."""


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_service_failing_on_both_tracks_pauses_for_a_person_and_headless_rolls_back_after_the_pause_timeout(tmp_path, seed):
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = counted_controller(plan, tmp_path, canary=0.0007, stable=0.0007, seed=seed)
    assert await controller.run() == Phase.ROLLED_BACK
    pause = journaled(controller, ev.Paused)[0]
    assert SERVICE_REASON.search(pause.reason), pause.reason
    assert pause.trigger == "success_rate" and pause.reason.startswith(plan.stages[2].name)
    assert [e.stage for e in journaled(controller, ev.StagePassed)] == [0, 1], "0.07% meets the first two stages' 99.9%"
    rollback = journaled(controller, ev.RollbackStarted)[0]
    assert rollback.t == pytest.approx(pause.t + plan.pause_timeout)
    assert rollback.reason.startswith("paused 15m with no decision: ") and "the service, not the canary" in rollback.reason
    assert rollback.trigger == "success_rate"


async def test_with_a_person_at_the_console_the_service_failing_waits_for_them(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = counted_controller(plan, tmp_path, canary=0.0007, stable=0.0007, headless=False)
    controller.subscribe(lambda event: controller.stop() if isinstance(event, ev.Paused) else None)
    assert await controller.run() == Phase.PAUSED
    assert SERVICE_REASON.search(controller.state.paused_reason), controller.state.paused_reason
    assert not journaled(controller, ev.RollbackStarted)


async def test_under_judge_threshold_the_windows_own_test_finds_the_service_failing_too(tmp_path):
    plan = dataclasses.replace(load_plan(SAMPLES / "canary.yaml"), judge="threshold")
    controller = counted_controller(plan, tmp_path, canary=0.0007, stable=0.0007)
    assert await controller.run() == Phase.ROLLED_BACK
    assert SERVICE_REASON.search(journaled(controller, ev.Paused)[0].reason)


@pytest.mark.parametrize(
    "judge, trigger, by_t",
    [
        ("sequential", "judge:error_rate", 600),  # the judge sees 0.3% against 0.07% before the first window ends
        ("threshold", "success_rate", 600),  # the first window: 99.7% not > 99.9%, while stable's 99.93% holds it
    ],
)
async def test_a_canary_clearly_worse_than_stable_is_rolled_back_as_before(tmp_path, judge, trigger, by_t):
    plan = dataclasses.replace(load_plan(SAMPLES / "canary.yaml"), judge=judge)
    controller = counted_controller(plan, tmp_path, canary=0.003, stable=0.0007)
    assert await controller.run() == Phase.ROLLED_BACK
    rollback = journaled(controller, ev.RollbackStarted)[0]
    assert (rollback.trigger, rollback.t <= by_t) == (trigger, True), rollback
    assert not journaled(controller, ev.Paused)
    assert "fails it too" not in rollback.reason


async def test_a_resumed_rollout_sums_the_window_counts_it_had_and_pauses_as_the_whole_run_did(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    whole = counted_controller(plan, tmp_path / "whole", canary=0.0007, stable=0.0007)
    await whole.run()
    expected = journaled(whole, ev.Paused)[0]

    first = counted_controller(plan, tmp_path / "resumed", canary=0.0007, stable=0.0007, clock=VirtualClock(stop_at=2000))
    await stop_at(first, 2000)  # in the 50% stage's window, which ends at 2700s
    window = read_state(first.journal.path).window
    assert window.track_counts("canary") == first.state.window.track_counts("canary")
    assert window.track_counts("canary").requests > 0 and window.track_counts("stable").requests > 0
    resumed = counted_controller(plan, tmp_path / "resumed", canary=0.0007, stable=0.0007)
    await resumed.run()
    pause = journaled(resumed, ev.Paused)[0]
    assert (pause.t, pause.reason) == (expected.t, expected.reason)
