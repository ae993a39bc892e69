"""A plan replayed over history: the same controller and judge as a release, in virtual time, reading a
History through PrometheusSource and acting on a recording target.

What a backtest leaves out, and why (Argo Rollouts' and Flagger's users expect an analysis replay, not
a release): no pre-flight check runs (they would check today's world, not the one replayed), no flag is
touched, no webhook is sent, and no person is asked: a stage that waits for a promote is promoted at
once by GIVEN_BY (journaled as that command), and a pre-flight sign-off is taken as given. A pause is
not decided by anybody either: it rolls back after pause_timeout, as in a headless run.

The target is the simulator's, in memory and with no state file: it records what the controller asked
of it (`Replay.target_changes`), and no cluster, flag store or state dir of a real release is opened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.backtest.history import History
from console.backtest.times import format_wall
from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.journal import events as ev
from console.journal.state import Phase, RolloutState
from console.journal.window import WindowStats
from console.metrics.base import MetricSource
from console.metrics.prometheus import PrometheusSource, Selector
from console.plan.model import RolloutPlan
from console.preflight import Gate, PreflightContext
from console.samples import TRACKS
from console.sim.target import SimTarget, previous_image

if TYPE_CHECKING:
    from console.backtest.shared import SharedSamples

GIVEN_BY = "backtest (taken as given)"
"""Who promotes a stage that waits for a person, and signs off the gate, in a backtest."""
NOT_FINISHED = "not finished"
LOOKBACK_S = 300.0
OUTCOMES = {Phase.COMPLETED: "promoted", Phase.ROLLED_BACK: "rolled back"}


class HistoryClock(VirtualClock):
    """Virtual time that ends where the history does: a wait past `end_t` stops the controller instead."""

    def __init__(self, end_t: float) -> None:
        super().__init__()
        self.end_t = end_t
        self.on_end: Callable[[], None] = lambda: None

    async def wait_until(self, t: float, wake: asyncio.Event) -> None:
        if t > self.end_t + 1e-9:
            self.on_end()
            await asyncio.sleep(0)
            return
        await super().wait_until(t, wake)


@dataclass
class Replay:
    """How a replay ended: `outcome` (promoted, rolled back, not finished) and the phase the controller stopped in
    (the application's exit code, as `brahma run --headless` gives it, is console/app/backtest.py's
    replay_exit_code), its events in order, where the history ended on the rollout clock, and what the
    recording target was asked to do."""

    outcome: str
    phase: Phase
    events: list[ev.Event]
    history_end_t: float
    target_changes: list[dict[str, Any]]
    journal: Path | None = None
    """The journal, when the caller gave the state dir (else none was kept)."""
    judged_windows: dict[int, WindowStats] = field(default_factory=dict)
    """Each stage's window where it was judged (note_judged_window), as the controller's state held it."""

    @property
    def finished(self) -> bool:
        return self.outcome != NOT_FINISHED


def note_judged_window(windows: dict[int, WindowStats], state: RolloutState, event: ev.Event) -> None:
    """Once `event` is folded into `state`: the window a stage was judged on, at its stage_passed, or at its first
    pause or rollback (none of the three changes the stage or its window, so the window is the one judged)."""
    if isinstance(event, ev.StagePassed):
        windows[event.stage] = state.window
    elif isinstance(event, ev.Paused | ev.RollbackStarted) and state.stage not in windows:
        windows[state.stage] = state.window


def replay_span(plan: RolloutPlan) -> float:
    """The longest a replay of `plan` can run on its clock: every stage's window, one pause timing out
    (headless, a pause rolls back after pause_timeout; nobody resumes it), and Prometheus' 5 minute lookback
    beyond, so the last raw sample read (up to a scrape interval before the span's end) is well inside."""
    return plan.planned_duration + plan.pause_timeout + LOOKBACK_S


def source_for(
    plan: RolloutPlan,
    url_override: str | None = None,
    selectors: Mapping[str, Selector] | None = None,
    clients: Mapping[str, Any] | None = None,
    wall_clock: Callable[[], float] = time.time,
    clock_to_wall: Callable[[float], float] | None = None,
    scrape_interval_s: float | None = None,
) -> PrometheusSource:
    """The plan's Prometheus source (PrometheusConfigError for credentials this shell does not give)."""
    return PrometheusSource(
        plan.app,
        plan.metrics.prometheus,
        plan.metrics.queries,
        url_override=url_override,
        clock_to_wall=clock_to_wall,
        counts=plan.metrics.counts,
        scrape_interval_s=scrape_interval_s,
        wall_clock=wall_clock,
        selectors=selectors,
        clients=clients,
    )


def history_source(
    plan: RolloutPlan,
    history: History,
    selectors: Mapping[str, Selector] | None,
    canary_lag_s: float,
    wall_clock: Callable[[], float],
    clock_to_wall: Callable[[float], float] | None = None,
) -> PrometheusSource:
    """The plan's source reading `history` (the canary `canary_lag_s` earlier), each sample evaluated at wall_clock()."""
    clients = {"stable": history, "canary": history.shifted(-canary_lag_s) if canary_lag_s else history}
    # The server's client answers what the grid does not hold; this source's own is never asked.
    return source_for(
        plan,
        selectors=selectors,
        clients=clients,
        wall_clock=wall_clock,
        clock_to_wall=clock_to_wall,
        scrape_interval_s=history.scrape_interval_s,
    )


@dataclass
class FetchedHistory:
    """A History with what replays need beside it: where the server's data ends, and the server's client."""

    history: History
    data_end_wall: float | None
    """The newest sample of either track's request counters in the span fetched; None when there is none."""
    fetched_to_wall: float
    source: PrometheusSource
    """The source the history was fetched with (its client answers what is off the grid); closed by close()."""
    data_start_wall: float | None = None
    """The first step of the span fetched at which either track's request counters had data."""

    def problem_at_start(self, start_wall: float, interval_s: float, option: str, nothing_to: str) -> str | None:
        """Why there is nothing to replay from `start_wall` (given as `option`): no request counters in the span,
        or none until after it; None when the history has them from the start."""
        counters = "the request counters of either track"
        if self.data_start_wall is None or self.data_end_wall is None:
            return f"Prometheus has no data for {counters} from {format_wall(start_wall)} on: nothing to {nothing_to} (check {option}, the labels or the selectors)"
        if self.data_start_wall > start_wall + interval_s:
            return f"the history of {counters} begins at {format_wall(self.data_start_wall)}, after {option} {format_wall(start_wall)}: choose a later {option}"
        return None

    async def close(self) -> None:
        await self.source.close()


async def fetch_history(
    plan: RolloutPlan,
    start_wall: float,
    end_wall: float,
    url_override: str | None = None,
    selectors: Mapping[str, Selector] | None = None,
    now: Callable[[], float] = time.time,
) -> FetchedHistory:
    """The history replays of `plan` starting from start_wall (or later, on its grid) up to end_wall read:
    every query a sample makes, as one range query each (chunked), on the grid start_wall + k × interval,
    from a rate window before start_wall (a first sample reads the counters that far back) to end_wall
    (at most now). Raises requests' ConnectionError when the server cannot be reached."""
    source = source_for(plan, url_override, selectors)
    try:
        queries = await source.sample_queries(plan.metric_names, plan.interval)
        lead_s = await source.rate_window_s(plan.interval)
        history = History(source.server, start_wall, plan.interval, await source.scrape_interval())
        # When the data ends: the newest raw sample of each track's request counters, by step.
        ends = [f"max(timestamp({queries[track][0]}))" for track in TRACKS]
        fetched_to = min(end_wall, now())
        span = [*dict.fromkeys(query for track in TRACKS for query in queries[track]), *ends]
        await asyncio.to_thread(history.fetch, span, start_wall - lead_s, fetched_to)
        spans = [span for query in ends if (span := history.data_span(query)) is not None]
        data_start = min((start for start, _ in spans), default=None)
        return FetchedHistory(history, max((end for _, end in spans), default=None), fetched_to, source, data_start)
    except BaseException:
        await source.close()
        raise


async def replay(
    plan: RolloutPlan,
    start_wall: float,
    fetched: FetchedHistory,
    selectors: Mapping[str, Selector] | None = None,
    canary_lag_s: float = 0.0,
    listeners: Sequence[Callable[[ev.Event], None]] = (),
    state_dir: Path | None = None,
    actor: str = "brahma backtest",
    shared: SharedSamples | None = None,
    journal_evidence: bool = True,
) -> Replay:
    """Replay `plan` as if its first stage had started at `start_wall` (epoch seconds, on the history's grid).

    The controller and judge of a release run in virtual time: each sample at start_wall + t is
    PrometheusSource's, evaluated at that instant against the fetched history (`selectors` in place of
    the track labels, as fetched). `canary_lag_s` reads the canary that many seconds before the stable
    (calibrate's A/A: with the canary selector the stable's, canary = stable's series at t − interval).
    `listeners` see every event as it happens (a printer). The journal goes to `state_dir` (never a release's),
    or, without one, nowhere: the controller keeps a ReplayJournal. The replay stops where the history ends
    (its data, or what was fetched, or now): a rollout not decided by then is `not finished`. With `shared`
    (built for the same plan, history, selectors and lag), the samples other replays' sweep took at the same
    instants are used where they are provably the ones this replay's own source would take (shared.py). Without
    `journal_evidence`, the sample events do not carry the judge's evidence (ControllerOptions.journal_evidence).
    """
    history = fetched.history
    data_end = fetched.data_end_wall if fetched.data_end_wall is not None else start_wall
    history_end_t = min(data_end, fetched.fetched_to_wall) - start_wall
    clock = HistoryClock(history_end_t)
    source: MetricSource = history_source(plan, history, selectors, canary_lag_s, lambda: start_wall + clock.now(), lambda t: start_wall + t)
    if shared is not None:
        source = shared.source_for_replay(source, lambda: start_wall + clock.now())
    target = SimTarget(plan.strategy, plan.image, previous_image(plan.image), plan.target.replicas or 10)
    # Without a state dir, nobody reads the journal afterwards: the controller keeps none (ReplayJournal).
    options = ControllerOptions(
        headless=True, manual=False, exit_when_finished=True, target_kind=ev.BACKTEST_TARGET, replay=state_dir is None, journal_evidence=journal_evidence
    )
    options.gate = Gate((), PreflightContext(plan))
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    journal = (state_dir or Path(".")) / f"{plan.name}.jsonl"
    events: list[ev.Event] = []
    judged: dict[int, WindowStats] = {}
    try:
        controller = Controller(plan, target, source, journal, clock, options, actor=actor, wall_clock=VirtualClock())
        clock.on_end = controller.stop

        def record(event: ev.Event) -> None:
            events.append(event)
            note_judged_window(judged, controller.state, event)
            if isinstance(event, ev.AwaitingPromote):
                controller.submit("promote", GIVEN_BY)

        controller.subscribe(record)
        for listener in listeners:
            controller.subscribe(listener)
        phase = await controller.run()
        controller.journal.close()
    finally:
        await source.close()
    # A controller that stopped short of an end stopped where the history did.
    outcome = OUTCOMES.get(phase, NOT_FINISHED)
    return Replay(outcome, phase, events, history_end_t, list(target.cluster.changes), journal if state_dir is not None else None, judged)
