"""The rollout's state as a fold over its journal: the controller, the console, resume and the report
all read it the same way."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from console.journal import events as ev
from console.journal.evidence import BandHistory, BandPoint, JudgeEvidence
from console.journal.window import WindowStats

HISTORY_LENGTH = 120
"""Samples kept per metric for sparklines; older ones live only in the journal."""


class Phase(StrEnum):
    """Where a rollout is. Its values are the names journals, reports and `brahma ls` have always used."""

    NEW = "new"
    PREFLIGHT = "preflight"
    RUNNING = "running"
    PAUSED = "paused"
    AWAITING_PROMOTE = "awaiting_promote"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"
    GATE_FAILED = "gate_failed"

    @property
    def before_first_change(self) -> bool:
        """Nothing has changed on the target yet: the journal is new, or the gate is still open."""
        return self in (Phase.NEW, Phase.PREFLIGHT)

    @property
    def active(self) -> bool:
        """A stage is under way: traffic is on the new version and samples are judged."""
        return self in (Phase.RUNNING, Phase.PAUSED, Phase.AWAITING_PROMOTE)

    @property
    def stable_serves_all(self) -> bool:
        """The new version serves nothing: it never did (nothing changed yet, the gate failed), or the rollback is verified."""
        return self.before_first_change or self in (Phase.GATE_FAILED, Phase.ROLLED_BACK)

    @property
    def finished(self) -> bool:
        """Nothing more happens unless someone undoes the release."""
        return self in (Phase.ROLLED_BACK, Phase.COMPLETED, Phase.GATE_FAILED)


@dataclass
class PreflightItemState:
    """One pre-flight item as the journal last told it."""

    name: str
    kind: str
    status: str
    required: bool
    output: str = ""
    duration_s: float = 0.0
    by: str = ""


@dataclass
class RolloutState:
    """Where a rollout is: what `fold` makes of its journal's events, the same in the controller and in every console."""

    rollout: str = ""
    app: str = ""
    image: str = ""
    strategy: str = ""
    phase: Phase = Phase.NEW
    stage: int = -1
    weight: int = 0
    stage_started_t: float = 0.0
    window_started_t: float = 0.0
    shifted_stage: int = -1
    """The last stage whose traffic share was confirmed in place (traffic_shifted)."""
    window: WindowStats = field(default_factory=WindowStats)
    window_held: bool = False
    """The stage's window held (stage_passed) and has not started again: the loop moves on from it."""
    streaks: dict[str, int] = field(default_factory=dict)
    last_sample_t: float | None = None
    last_t: float = 0.0
    last_ts: str = ""
    paused_reason: str = ""
    paused_trigger: str = ""
    paused_t: float = 0.0
    rollback_reason: str = ""
    rollback_trigger: str = ""
    rollback_t: float | None = None
    rollback_duration_s: float | None = None
    rollback_failure: ev.RollbackFailed | None = None
    """The open rollback's last journaled failure: the target does not read back stable serving everything."""
    target_before: dict[str, Any] | None = None
    target_changes: list[str] = field(default_factory=list)
    preflight: dict[str, PreflightItemState] = field(default_factory=dict)
    preflight_done: bool = False
    passed_stages: list[int] = field(default_factory=list)
    skipped_stages: list[int] = field(default_factory=list)
    """Stages a promote went past before their window held: cut short, or never started (promote-full)."""
    history: dict[str, deque[tuple[float, float | None, float | None]]] = field(default_factory=dict)
    last_verdict: str = ""
    last_verdicts: dict[str, str] = field(default_factory=dict)
    """How the last sample judged each metric a check judged (the sample event's verdicts)."""
    last_errors: list[str] = field(default_factory=list)
    judge: dict[str, JudgeEvidence] = field(default_factory=dict)
    """metric → the sequential judge's evidence so far, as the last sample that carried any journaled it."""
    judge_history: dict[str, BandHistory] = field(default_factory=dict)
    """metric → the judge's interval at each sample, over the whole rollout (thinned to HISTORY_LENGTH points)."""
    last_good_sample_t: float | None = None
    first_event: str = ""
    """The name of the journal's first event: a rollout's journal begins with rollout_started."""
    start: ev.RolloutStarted | None = None
    """The rollout_started event: the identity of the plan the journal belongs to."""
    plan_digest: str = ""
    """The digest of the plan the rollout runs under: rollout_started's, then that of each resume."""
    drift: list[str] = field(default_factory=list)
    """How the target differs from what the release left there, as last journaled."""
    drift_accepted: list[str] = field(default_factory=list)
    """The differences an operator's resume accepted."""
    consoles: list[tuple[str, bool]] = field(default_factory=list)
    """The consoles attached (actor, watch_only), as the journal says."""
    alone_since: ev.ConsoleDetached | None = None
    """The detach that left no console that may act, while none has attached since."""

    @property
    def acting_consoles(self) -> int:
        """Consoles attached that can decide a pause (not read-only, not a follower of the events)."""
        return sum(1 for _, watch_only in self.consoles if not watch_only)

    @property
    def started(self) -> bool:
        """The journal has begun: rollout_started is in it."""
        return self.phase != Phase.NEW

    @property
    def finished(self) -> bool:
        return self.phase.finished

    @property
    def drift_standing(self) -> list[str]:
        """Differences nobody accepted yet: no promotion re-applies the release over them."""
        return [change for change in self.drift if change not in self.drift_accepted]

    @property
    def active(self) -> bool:
        return self.phase.active

    def apply(self, event: ev.Event) -> RolloutState:
        self.last_t, self.last_ts = event.t, event.ts
        self.first_event = self.first_event or event.name
        handler = _HANDLERS.get(type(event))
        if handler:
            handler(self, event)
        if self.finished:  # who watches is journaled only while there is a pause to decide
            self.consoles, self.alone_since = [], None
        return self


