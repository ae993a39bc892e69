"""The sequential judge on a real Prometheus scraping the demo service's random traffic every second.

The canary takes 5% of the demo's 4000 requests a second (200 against stable's 3800) and the rollout
runs on the real clock, its first stage at 5% for 40 s: each sample judges the counts Prometheus
scraped since the last. Stable fails 0.5% of its requests. The plan's absolute limits sit above what
either track serves (error_rate 5%), so only the judge can act on errors: a canary failing 3x as
often (1.5%) is rolled back by it before the first window ends, and an identical canary is promoted,
in as many runs as there are seeds, side by side on one Prometheus.

The first test below checks these numbers without Prometheus, on the judge alone over 100 seeds of
counts drawn as the demo draws them: the 3x canary is caught within the first window on every seed
(measured: after 7 samples median, 25 at most), and an identical canary is rolled back on at most 3
(measured: none; the judge's alpha bounds it at 1% a rollout).
"""

from __future__ import annotations

import asyncio
import random
import statistics
from pathlib import Path

from console.app.wiring import RunOptions, build_rollout
from console.controller.sequential import SequentialJudge
from console.journal import events as ev
from console.plan import load_plan
from console.rollout import close_rollout
from console.samples import TrackCounts
from console.sim.traffic import binomial, poisson
from testbed.prometheus_server import DemoServiceProcess, PrometheusServer, RolloutEvents, require_prometheus, running_demo_services

FIRST_WINDOW_S = 40
MONITORING_S = 10
CANARY_RPS, STABLE_RPS = 200, 3800
STABLE_ERROR_RATE = 0.005
TRAFFIC = ["--rps", str(STABLE_RPS), "--canary-rps", str(CANARY_RPS), "--error-rate", str(STABLE_ERROR_RATE)]
OFFLINE_SEEDS = range(100)
IDENTICAL_SEEDS = (11, 12, 13)
"""Three runs of an identical canary, each on its own demo service and seed."""
ROLLOUT_SLACK_S = 30.0
"""Beyond the plan's own windows: the first sample, samples later than their second, a slow machine."""

PLAN = """\
name: {app}-judged
app: {app}
image: registry.example.com/{app}:2.5.0
strategy: canary
target: sim
interval: 1s
pause_timeout: 1m
stages:
  - weight: 5
    observe: {first_window}s
    criteria: {{error_rate: "< 5%", latency_p99: "< 1000ms"}}
  - name: monitoring
    weight: 100
    observe: {monitoring}s
    criteria: {{error_rate: "< 5%", latency_p99: "< 1000ms"}}
triggers:
  critical: {{error_rate: "> 5%", success_rate: null}}
  warning: {{error_rate: null}}
analysis:
  min_requests: 200                 # the canary's ~800 requests in a 4 s window
metrics:
  provider: prometheus
  prometheus: {{timeout: 2s}}
"""


def plan_for(app: str, directory: Path):
    path = directory / f"{app}.yaml"
    path.write_text(PLAN.format(app=app, first_window=FIRST_WINDOW_S, monitoring=MONITORING_S))
    return load_plan(path)


def samples_to_rollback(seed: int, canary_error_rate: float, samples: int) -> int | None:
    """The judge with the plan's defaults on 1 s samples drawn as the demo draws its traffic: the sample that
    rolls back, or None when none of `samples` does."""
    rng = random.Random(seed)
    judge = SequentialJudge(alpha=0.01, tolerance=0.2, floor=0.0001)
    for sample in range(1, samples + 1):
        canary, stable = poisson(rng, CANARY_RPS), poisson(rng, STABLE_RPS)
        judge.add(TrackCounts(canary, binomial(rng, canary, canary_error_rate)), TrackCounts(stable, binomial(rng, stable, STABLE_ERROR_RATE)))
        if judge.regression() is not None:
            return sample
    return None


