"""The A/A replays of a calibration: one fetch of the history, shared by every replay, spread over processes.

The history is read once, before any replay: every query a sample makes (each track's counters: requests by
code, 5xx errors, the latency buckets; and the plan's own queries), as one range query each over the whole
range (from a rate window before the first start to the last replay's end), on the plan's interval and
aligned to the starts, in chunks of under Prometheus' 11,000 points, eight asked at once
(console/backtest/history.py). Both tracks read stable's series, so the canary's queries are the stable's
and are fetched once: a week at 10 s is 4 queries, each in 6 chunks, 24 range queries. Every replay then answers its samples from that
history in memory, and none asks the server anything the history holds.

The replays run the release's own controller and judge (console/backtest/replay.py), in virtual time, one
start every `every_s`. They are independent of one another, so they are dealt out to worker processes forked
after the fetch, which inherit the history as it is in memory (nothing is sent to them but the start times)
and send back each replay's outcome (calibrate/outcomes.py), not its events. Each worker is dealt runs of
consecutive starts (SWEEP_START_IN_REPLAYS), because its replays share their samples (console/backtest/shared.py):
the worker sweeps the grid once with one PrometheusSource, keeping each instant's sample and counter tallies
while a replay can still ask for them, and a replay takes the sweep's samples from the first sample after which
its own tallies are the sweep's (its first minute, while its rate window fills) for as long as it samples at
the sweep's next instant. So a replay's samples cost about one sweep sample per 5 minutes of starts, not 630, and a shared sample is judged
once per stage and written out once, for every replay that takes it (Sample.derived).
The replays keep no journal (journal.ReplayJournal): nobody reads it afterwards, and a replay's target records only;
their sample events go without the judge's evidence, which only a console, a runbook or a timeline would show.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from console.backtest.replay import FetchedHistory, fetch_history, replay, replay_span
from console.backtest.selectors import Selector, parse_selector
from console.backtest.shared import SharedSamples
from console.backtest.times import format_wall
from console.calibrate.outcomes import Item, ReplayOutcome, outcome_of, plan_items
from console.calibrate.summary import DEFAULT_TARGET, Calibration, summarize
from console.metrics.prometheus import label_matchers
from console.plan.model import RolloutPlan


class HistoryProblem(ValueError):
    """Nothing to calibrate on: no request counters in the range, or none until after its start."""


ReplayOne = Callable[[float], Awaitable[ReplayOutcome]]
"""One replay, from its start (wall time), to its outcome."""
FETCH_TIMEOUT_S = 300.0
"""A range query of the history's fetch may take this long: a chunk of 11,000 steps of the latency histogram's
series is tens of megabytes, and eight are asked at once (a plan's timeout is for one live sample's queries)."""
SWEEP_START_IN_REPLAYS = 3.5
"""What a worker's sweep of shared samples (backtest/shared.py) costs when it starts again at a run of starts that
does not follow its last one, in replays: a replay's span of samples, ~1.4 ms each, against ~0.25 s a replay.
Runs of √(2 × 3.5 × starts / workers) consecutive starts weigh those restarts against the workers' finishing
together (the last run handed out keeps one worker busy alone): 84 of a week's 2,016 starts on two workers."""
MIN_STARTS_PER_TASK = 4


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_times(from_wall: float, to_wall: float, every_s: float) -> list[float]:
    """from_wall, from_wall + every_s, ... up to to_wall (excluded)."""
    count = max(0, int((to_wall - from_wall) / every_s - 1e-9) + 1) if to_wall > from_wall else 0
    return [from_wall + index * every_s for index in range(count)]


@dataclass(frozen=True)
class Population:
    """Where both tracks come from: the selectors each track reads, and how far back the canary is read."""

    selectors: dict[str, Selector]
    canary_lag_s: float
    described: str


def a_a_population(plan: RolloutPlan, canary_selector: Selector | None = None, stable_selector: Selector | None = None) -> Population:
    """Stable against itself one interval earlier; or, with a canary selector, stable against another label set of
    the same population (two pods of stable), read at the same instants."""
    stable = stable_selector or parse_selector(label_matchers(plan.app, "stable", plan.metrics.prometheus.labels))
    if canary_selector is None:
        return Population({"canary": stable, "stable": stable}, plan.interval, f"stable {{{stable.matchers}}} against itself {plan.interval:g}s earlier")
    return Population({"canary": canary_selector, "stable": stable}, 0.0, f"{{{canary_selector.matchers}}} against {{{stable.matchers}}}")