def _rollout_started(state: RolloutState, event: ev.RolloutStarted) -> None:
    state.rollout, state.app, state.image, state.strategy = event.rollout, event.app, event.image, event.strategy
    state.phase = Phase.PREFLIGHT
    state.start, state.plan_digest = event, event.digest


def _preflight_result(state: RolloutState, event: ev.PreflightResult) -> None:
    state.preflight[event.item] = PreflightItemState(event.item, event.kind, event.status, event.required, event.output, event.duration_s, event.by)


def _preflight_passed(state: RolloutState, event: ev.PreflightPassed) -> None:
    state.preflight_done = True


def _preflight_failed(state: RolloutState, event: ev.PreflightFailed) -> None:
    state.phase = Phase.GATE_FAILED


def _target_prepared(state: RolloutState, event: ev.TargetPrepared) -> None:
    state.target_before, state.target_changes = event.before, event.changes


def _stage_started(state: RolloutState, event: ev.StageStarted) -> None:
    if state.active and event.stage > state.stage:  # a promote: the stages it went past, unless they held
        unpassed = range(state.stage, event.stage)
        state.skipped_stages += [stage for stage in unpassed if stage not in state.passed_stages]
    state.phase, state.stage, state.weight = Phase.RUNNING, event.stage, event.weight
    state.stage_started_t = state.window_started_t = event.t
    state.window, state.window_held = WindowStats(), False
    state.streaks = {}


def _traffic_shifted(state: RolloutState, event: ev.TrafficShifted) -> None:
    # A window observes the stage's traffic share, so it starts once that share is in place.
    state.shifted_stage, state.window_started_t = event.stage, event.t


def _sample(state: RolloutState, event: ev.SampleTaken) -> None:
    state.last_sample_t = event.t
    state.last_verdict, state.last_verdicts, state.last_errors = event.verdict, event.verdicts, event.errors
    state.streaks = dict(event.streaks)
    if state.phase == Phase.RUNNING:
        # The part of the sample's span inside the window: the first one after a (re)start measured traffic before it.
        covered = max(0.0, min(event.span_s or 0.0, event.t - state.window_started_t))
        state.window.add(event.metrics, conclusive=not event.inconclusive, covered_s=covered, counts=event.counts)
    if not event.inconclusive:
        state.last_good_sample_t = event.t
    for metric, values in event.metrics.items():
        series = state.history.setdefault(metric, deque(maxlen=HISTORY_LENGTH))
        series.append((event.t, values.get("canary"), values.get("stable")))
    for metric, entry in event.judge.items():
        if not isinstance(entry, dict):
            continue  # a shape this version does not know: no evidence, never a guess
        evidence = state.judge[metric] = JudgeEvidence.from_journal(entry)
        band = state.judge_history.setdefault(metric, BandHistory(HISTORY_LENGTH))
        band.add(BandPoint(event.t, evidence.ratio, evidence.low, evidence.high))


