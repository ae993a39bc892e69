"""The rollout controller: a reconcile loop of small idempotent steps over the journal's state.

It talks out only through events (journaled first, then handed to listeners) and in only
through commands. Every step can run again after a crash without repeating a traffic shift:
the intent (a stage started) is journaled before the target is asked, and every target call
is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from console.controller.analysis import COUNTED_RATES, Confidence, Decision, SampleJudgement, decide, judge_sample, judge_window
from console.controller.clock import Clock, RealClock, VirtualClock
from console.controller.identity import check_resume, plan_digest, plan_identity
from console.controller.rollback_pacing import RollbackPacing
from console.controller.sequential import SequentialJudge
from console.journal import events as ev
from console.journal.journal import Journal, ReplayJournal, read_events
from console.journal.snapshot import RecentEvents, Resumed, SnapshotWriter, resume
from console.journal.state import Phase, RolloutState
from console.metrics.base import MetricSource
from console.plan.model import FlagStep, RolloutPlan, Stage
from console.preflight.context import PreflightContext
from console.preflight.gate import CheckResult, Gate, cannot_open
from console.samples import Sample, TrackValues
from console.strict_json import NotJSON, finite_or_none
from console.targets.base import RollbackReadBack, RolloutFailed, Target

COMMANDS = ("promote", "promote-full", "pause", "resume", "rollback", "sign-off")
SHIFT_FIRST_RETRY_S = 1.0
SHIFT_MAX_RETRY_S = 30.0
"""A failed traffic shift is tried again after 1s, 2s, 4s... at most 30s apart, on the rollout's clock."""
ERROR_REPEATS_EVERY_S = 60.0
"""While the same error goes on, how often the journal is told how many more times it happened."""
DRIFT_CHECK_TIMEOUT_S = 2.0
"""The longest a drift check may hold up a sample or a rollback (it is a few reads)."""
SAMPLE_SPAN_LIMIT = 2
"""A sample landing late measures at most this many intervals: a longer average would hide a spike the
triggers must see, so a longer gap is a hole in the window's coverage."""


class FlagChangeRecord(Protocol):
    flag: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    actor: str
    reason: str


FlagHook = Callable[[str, str], Awaitable[list[FlagChangeRecord]]]
"""Given (actor, reason), switch flags and return what changed (rollback's flag step)."""
FlagStepHook = Callable[[FlagStep, str], Awaitable[list[FlagChangeRecord]]]


@dataclass(frozen=True)
class RollbackUnverified:
    """A rollback attempt the target did not read back as done (the fields of rollback_failed)."""

    reason: str
    detail: str


@dataclass
class _ErrorRun:
    """The same error again and again: journaled once, then counted."""

    where: str
    message: str
    reported_t: float
    repeats: int = 0
    """Since the last line the journal has about it."""


@dataclass
class PendingCommand:
    """An operator's command waiting for the controller's next step."""

    name: str
    actor: str
    argument: str = ""


@dataclass
class ControllerOptions:
    """How a controller runs beyond its plan: attended or not, manual, its flag hooks and its gate."""

    headless: bool = True
    """No human is watching: a pause waits pause_timeout, then rolls back."""
    manual: bool = False
    """Every stage waits for a promote after its window held."""
    exit_when_finished: bool = True
    """False for the console: after completion the loop stays to take an undo."""
    flag_hooks: list[FlagHook] = field(default_factory=list)
    """Run by every rollback: switch the plan's disable_on_rollback flags off."""
    flag_setup: FlagHook | None = None
    """Run before the gate: the plan's flags created disabled (deploy dark)."""
    flag_step: FlagStepHook | None = None
    """Applies an enablement step (users, percentage, on) when its stage starts."""
    gate: Gate | None = None
    """The pre-flight gate with this run's context (flag file, state dir, cluster); the plan's alone when None."""
    target_kind: str | None = None
    """The target this run uses, when the command line chose another than the plan's (the journal records it)."""
    consoles_attach: bool = False
    """People watch from consoles attached over the socket (the journal says who: attached, detached).
    While none that may act is attached, a pause times out as in a headless run: pause_timeout from
    when the last console left, or from the pause if later."""
    replay: bool = False
    """A replay of history on a recording target (backtest, calibrate): a new rollout whose journal is kept by
    nobody (journal.ReplayJournal), since nothing it does needs writing ahead, and nobody reads it afterwards."""
    journal_evidence: bool = True
    """The sequential judge's evidence (ratio, interval, e-value) in each sample event, for the console, the runbook
    and a backtest's timeline. A calibration's replays, whose events nobody shows, go without: about a fifth of their
    CPU. The judge decides on its own tests (regression, held), never on what the events carry."""