_WORK: tuple[ReplayOne, Sequence[float]] | None = None
"""What the forked workers replay: set before the pool forks, so they inherit it rather than unpickle it."""


def _replay_starts(indexes: Sequence[int]) -> list[ReplayOutcome]:
    replay_one, starts = _WORK

    async def all_of_them() -> list[ReplayOutcome]:
        return [await replay_one(starts[index]) for index in indexes]

    return asyncio.run(all_of_them())


def run_replays(starts: Sequence[float], replay_one: ReplayOne, workers: int) -> list[ReplayOutcome]:
    """Every start's outcome, in the order of `starts`: in this process, or over `workers` forked ones."""
    global _WORK
    per_task = max(MIN_STARTS_PER_TASK, round(math.sqrt(2 * SWEEP_START_IN_REPLAYS * len(starts) / max(1, workers))))
    tasks = [list(range(low, min(low + per_task, len(starts)))) for low in range(0, len(starts), per_task)]
    _WORK = (replay_one, starts)
    try:
        if workers <= 1 or len(tasks) <= 1:
            return _replay_starts(range(len(starts)))
        with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
            return [outcome for outcomes in pool.imap(_replay_starts, tasks) for outcome in outcomes]
    finally:
        _WORK = None


def history_replay(plan: RolloutPlan, fetched: FetchedHistory, population: Population, items: Sequence[Item]) -> ReplayOne:
    """One A/A replay on the fetched history, by the release's controller and judge (console/backtest/replay.py)."""

    shared = SharedSamples(plan, fetched, population.selectors, population.canary_lag_s)

    async def replay_one(start_wall: float) -> ReplayOutcome:
        began = time.process_time()
        shared.forget_before(start_wall)
        result = await replay(
            plan,
            start_wall,
            fetched,
            population.selectors,
            canary_lag_s=population.canary_lag_s,
            actor="brahma calibrate",
            shared=shared,
            journal_evidence=False,
        )
        return outcome_of(plan, start_wall, result.outcome, result.events, items, time.process_time() - began, result.judged_windows)

    return replay_one


def calibrate(
    plan: RolloutPlan,
    from_wall: float,
    to_wall: float,
    every_s: float,
    population: Population,
    url_override: str | None = None,
    target: float = DEFAULT_TARGET,
    workers: int | None = None,
    now: Callable[[], float] = time.time,
) -> Calibration:
    """The plan replayed A/A at every start from from_wall (every every_s, before to_wall) over one fetch of the
    history, and the summary. Raises requests' ConnectionError when the server cannot be reached."""
    began_wall, began_cpu = time.perf_counter(), time.process_time()
    starts = start_times(from_wall, to_wall, every_s)
    items = plan_items(plan)
    spec = plan.metrics.prometheus
    patient = replace(plan, metrics=replace(plan.metrics, prometheus=replace(spec, timeout=max(spec.timeout, FETCH_TIMEOUT_S))))
    end_wall = starts[-1] + replay_span(plan) if starts else to_wall
    fetched = asyncio.run(fetch_history(patient, from_wall, end_wall, url_override, population.selectors, now))
    fetch_s = time.perf_counter() - began_wall
    problem = fetched.problem_at_start(from_wall, plan.interval, "--from", "calibrate on")
    if problem is not None:
        asyncio.run(fetched.close())
        raise HistoryProblem(problem)
    # The fetch's own client is done with: closed before the workers fork, so none of them shares its connections
    # (a replay that must ask the server opens its own).
    asyncio.run(fetched.close())
    workers = workers or default_workers()
    outcomes = run_replays(starts, history_replay(plan, fetched, population, items), workers)
    replays_cpu = sum(outcome.cpu_s for outcome in outcomes)
    cost = {
        "wall_s": round(time.perf_counter() - began_wall, 3),
        "fetch_wall_s": round(fetch_s, 3),
        "workers": workers,
        "range_queries": fetched.history.range_queries,
        "replay_cpu_s_mean": round(replays_cpu / len(outcomes), 4) if outcomes else 0.0,
        "parent_cpu_s": round(time.process_time() - began_cpu, 3),
        "history": f"{format_wall(fetched.history.origin_wall)} .. {format_wall(fetched.fetched_to_wall)}",
    }
    return summarize(plan, items, outcomes, from_wall, to_wall, every_s, target, population.described, cost)