def _stage_passed(state: RolloutState, event: ev.StagePassed) -> None:
    state.passed_stages.append(event.stage)
    state.window_held = True


def _awaiting_promote(state: RolloutState, event: ev.AwaitingPromote) -> None:
    state.phase = Phase.AWAITING_PROMOTE


def _paused(state: RolloutState, event: ev.Paused) -> None:
    state.phase, state.paused_reason, state.paused_t = Phase.PAUSED, event.reason, event.t
    state.paused_trigger = event.trigger


def _resumed(state: RolloutState, event: ev.Resumed) -> None:
    # The window starts again: a stage passes only on a whole window that held.
    state.phase, state.paused_reason = Phase.RUNNING, ""
    state.drift_accepted = list(state.drift)
    state.window_started_t = event.t
    state.window, state.window_held = WindowStats(), False


def _supervision_resumed(state: RolloutState, event: ev.SupervisionResumed) -> None:
    state.plan_digest = event.digest or state.plan_digest
    if event.window_restarted:
        state.window_started_t = event.t
        state.window = WindowStats()


def _console_attached(state: RolloutState, event: ev.ConsoleAttached) -> None:
    state.consoles.append((event.actor, event.watch_only))
    if not event.watch_only:
        state.alone_since = None


def _console_detached(state: RolloutState, event: ev.ConsoleDetached) -> None:
    console = (event.actor, event.watch_only)
    if console in state.consoles:
        state.consoles.remove(console)
    if state.acting_consoles == 0 and not event.watch_only:
        state.alone_since = event


def _drift_detected(state: RolloutState, event: ev.DriftDetected) -> None:
    state.drift = list(event.changes)
    state.drift_accepted = [change for change in state.drift_accepted if change in state.drift]


def _drift_resolved(state: RolloutState, event: ev.DriftResolved) -> None:
    state.drift, state.drift_accepted = [], []


def _rollback_started(state: RolloutState, event: ev.RollbackStarted) -> None:
    state.phase, state.rollback_reason, state.rollback_trigger, state.rollback_t = (
        Phase.ROLLING_BACK,
        event.reason,
        event.trigger,
        event.t,
    )
    state.rollback_failure = None


def _rollback_failed(state: RolloutState, event: ev.RollbackFailed) -> None:
    state.rollback_failure = event


def _rolled_back(state: RolloutState, event: ev.RolledBack) -> None:
    state.phase, state.weight, state.rollback_duration_s = Phase.ROLLED_BACK, 0, event.duration_s
    state.rollback_failure = None


def _completed(state: RolloutState, event: ev.Completed) -> None:
    if state.active and state.stage not in state.passed_stages:  # promoted past the last window
        state.skipped_stages.append(state.stage)
    state.phase = Phase.COMPLETED


_HANDLERS = {
    ev.RolloutStarted: _rollout_started,
    ev.PreflightResult: _preflight_result,
    ev.PreflightPassed: _preflight_passed,
    ev.PreflightFailed: _preflight_failed,
    ev.TargetPrepared: _target_prepared,
    ev.StageStarted: _stage_started,
    ev.TrafficShifted: _traffic_shifted,
    ev.SampleTaken: _sample,
    ev.StagePassed: _stage_passed,
    ev.AwaitingPromote: _awaiting_promote,
    ev.Paused: _paused,
    ev.Resumed: _resumed,
    ev.SupervisionResumed: _supervision_resumed,
    ev.ConsoleAttached: _console_attached,
    ev.ConsoleDetached: _console_detached,
    ev.RollbackStarted: _rollback_started,
    ev.RollbackFailed: _rollback_failed,
    ev.RolledBack: _rolled_back,
    ev.Completed: _completed,
    ev.DriftDetected: _drift_detected,
    ev.DriftResolved: _drift_resolved,
}


def fold(events: Iterable[ev.Event]) -> RolloutState:
    state = RolloutState()
    for event in events:
        state.apply(event)
    return state


def read_state(journal: Path, say: Callable[[str], None] | None = None) -> RolloutState:
    """The state of the rollout whose journal this is; a new one's (phase `new`) when there is no journal yet.
    Read from its snapshot and the journal after it (snapshot.py); `say` tells why a snapshot was ignored
    (on stderr by default).

    JournalError when the journal cannot be read."""
    from console.journal.snapshot import resume, say_on_stderr  # it folds with this module's state

    return resume(journal, say or say_on_stderr).state if journal.exists() else RolloutState()