class Controller:
    def __init__(
        self,
        plan: RolloutPlan,
        target: Target,
        metrics: MetricSource,
        journal_path: str | Path,
        clock: Clock | None = None,
        options: ControllerOptions | None = None,
        actor: str = "brahma",
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Clock | None = None,
    ):
        self.plan, self.target, self.metrics = plan, target, metrics
        self.clock = clock or VirtualClock()
        self.options = options or ControllerOptions()
        self.manual = self.options.manual or plan.manual
        self.actor = actor
        self._monotonic = monotonic
        """Brahma's own time, for the rollback's duration (replaceable so tests read a fixed figure)."""
        self.wall_clock = wall_clock or RealClock()
        """Wall time for waits the world outside sets the pace of (a failing rollback's retries), which the
        rollout's clock, virtual under --fast, must not rush; tests pass a VirtualClock."""
        path = Path(journal_path)
        fresh = self.options.replay or not path.exists()  # a replay's journal is kept by nobody: it starts anew
        resumed = Resumed(RolloutState(), 0, RecentEvents()) if fresh else resume(path)
        self.state: RolloutState = resumed.state
        self.plan_changed = check_resume(plan, self.state, path, self.options.target_kind)
        """Said when the plan was edited since the journal last ran it; ResumeRefused when it is another plan."""
        self.resumed = self.state.started and not self.state.finished
        compared = sum(stage.weight < 100 for stage in plan.stages)
        self.judge = SequentialJudge(plan.alpha, plan.tolerance, plan.floor, plan.metric_names, compared) if plan.judge == "sequential" else None
        """The sequential judge, its evidence gathered over the whole rollout (on a resume: taken up from the snapshot
        and the samples after it, else rebuilt from every sample the journal holds)."""
        if self.judge is not None and self.state.started:
            taken_up = self.judge.restore(resumed.judge)
            samples = resumed.samples_after if taken_up else (event for event in read_events(path) if isinstance(event, ev.SampleTaken))
            self.judge.replay((event.stage, event.counts) for event in samples)
        self.journal = ReplayJournal(path) if self.options.replay else Journal(path, sync_every_s=plan.interval, events=None if fresh else resumed.events)
        """Group commit: on disk before every action (`_journal_to_disk`), else at most once per interval of wall time."""
        self.snapshots = (
            None if self.options.replay else SnapshotWriter(self.journal, resumed.recent, monotonic, judge=None if self.judge is None else self.judge.to_plain)
        )
        """The folded state written beside the journal now and then: readers fold only the tail after it."""
        self._pending: list[PendingCommand] = []
        self._wake = asyncio.Event()
        self._rollback_pending = asyncio.Event()
        """An operator's rollback waits among the pending commands: a traffic shift in flight gives way to it."""
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._clock_started = False
        self._clock_started_t = 0.0
        self._weight_confirmed_for: int | None = None
        self._shift_retry_at: float | None = None
        """When a failed shift (or flag step) is tried again; None: at the next step."""
        self._shift_backoff_s = SHIFT_FIRST_RETRY_S
        self._error_run: _ErrorRun | None = None
        self._rollback_began: float | None = None
        self._rollback_pacing = RollbackPacing()
        self._rollback_flags_off = False
        self._stopping = False
        self._gate = self.options.gate or Gate(plan.preflight, PreflightContext(plan))
        self._checks: asyncio.Task[list[CheckResult]] | None = None
        """The gate's automated checks, run as a task beside the loop, which journals their results."""
        self._checks_began = 0.0
        self._arrived: list[CheckResult] = []
        """Check results in since the loop's last step: the next one journals them."""
        self._listener_failures: dict[tuple[str, str], float] = {}
        """When each listener's failure was last journaled."""
        self._telling_listener_failure = False

    # -- talking out and in ----------------------------------------------------------------

    def subscribe(self, listener: Callable[[ev.Event], None]) -> None:
        self._listeners.append(listener)

    def submit(self, name: str, actor: str, argument: str = "") -> None:
        """An operator's command; taken at the next step, journaled with its actor."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}")
        self._pending.append(PendingCommand(name, actor, argument))
        if name == "rollback":
            self._rollback_pending.set()
        self._wake.set()

    def stop(self) -> None:
        """Leave the loop at the next step (the console is quitting); the journal keeps the rest."""
        self._stopping = True
        self._wake.set()

    def now(self) -> float:
        return self.clock.now() if self._clock_started else min(0.0, self.state.last_t)

    @property
    def state_dir(self) -> Path:
        return self.journal.path.parent

    def emit(self, event: ev.Event) -> None:
        """Journal the event, then tell the listeners; an error repeating the last one is only counted.

        A run of identical errors (same `where` and `message`) is one `error` line, then one with
        `repeated: N` for the N that followed, written before the next other event (a pause, the
        error's own consequence, aside) and every minute while they go on.
        """
        run = self._error_run
        if isinstance(event, ev.ErrorRaised) and run is not None and (run.where, run.message) == (event.where, event.message):
            run.repeats += 1
            if event.t >= run.reported_t + ERROR_REPEATS_EVERY_S:
                self._write_repeats(run)
            return
        if run is not None and not isinstance(event, ev.Paused):
            self._write_repeats(run)
            self._error_run = None
        self._record(event)
        if isinstance(event, ev.ErrorRaised):
            self._error_run = _ErrorRun(event.where, event.message, event.t)

    def _write_repeats(self, run: _ErrorRun) -> None:
        if run.repeats:
            self._record(ev.ErrorRaised(self.now(), where=run.where, message=run.message, repeated=run.repeats))
            run.repeats, run.reported_t = 0, self.now()

    def _record(self, event: ev.Event) -> None:
        try:
            self.journal.append(event)
        except NotJSON as error:  # a value JSON cannot hold that nothing made None: said, and the rollout goes on
            if isinstance(event, ev.ErrorRaised):
                raise
            self.emit(ev.ErrorRaised(self.now(), where="journal", message=f"{event.name} not journaled: {error}"))
            return
        self.state.apply(event)
        if self.snapshots is not None:
            self.snapshots.journaled(event, self.state)
        failures = []
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as error:  # a console widget or a notifier that fails must not stop the rollout
                failures.append((f"listener {_listener_name(listener)}", f"on {event.name}: {_error_text(error)}"))
        if isinstance(event, ev.ConsoleEvent):
            self._wake.set()  # a pause's deadline comes or goes with the people who can decide it
        for where, message in failures:
            self._listener_failed(where, message)

    def _listener_failed(self, where: str, message: str) -> None:
        """Journal a listener's failure, at most once a minute for the same one (a broken widget fails on every
        event); a listener failing again on that error is not journaled again, which would never end."""
        last = self._listener_failures.get((where, message))
        if self._telling_listener_failure or (last is not None and self.now() < last + ERROR_REPEATS_EVERY_S):
            return
        self._listener_failures[(where, message)] = self.now()
        self._telling_listener_failure = True
        try:
            self.emit(ev.ErrorRaised(self.now(), where=where, message=message))
        finally:
            self._telling_listener_failure = False

    def _journal_to_disk(self) -> None:
        """Write-ahead: what the journal says so far is on disk before the target or the flag store is touched."""
        self.journal.sync()

    def record_flag_changes(self, changes: list[FlagChangeRecord]) -> None:
        """Journal flag changes made beside the rollout (the kill switch, an editor)."""
        for change in changes:
            self.emit(ev.FlagChanged.of(self.now(), change))

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> Phase:
        """Supervise the rollout until it has finished (or the loop was stopped); the phase it is in then."""
        state = self.state
        if state.finished and self.options.exit_when_finished:
            return state.phase
        if not state.started:
            self.emit(self._rollout_started())
        if state.preflight_done:  # a finished release can still be undone: time goes on
            self._start_clock()
        try:
            while not self._stopping:
                await self._apply_commands()
                if not state.preflight_done and not state.finished:
                    await self._reconcile_gate()
                elif not state.finished:
                    await self._reconcile()
                if state.finished and self.options.exit_when_finished:
                    break
                await self._wait()
        finally:
            await self._stop_checks("supervision stopped; the check runs again when the rollout is taken up")
        if self._error_run is not None:
            self._write_repeats(self._error_run)
        self._journal_to_disk()
        return state.phase

    def _rollout_started(self) -> ev.RolloutStarted:
        plan = self.plan
        identity = plan_identity(plan, self.options.target_kind)
        # Each stage with its criteria, and the triggers: the limits the runbook judges by.
        identity["stages"] = [{**recorded, "criteria": [asdict(c) for c in stage.criteria]} for recorded, stage in zip(identity["stages"], plan.stages)]
        return ev.RolloutStarted(
            0.0,
            **identity,
            plan=plan.source,
            planned_s=plan.planned_duration,
            actor=self.actor,
            rollback_plan=plan.rollback_plan or "",
            triggers=[{"severity": t.severity, **asdict(t.check)} for t in plan.triggers],
            flags=[{"name": f.name, "new": f.new, "disable_on_rollback": f.disable_on_rollback} for f in plan.flags],
            headless=self.options.headless,
        )

    def _start_clock(self) -> None:
        """The rollout's clock goes on from the journal's last event, plus the time nobody watched."""
        state = self.state
        unwatched = 0.0
        if (self.resumed or state.finished) and state.last_ts:
            gap = (datetime.now(UTC) - datetime.fromisoformat(state.last_ts)).total_seconds()
            unwatched = max(0.0, gap) * self.clock.speed
        t = max(0.0, state.last_t + unwatched)
        self.clock.start(t)
        self._clock_started, self._clock_started_t = True, t
        if self.resumed:
            missed = state.phase == Phase.RUNNING and not state.window_held and not self._window_can_still_pass(t)
            self.emit(ev.SupervisionResumed(t, unwatched_s=round(unwatched, 3), window_restarted=missed, digest=plan_digest(self.plan)))

    def _window_can_still_pass(self, t: float) -> bool:
        """Whether the running window, resumed at `t` after samples were missed, can still reach min_coverage.

        The window keeps its start, so a day-long stage keeps its dates across a restart: the time nobody
        sampled is a hole in its coverage (never a pass), and its end judges it by the coverage rule. A hole
        the window cannot make up for starts the window again, rather than leave it to end inconclusive."""
        state, plan = self.state, self.plan
        stage = plan.stages[state.stage]
        last = state.last_sample_t if state.last_sample_t is not None and state.last_sample_t >= state.window_started_t else state.window_started_t
        next_covers = min(max(plan.interval, t - last), SAMPLE_SPAN_LIMIT * plan.interval)
        window_end = state.window_started_t + stage.observe
        best_covered = state.window.covered_s + next_covers + max(0.0, window_end - t)
        return best_covered >= plan.min_coverage * max(stage.observe, t - state.window_started_t) - 1e-9

    async def _wait(self) -> None:
        retry_at = self._rollback_pacing.next_at
        if self.state.phase == Phase.ROLLING_BACK and retry_at is not None:
            await self.wall_clock.wait_until(retry_at, self._wake)
            self._wake.clear()
            return
        due = self._next_due()
        if due is None:
            await self._wake.wait()
        else:
            await self.clock.wait_until(due, self._wake)
        self._wake.clear()

    def _next_sample_t(self) -> float:
        state = self.state
        last = state.last_sample_t if state.last_sample_t is not None and state.last_sample_t >= state.stage_started_t else state.stage_started_t
        return last + self.plan.interval

    def _next_due(self) -> float | None:
        state = self.state
        if state.finished or not self._clock_started:
            return None
        if state.phase == Phase.ROLLING_BACK or state.stage < 0 or (state.phase == Phase.RUNNING and state.window_held):
            return self.now()
        if self._weight_confirmed_for != state.stage:  # no samples before the stage's traffic is in place
            due = self.now() if self._shift_retry_at is None else self._shift_retry_at
        else:
            due = self._next_sample_t()
        deadline = self._pause_deadline()
        return due if deadline is None else min(due, deadline)

    def _pause_deadline(self) -> float | None:
        """When a pause with no decision rolls back: pause_timeout after it, when nobody can decide it
        (headless), or after the last console left when that was later; None while someone can."""
        state = self.state
        if state.phase != Phase.PAUSED:
            return None
        if self.options.headless:
            return state.paused_t + self.plan.pause_timeout
        if not self.options.consoles_attach or state.acting_consoles:
            return None
        # A controller (re)started counts from its start: whoever started it is about to attach.
        left = state.alone_since.t if state.alone_since is not None else self._clock_started_t
        return max(state.paused_t, left, self._clock_started_t) + self.plan.pause_timeout

    # -- pre-flight ------------------------------------------------------------------------

    async def _reconcile_gate(self) -> None:
        """The gate, a step of the loop: its checks run as a task, each result journaled as it arrives.

        It fails as soon as a required item has failed (no sign-off can open it then), and passes
        once every check has finished and every required item passed.
        """
        if self._checks is None:
            await self._start_checks()
        self._journal_arrived()
        verdict = self._gate.verdict({name: item.status for name, item in self.state.preflight.items()})
        # Headless, nobody can sign off: an item waiting for a person keeps the gate closed for good.
        unsignable = verdict.unsigned if self.options.headless else ()
        if verdict.failed:
            await self._stop_checks(cannot_open(verdict.failed))
            self.emit(ev.PreflightFailed(self.now(), failed=[*verdict.failed, *unsignable]))
        elif verdict.unfinished:
            return
        elif unsignable:
            self.emit(ev.PreflightFailed(self.now(), failed=list(unsignable)))
        elif not verdict.unsigned:
            self.emit(ev.PreflightPassed(self.now()))
            self._start_clock()

    async def _start_checks(self) -> None:
        """Flags created dark, then every automated check started and every manual item not signed off waiting.

        Taken up after a crash, the checks run again (what held then may not hold now: a cluster's room,
        an alert), while the sign-offs already journaled stand.
        """
        if self.options.flag_setup is not None:
            self._journal_to_disk()
            self.record_flag_changes(await self.options.flag_setup(self.actor, "created disabled before the deploy"))
        for item in self._gate.automated:
            self._journal_result(CheckResult.running(item))
        for item in self._gate.manual:
            if item.name not in self.state.preflight:
                self._journal_result(CheckResult.waiting(item))
        self._checks_began = self._monotonic()
        self._checks = asyncio.create_task(self._gate.run_checks(self._check_arrived))

    def _check_arrived(self, result: CheckResult) -> None:
        self._arrived.append(result)
        self._wake.set()

    def _journal_arrived(self) -> None:
        arrived, self._arrived = self._arrived, []
        for result in arrived:
            self._journal_result(result)

    async def _stop_checks(self, why: str) -> None:
        """Checks still running are stopped (their programs killed) and journaled as cancelled, with why."""
        if self._checks is None:
            return
        if not self._checks.done():
            self._checks.cancel()
            await asyncio.wait((self._checks,))
        self._journal_arrived()
        ran_for = self._monotonic() - self._checks_began
        for item in self._gate.automated:
            result = self.state.preflight.get(item.name)
            if result is not None and result.status == "running":
                self._journal_result(CheckResult.cancelled(item, why, ran_for))

    def _journal_result(self, result: CheckResult) -> None:
        self.emit(ev.PreflightResult.of(self.now(), result))

    def _sign_off(self, item_name: str, actor: str) -> None:
        """A manual item waiting for its sign-off passes, signed by `actor`; any other sign-off changes nothing."""
        state = self.state
        item, current = self._gate.item(item_name), state.preflight.get(item_name)
        gate_open = state.phase == Phase.PREFLIGHT and not state.preflight_done  # a failed or passed gate is over
        if gate_open and item is not None and current is not None and current.status == "waiting":
            self._journal_result(CheckResult.signed_off(item, actor))

    async def _abort_before_start(self, actor: str) -> None:
        # Nothing has changed yet: the rollback is a record that the release was stopped, and by whom.
        await self._stop_checks(f"the release was stopped by {actor}")
        self.emit(ev.RollbackStarted(self.now(), reason=f"stopped before any change by {actor}", trigger="operator"))
        self.emit(ev.RolledBack(self.now(), duration_s=0.0))

    # -- commands --------------------------------------------------------------------------

    def _take_pending(self) -> list[PendingCommand]:
        pending, self._pending = self._pending, []
        self._rollback_pending.clear()
        return pending

    async def _apply_commands(self) -> None:
        """Gather the operators' intents and apply them once: a rollback wins over everything."""
        pending = self._take_pending()
        for command in pending:
            self.emit(ev.CommandIssued(self.now(), command=command.name, actor=command.actor, argument=command.argument))
        rollback = next((c for c in pending if c.name == "rollback"), None)
        if rollback:
            if self.state.phase.before_first_change:
                await self._abort_before_start(rollback.actor)
            elif self.state.phase == Phase.ROLLING_BACK:
                self._rollback_pacing.retry_now()  # the rollback still open: its next attempt now
            elif not self.state.phase.stable_serves_all:
                self._begin_rollback(f"rolled back by {rollback.actor}", "operator")
            return
        for command in pending:
            await self._apply_command(command)

    async def _apply_command(self, command: PendingCommand) -> None:
        state = self.state
        last = len(self.plan.stages) - 1
        if command.name == "pause" and state.phase in (Phase.RUNNING, Phase.AWAITING_PROMOTE):
            self.emit(ev.Paused(self.now(), reason=f"paused by {command.actor}", trigger="operator"))
        elif command.name == "resume" and state.phase == Phase.PAUSED:
            drifted = bool(state.drift_standing)
            self.emit(ev.Resumed(self.now()))
            self._shift_retry_at = None  # a failed shift is tried again at once
            if drifted:  # the operator accepted the changes: the stage's own state is put back
                self._weight_confirmed_for = None
        elif command.name in ("promote", "promote-full") and state.active and state.drift_standing:
            changes = "; ".join(state.drift_standing)
            self.emit(
                ev.ErrorRaised(
                    self.now(),
                    where=command.name,
                    message=f"not done: the target changed beside the release ({changes}); resume to accept the changes, or roll back",
                )
            )
        elif command.name == "promote" and state.active:
            if state.stage < last:
                await self._start_stage(state.stage + 1)
            else:
                await self._complete()
        elif command.name == "promote-full" and state.active and state.stage < last:
            await self._start_stage(last)
        elif command.name == "sign-off":
            self._sign_off(command.argument, command.actor)

    # -- reconcile -------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        state = self.state
        if state.phase == Phase.ROLLING_BACK:
            await self._finish_rollback()
            return
        if state.target_before is None:
            self._journal_to_disk()
            before, changes = await self.target.prepare()
            self.emit(ev.TargetPrepared(self.now(), before=before, changes=changes))
        if state.stage < 0:
            await self._start_stage(0)
            return
        if state.phase == Phase.RUNNING and state.window_held:
            await self._move_on()
            return
        if not state.active:
            return
        if state.drift_standing and state.shifted_stage == state.stage:  # a restart does not re-apply over drift nobody accepted
            self._weight_confirmed_for = state.stage
        in_place = self._weight_confirmed_for == state.stage or (self._shift_due() and await self._apply_stage())
        if not state.active:  # the stage could not come up and was rolled back
            return
        deadline = self._pause_deadline()
        if deadline is not None and self.now() >= deadline - 1e-9:
            minutes = self.plan.pause_timeout / 60
            alone = "" if self.options.headless else " and nobody attached to decide"
            self._begin_rollback(f"paused {minutes:g}m with no decision{alone}: {state.paused_reason}", state.paused_trigger)
            return
        if in_place and self.now() >= self._next_sample_t() - 1e-9:
            await self._check_drift()
            await self._take_sample()

    def _shift_due(self) -> bool:
        return self._shift_retry_at is None or self.now() >= self._shift_retry_at - 1e-9

    async def _start_stage(self, index: int) -> None:
        stage = self.plan.stages[index]
        # The intent is journaled first: a crash before the target call is finished by the next run.
        self.emit(ev.StageStarted(self.now(), stage=index, stage_name=stage.name, weight=stage.weight, observe_s=stage.observe))
        await self._apply_stage()

    async def _apply_stage(self) -> bool:
        """The stage's traffic weight, and its flag step if it has one; both idempotent, so a retry is safe.

        False when they failed (tried again later, backing off), when the stage cannot come up (it
        is rolled back), or when an operator's rollback came first: the loop's next step begins it.
        """
        stage = self.plan.stages[self.state.stage]
        shifted = False
        try:
            if not await self._shift_unless_rolled_back():
                return False
            shifted = True
            if stage.flag_step is not None and self.options.flag_step is not None:
                self._journal_to_disk()
                self.record_flag_changes(await self.options.flag_step(stage.flag_step, self.actor))
        except RolloutFailed as error:  # waiting longer changes nothing: the stage has failed
            self._begin_rollback(f"{stage.name} ({stage.weight}%) cannot come up: {error}", error.trigger)
            return False
        except Exception as error:  # any target or flag store failure must reach the operator, not kill the loop
            where, trigger, what = (
                ("flags", "flags", "the flag step failed") if shifted else ("target.set_weight", "target", "the target failed to shift traffic")
            )
            self.emit(ev.ErrorRaised(self.now(), where=where, message=str(error)))
            if self.state.phase == Phase.RUNNING:
                self.emit(ev.Paused(self.now(), reason=f"{what}: {error}", trigger=trigger))
            self._shift_retry_at = self.now() + self._shift_backoff_s
            self._shift_backoff_s = min(self._shift_backoff_s * 2, SHIFT_MAX_RETRY_S)
            return False
        state = self.state
        self._weight_confirmed_for = state.stage
        self._shift_retry_at, self._shift_backoff_s = None, SHIFT_FIRST_RETRY_S
        if state.shifted_stage != state.stage:  # once per stage: a resumed run's re-applied shift is not news
            self.emit(ev.TrafficShifted(self.now(), stage=state.stage, weight=state.weight, waited_s=round(self.now() - state.stage_started_t, 3)))
        return True

    async def _shift_unless_rolled_back(self) -> bool:
        """set_weight, given up when an operator asks for a rollback; True when it shifted and no rollback waits.

        A shift can wait minutes for a rollout to become available (Kubernetes): the rollback must not
        queue behind it while the canary serves. Writes the target already sent still land, before the
        rollback's (the target keeps its writes in order).
        """
        if self._rollback_pending.is_set():
            return False
        self._journal_to_disk()
        shift = asyncio.create_task(self.target.set_weight(self.state.weight))
        rollback = asyncio.create_task(self._rollback_pending.wait())
        try:
            await asyncio.wait((shift, rollback), return_when=asyncio.FIRST_COMPLETED)
        finally:
            rollback.cancel()
            if not shift.done():
                shift.cancel()
                await asyncio.wait((shift,))  # the shift unwinds (its watch cut) before the rollback begins
        if shift.cancelled():
            return False
        shift.result()  # the target's failure, if it failed
        return not self._rollback_pending.is_set()

    async def _check_drift(self) -> None:
        """Compare the target with what the release left there: journal what someone else changed, and pause
        for a person when a change is new. Nothing is put back until a person resumes (or rolls back)."""
        state = self.state
        if state.target_before is None or self.options.replay:  # a replay's target records its own asks: nobody else's
            return
        try:
            async with asyncio.timeout(DRIFT_CHECK_TIMEOUT_S):  # in this task: wait_for's task a sample costs more than the check
                found = await self.target.drift(state.weight, state.target_before)
        except Exception as error:  # a failed check is no evidence of drift: said, and the rollout goes on
            message = f"no answer within {DRIFT_CHECK_TIMEOUT_S:g}s" if isinstance(error, TimeoutError) else str(error)
            self.emit(ev.ErrorRaised(self.now(), where="target.drift", message=message))
            return
        if found == state.drift:
            return
        if not found:
            self.emit(ev.DriftResolved(self.now()))
            return
        appeared = [change for change in found if change not in state.drift and change not in state.drift_accepted]
        self.emit(ev.DriftDetected(self.now(), changes=found, weight=state.weight))
        if appeared and state.phase in (Phase.RUNNING, Phase.AWAITING_PROMOTE):
            more = f" (and {len(appeared) - 1} more)" if len(appeared) > 1 else ""
            self.emit(ev.Paused(self.now(), reason=f"the target changed beside the release: {appeared[0]}{more}", trigger="drift"))

    async def _take_sample(self) -> None:
        state, plan = self.state, self.plan
        stage = plan.stages[state.stage]
        t = self.now()
        span = self._sample_span(t)
        sample = await self.metrics.sample(plan.metric_names, t, span)
        judgement = self._judge_sample(sample, stage)
        metrics, counts = _journaled(sample)
        streaks, decision = decide(judgement, state.streaks, sample, plan.inconclusive_limit, pause_on_warning=state.phase == Phase.RUNNING)
        judged: dict[str, dict[str, Any]] = {}
        if self.judge is not None and self.judge.add(sample.canary_counts, sample.stable_counts, state.stage):
            judged = self.judge.journaled() if self.options.journal_evidence else {}
            regression = self.judge.regression()
            if regression is not None and decision.action != "rollback":  # a critical trigger's rollback says it first
                decision = Decision("rollback", regression.reason, regression.trigger)
        self.emit(
            ev.SampleTaken(
                t,
                stage=state.stage,
                metrics=metrics,
                requests=finite_or_none(sample.canary_requests),
                verdict=judgement.verdict,
                breaches=[c.metric for c in judgement.failed_criteria] + [tr.check.metric for tr in judgement.held_triggers],
                inconclusive=list(judgement.inconclusive),
                errors=list(sample.errors),
                streaks=streaks,
                span_s=round(span, 6),
                verdicts=dict(judgement.verdicts),
                counts=counts,
                judge=judged,
            )
        )
        if decision.action == "rollback":
            self._begin_rollback(decision.reason, decision.trigger)
            return
        if decision.action == "pause":
            self.emit(ev.Paused(t, reason=decision.reason, trigger=decision.trigger))
            return
        if state.phase == Phase.RUNNING and t >= state.window_started_t + stage.observe - 1e-9:
            self._end_window()

    def _judge_sample(self, sample: Sample, stage: Stage) -> SampleJudgement:
        """judge_sample's judgement of `sample` in `stage`, kept with the sample (Sample.derived): replays that share
        samples judge each once per stage of their plan. The plan's id in the key, as the plan outlives its samples."""
        key = ("judgement", id(self.plan), stage.index)
        judgement = sample.derived.get(key)
        if judgement is None:
            plan = self.plan
            judgement = sample.derived[key] = judge_sample(sample, stage, plan.triggers, plan.min_requests, plan.alpha)
        return judgement  # type: ignore[return-value]

    def _sample_span(self, t: float) -> float:
        """The time a sample at `t` measures: its interval, or the time since the stage's last sample when it
        lands late (a controller or a source slower than the interval), so late samples leave no hole in the
        window; never more than SAMPLE_SPAN_LIMIT intervals, beyond which the gap is one."""
        state, interval = self.state, self.plan.interval
        last = state.last_sample_t
        since_last = t - last if last is not None and last >= state.stage_started_t else interval
        return min(max(interval, since_last), SAMPLE_SPAN_LIMIT * interval)

    def _end_window(self) -> None:
        """Journal the window's verdict; the loop's next step acts on it (moves on, or rolls back).

        A window that failed where stable fails too, the canary no worse, pauses for a person: rolling back
        to a stable that fails the same limit mends nothing. A window that passed where the judge's evidence is
        ambiguous (SequentialJudge.held) pauses too. Headless, the pause rolls back after pause_timeout."""
        state, plan = self.state, self.plan
        stage = plan.stages[state.stage]
        t = self.now()
        confidence = Confidence(plan.alpha, plan.tolerance, self._judged_worse())
        verdict = judge_window(stage, state.window, t - state.window_started_t, plan.min_coverage, confidence)
        held = self.judge.held() if self.judge is not None and verdict.outcome == "pass" else None
        if held is not None:  # never promoted on ambiguous evidence, nor rolled back on it
            self.emit(ev.Paused(t, reason=held.reason, trigger=held.trigger))
        elif verdict.outcome == "pass":
            summary = {m: {"canary": v.canary, "stable": v.stable} for m, v in verdict.means.items()}
            self.emit(ev.StagePassed(t, stage=state.stage, summary=summary))
        elif verdict.outcome == "fail" and not verdict.the_service and not self.manual:
            self._begin_rollback(verdict.reason, verdict.metric)
        else:
            self.emit(ev.Paused(t, reason=verdict.reason, trigger=verdict.metric))

    def _judged_worse(self) -> dict[str, bool]:
        """The rates the judge's error test speaks for, each with whether the judge has shown the canary worse than
        stable on anything it tests (a canary worse in its latency is no excuse for the service). Empty without a
        judge or counts."""
        if self.judge is None or self.judge.evidence().canary_requests <= 0:
            return {}
        worse = self.judge.regression() is not None
        return dict.fromkeys(COUNTED_RATES, worse)

    async def _move_on(self) -> None:
        """The stage's window held: wait for a promote where the plan says so, else the next stage, or complete."""
        state, plan = self.state, self.plan
        if plan.waits_for_promote(state.stage, self.options.manual):
            self.emit(ev.AwaitingPromote(self.now(), stage=state.stage))
        elif state.stage == len(plan.stages) - 1:
            await self._complete()
        else:
            await self._start_stage(state.stage + 1)

    async def _complete(self) -> None:
        self._journal_to_disk()
        try:
            await self.target.finish()
        except Exception as error:  # the release is out; tidying up is reported, not fatal
            self.emit(ev.ErrorRaised(self.now(), where="target.finish", message=str(error)))
        self.emit(ev.Completed(self.now()))

    # -- rollback --------------------------------------------------------------------------

    def _begin_rollback(self, reason: str, trigger: str) -> None:
        """Journal the decision; the loop's next step rolls back (the step that takes a rollback up after a crash)."""
        self._rollback_began = self._monotonic()
        self._rollback_pacing, self._rollback_flags_off = RollbackPacing(), False
        self.emit(ev.RollbackStarted(self.now(), reason=reason, trigger=trigger))

    async def _finish_rollback(self) -> None:
        """One attempt: traffic back to stable, flags off, the target read back, then stable's metrics.

        Every step is safe to repeat (after a failure or a crash). The rollback is `rolled_back` only
        once the target reads back stable serving everything; until then it stays open, journaled as
        rollback_failed, and is tried again after a backoff for as long as this controller lives.
        """
        pacing = self._rollback_pacing
        wall = self.wall_clock.now()
        if not pacing.due(wall):
            return  # woken by something else than the next attempt (a command, a flag change)
        pacing.attempt(wall)
        if self._rollback_began is None:  # taken up from the journal: Brahma's own time counts from here
            self._rollback_began = self._monotonic()
        before = self.state.target_before
        if before is not None and pacing.attempts == 1 and self._weight_confirmed_for == self.state.stage:
            await self._check_drift()  # what it finds that is not the release's is left as found
        outcome = await self._rollback_target(before) if before is not None else RollbackReadBack("nothing had changed on the target")
        if not self._rollback_flags_off:
            self._rollback_flags_off = await self._switch_flags_off()
        if isinstance(outcome, RollbackUnverified):
            self._rollback_not_verified(outcome)
            return
        duration = self._monotonic() - self._rollback_began
        await self._verify_stable()
        self.emit(ev.RolledBack(self.now(), duration_s=round(duration, 6), read_back=outcome.observed))

    async def _rollback_target(self, before: dict[str, Any]) -> RollbackReadBack | RollbackUnverified:
        """The target's rollback, then the target read back: verified, or what failed.

        The read-back decides, even after a rollback call that failed: a call that failed tidying up
        (a leftover Service) with the traffic back on stable is done, and its error is journaled."""
        self._journal_to_disk()
        try:
            await self.target.rollback(before)
            failed = ""
        except Exception as error:  # any failure is retried: a rollback never gives up while the controller lives
            failed = _error_text(error)
        try:
            read_back = await self.target.read_back_rollback(before)
        except Exception as error:
            return RollbackUnverified("rollback", failed) if failed else RollbackUnverified("read_back", _error_text(error))
        if read_back.verified:
            if failed:
                self.emit(ev.ErrorRaised(self.now(), where="target.rollback", message=f"{failed} (stable serves everything: {read_back.observed})"))
            return read_back
        problems = "; ".join(read_back.problems)
        return RollbackUnverified("rollback", f"{failed}; read back: {problems}") if failed else RollbackUnverified("not_verified", problems)

    async def _switch_flags_off(self) -> bool:
        """The flags marked disable_on_rollback, off whatever the target does; True once every hook succeeded."""
        reason = self.state.rollback_reason
        done = True
        for hook in self.options.flag_hooks:
            self._journal_to_disk()
            try:
                self.record_flag_changes(await hook(self.actor, f"rollback: {reason}"))
            except Exception as error:  # a flag store that fails must not stop the rollback
                self.emit(ev.ErrorRaised(self.now(), where="flags", message=str(error)))
                done = False
        return done

    def _rollback_not_verified(self, failure: RollbackUnverified) -> None:
        pacing, wall = self._rollback_pacing, self.wall_clock.now()
        if pacing.failed(wall, failure.reason, failure.detail):
            self.emit(
                ev.RollbackFailed(
                    self.now(),
                    reason=failure.reason,
                    detail=failure.detail,
                    attempts=pacing.attempts,
                    since_s=round(pacing.since(wall), 3),
                    retry_in_s=pacing.backoff_s,
                )
            )

    async def _verify_stable(self) -> None:
        sample = await self.metrics.sample(self.plan.metric_names, self.now(), self.plan.interval)
        critical = [t.check for t in self.plan.triggers if t.severity == "critical" and not t.check.relative]
        breached = [c.metric for c in critical if c.holds(sample.values.get(c.metric, _NO_VALUES).stable, None)]
        judged = [c for c in critical if sample.values.get(c.metric, _NO_VALUES).stable is not None]
        if breached:
            detail = f"stable breaches {', '.join(breached)}"
        elif not judged:
            detail = "no stable data to verify with: " + ("; ".join(sample.errors) or "the source returned nothing")
        else:
            detail = f"stable within every critical limit ({len(judged)} checked)"
        self.emit(ev.RollbackVerified(self.now(), healthy=bool(judged) and not breached, detail=detail))


_NO_VALUES = TrackValues(None, None)


def _error_text(error: Exception) -> str:
    return str(error) or type(error).__name__


def _listener_name(listener: Callable[[ev.Event], None]) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__qualname__


def _journaled(sample: Sample) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, object]]]:
    """The sample's metrics and counts as journaled, worked out once per sample (Sample.derived: replays share samples).
    Events are never changed once made, so the events of replays sharing a sample may share these."""
    journaled = sample.derived.get("journaled")
    if journaled is None:
        journaled = sample.derived["journaled"] = (_metrics_dict(sample), _counts_dict(sample))
    return journaled  # type: ignore[return-value]


def _metrics_dict(sample: Sample) -> dict[str, dict[str, float | None]]:
    return {metric: {"canary": _round(finite_or_none(v.canary)), "stable": _round(finite_or_none(v.stable))} for metric, v in sample.values.items()}


def _counts_dict(sample: Sample) -> dict[str, dict[str, object]]:
    """Each track's counts as journaled; a track whose counts are not all numbers (NaN from a source) has none: no evidence."""
    tracks = (("canary", sample.canary_counts), ("stable", sample.stable_counts))
    return {track: counts.to_dict() for track, counts in tracks if counts is not None and counts.finite}


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")
