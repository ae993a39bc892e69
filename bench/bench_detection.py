"""BENCH detection_latency_median_s and detection_latency_max_s: from a canary fault to rollback_started.

Ten rollouts of sample_configs/prometheus-demo.yaml (sim target, real clock, 1 s samples) against
one real Prometheus scraping the demo service every second. Each run starts at a random moment
in the scrape cycle, waits for healthy samples in stage 1, injects a 5% canary error rate at a
random moment in the sample cycle, and measures wall time from just before the fault request to
the rollback_started event's own timestamp. Between runs the fault is reset and the next run
starts only once the canary's 5xx rate is back to zero.

Where the time goes (1 s scrapes, 1 s samples, a 4 s rate window, 25 canary rps), about 7 s (median of
ten runs, 10-11 s at most; 1.6-3.8 s in the runs the trigger takes):
- the first 5xx: each canary request fails with probability 5%, so the first failure comes
  after 20 requests on average, 0.8 s at 25 canary rps; then the next scrape (0-1 s) and the
  controller's next sample (0-1 s, plus ~15 ms of queries);
- the evidence: the errors are judged on their counts, never on one sample's ratio. The critical
  error_rate > 1% fires only when the rate's confidence sequence (console/judge/rate_bound.py) lies wholly
  above 1%: a few 5xx among the ~100 requests of one rate window seldom show that. The sequential judge
  (analysis.judge, the default) weighs every sample's canary errors against stable's and rejects "no worse
  than ×1.2" once its e-value passes 1/alpha: seven runs of ten are its rollback ("errors 4.3% vs 0%:
  ×20 [×2.1–…] after 232 canary requests"). Either is the fault detected.
Before the judge worked on counts (one 5xx among ~100 requests read as "1%"), this was 1.8 s, and a
healthy canary's single error could roll it back.
The source counts a 5xx series that appears for the first time from zero: the first run, whose 5xx
series do not exist before the fault, needs no scrape more than the others.

    python bench/bench_detection.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.app.wiring import RunOptions, build_rollout  # noqa: E402
from console.journal import events as ev  # noqa: E402
from console.plan import load_plan  # noqa: E402
from console.plan.model import RolloutPlan  # noqa: E402
from console.rollout import close_rollout  # noqa: E402
from testbed.prometheus_server import (  # noqa: E402
    SCRAPE_INTERVAL_S,
    DemoStack,
    RolloutEvents,
    prometheus_missing,
    prometheus_required,
    running_demo_stack,
    wait_for_canary_errors_to_clear,
)

PLAN = Path(__file__).resolve().parent.parent / "sample_configs" / "prometheus-demo.yaml"
RUNS = 10
FAULT_ERROR_RATE = 0.05
FAULT_TRIGGERS = ("error_rate", "success_rate", "judge:error_rate")
"""The triggers a rollback for the fault may name: the demo's success rate is 1 - its error rate, so error_rate > 1%
and success_rate < 99% breach on the same sample, and either may be the one the rollback names; the sequential
judge's error test (canary against stable, on the counts) may reject first, as when the errors are a few
among few canary requests ("errors 4.3% vs 0%: ×20 [×2.1–…] after 232 canary requests")."""
HEALTHY_SAMPLES_BEFORE_FAULT = 2
SEED = 4
EVENT_TIMEOUT_S = 30.0
"""Longest wait for a healthy sample or for the rollback: both come within seconds."""


async def detection_latency_s(stack: DemoStack, plan: RolloutPlan, state_dir: Path, fault_delay_s: float) -> tuple[float, str]:
    """One rollout: healthy samples, then the fault, then seconds until rollback_started, and its trigger."""
    options = RunOptions(target="sim", metrics="prometheus", prometheus_url=stack.prometheus.url, state_dir=state_dir)
    rollout = build_rollout(plan, options, actor="bench")
    controller = rollout.controller
    events = RolloutEvents(controller)
    run = asyncio.create_task(controller.run())
    try:
        await events.wait_for_healthy_samples(HEALTHY_SAMPLES_BEFORE_FAULT, EVENT_TIMEOUT_S)
        await asyncio.sleep(fault_delay_s)
        injected = time.time()
        await asyncio.to_thread(stack.demo.fault, "canary", error_rate=FAULT_ERROR_RATE)
        rollback = await events.wait_for(lambda e: isinstance(e, ev.RollbackStarted), "rollback_started", EVENT_TIMEOUT_S, len(events.seen))
        if rollback.trigger not in FAULT_TRIGGERS:
            raise RuntimeError(f"rolled back on {rollback.trigger}, not the injected error rate: {rollback.reason}")
    finally:
        controller.stop()
        await run
        await close_rollout(rollout)
    return datetime.fromisoformat(rollback.ts).timestamp() - injected, rollback.trigger


def measure(stack: DemoStack, work_dir: Path) -> list[float]:
    plan = load_plan(PLAN)
    phases = random.Random(SEED)
    latencies = []
    for run in range(RUNS):
        # The wait for healthy rates ends just after a scrape: without a random start every rollout would
        # sample just after each scrape and hide the wait for the next sample.
        time.sleep(phases.uniform(0, SCRAPE_INTERVAL_S))
        fault_delay_s = phases.uniform(0, plan.interval)
        latency, trigger = asyncio.run(detection_latency_s(stack, plan, work_dir / f"run-{run + 1}", fault_delay_s))
        print(f"bench_detection: run {run + 1}: {latency:.2f} s ({trigger})", file=sys.stderr)
        latencies.append(latency)
        stack.demo.reset()
        wait_for_canary_errors_to_clear(stack.prometheus, plan.app)
    return latencies


def main() -> int:
    reason = prometheus_missing()
    if reason:
        print(f"bench_detection: skipped: {reason}", file=sys.stderr)
        return 1 if prometheus_required() else 0
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as work_dir:
        with running_demo_stack(Path(work_dir)) as stack:
            latencies = measure(stack, Path(work_dir))
    print(f"BENCH detection_latency_median_s {statistics.median(latencies):.2f} s")
    print(f"BENCH detection_latency_max_s {max(latencies):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