def test_the_plans_numbers_catch_a_3x_canary_within_the_window_and_spare_an_identical_one() -> None:
    caught = [samples_to_rollback(seed, 3 * STABLE_ERROR_RATE, FIRST_WINDOW_S) for seed in OFFLINE_SEEDS]
    assert None not in caught, "every seed caught within the first window"
    assert statistics.median(caught) <= FIRST_WINDOW_S / 4
    spared = [samples_to_rollback(seed, STABLE_ERROR_RATE, FIRST_WINDOW_S + MONITORING_S) for seed in OFFLINE_SEEDS]
    assert sum(sample is not None for sample in spared) <= 3


async def roll_out(app: str, prometheus: PrometheusServer, directory: Path) -> list[ev.Event]:
    """One headless rollout of the app's plan on Prometheus' numbers, to its end; its events."""
    plan = plan_for(app, directory)
    options = RunOptions(target="sim", metrics="prometheus", prometheus_url=prometheus.url, state_dir=directory / app)
    rollout = build_rollout(plan, options, actor="tester@host")
    events = RolloutEvents(rollout.controller)
    total_s = sum(stage.observe for stage in plan.stages) + ROLLOUT_SLACK_S
    try:
        async with asyncio.timeout(total_s):
            await rollout.controller.run()
    finally:
        rollout.controller.stop()
        await close_rollout(rollout)
    return events.seen


async def test_a_3x_error_regression_at_5_percent_is_rolled_back_by_the_judge_before_the_first_window_ends(tmp_path: Path) -> None:
    require_prometheus()
    demo = DemoServiceProcess("checkout", extra_args=[*TRAFFIC, "--canary-error-rate", str(3 * STABLE_ERROR_RATE), "--seed", "7"])
    with running_demo_services(tmp_path, [demo]) as prometheus:
        events = await roll_out("checkout", prometheus, tmp_path)

    stage = next(event for event in events if isinstance(event, ev.StageStarted))
    rollback = next(event for event in events if isinstance(event, ev.RollbackStarted))
    assert stage.weight == 5
    assert rollback.trigger == "judge:error_rate", rollback.reason
    assert rollback.t < stage.t + FIRST_WINDOW_S, "before the first window ends"
    assert not any(isinstance(event, ev.StagePassed | ev.Paused) for event in events)
    judged = [event for event in events if isinstance(event, ev.SampleTaken) and event.judge]
    evidence = judged[-1].judge["error_rate"]
    assert evidence["log_e"] >= evidence["log_threshold"] and evidence["ratio"] > 1.2, evidence
    # Every sample before it was judged on its own counts: no limit breached, no sample without them.
    samples = [event for event in events if isinstance(event, ev.SampleTaken)]
    assert all(event.counts.get("canary") and event.counts.get("stable") for event in samples)
    assert all(event.metrics["error_rate"]["canary"] < 0.05 for event in samples)
    assert isinstance(events[-1], ev.RolledBack)


async def test_an_identical_canary_is_promoted_in_every_run_with_no_rollback(tmp_path: Path) -> None:
    require_prometheus()
    demos = [DemoServiceProcess(f"checkout-{seed}", extra_args=[*TRAFFIC, "--seed", str(seed)]) for seed in IDENTICAL_SEEDS]
    with running_demo_services(tmp_path, demos) as prometheus:
        runs = await asyncio.gather(*(roll_out(demo.app, prometheus, tmp_path) for demo in demos))

    for seed, events in zip(IDENTICAL_SEEDS, runs, strict=True):
        names = [type(event).__name__ for event in events]
        assert not any(isinstance(event, ev.RollbackStarted | ev.Paused) for event in events), (seed, names)
        assert isinstance(events[-1], ev.Completed), (seed, names)
        judged = [event for event in events if isinstance(event, ev.SampleTaken) and event.judge]
        assert len(judged) >= FIRST_WINDOW_S - 5, f"seed {seed}: the judge weighed nearly every sample"
