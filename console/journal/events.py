"""The controller's events and the operators' commands: small immutable records, one journal line each.

Every event has `event` (its name), `t` (seconds on the rollout's clock since the first stage
started; pre-flight events have t <= 0) and `ts` (wall time, ISO 8601).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


def wall_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Event:
    """One journal line: `t` on the rollout's clock, `ts` the wall time.

    Every event class has a docstring of its own: for one without, @dataclass makes one from inspect.signature,
    at import, which the console's first frame waits for."""

    name: ClassVar[str] = "event"
    t: float
    ts: str = field(default_factory=wall_time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        # Fields hold JSON values already: a shallow copy is enough (asdict's deep copy is the hot spot).
        return {"event": self.name, **self.__dict__}


BACKTEST_TARGET = "backtest"
"""The target kind of a backtest's journal (console/backtest): a recording target, nothing real acted on."""


@dataclass(frozen=True)
class RolloutStarted(Event):
    """The first line of a journal: what is being released, how, and by whom; the plan's identity, which a resume checks."""

    name: ClassVar[str] = "rollout_started"
    rollout: str
    app: str
    image: str
    strategy: str
    plan: str
    stages: list[dict[str, Any]]
    planned_s: float
    actor: str
    rollback_plan: str = ""
    target: dict[str, Any] = field(default_factory=dict)
    """The target's kind (BACKTEST_TARGET for a replay over history); on a cluster its namespace and stable Deployment too."""
    digest: str = ""
    """sha256 of what the controller decides by (console/controller/identity.py); a resume compares it."""
    triggers: list[dict[str, Any]] = field(default_factory=list)
    """The plan's triggers (severity and the check's metric, op, value, relative, consecutive), as its
    stages carry their criteria: the limits the runbook judges by. Empty in older journals."""
    flags: list[dict[str, Any]] = field(default_factory=list)
    """The plan's flags: name, new, disable_on_rollback."""
    headless: bool | None = None
    """No person was expected at a console (a pause waits pause_timeout, then rolls back); None in older journals."""


@dataclass(frozen=True)
class PreflightResult(Event):
    """One pre-flight item as it stands: running, waiting for a sign-off, or its result."""

    name: ClassVar[str] = "preflight_result"
    item: str
    kind: str
    status: str
    """pass, fail, error, running, waiting (for a sign-off) or cancelled (the gate closed or stopped first)."""
    required: bool
    output: str = ""
    duration_s: float = 0.0
    by: str = ""

    @classmethod
    def of(cls, t: float, result: Any) -> PreflightResult:
        """The journal record of a gate's result (anything with item, kind, status, required, output, duration_s, by)."""
        return cls(
            t,
            item=result.item,
            kind=result.kind,
            status=result.status,
            required=result.required,
            output=result.output,
            duration_s=round(result.duration_s, 3),
            by=result.by,
        )


@dataclass(frozen=True)
class PreflightPassed(Event):
    """The gate held: every required item passed (or was signed off); the first change may follow."""

    name: ClassVar[str] = "preflight_passed"


@dataclass(frozen=True)
class PreflightFailed(Event):
    """The gate closed with required items failed: nothing was changed."""

    name: ClassVar[str] = "preflight_failed"
    failed: list[str]


@dataclass(frozen=True)
class TargetPrepared(Event):
    """The state of the target before the first change, so rollback knows where to go back to."""

    name: ClassVar[str] = "target_prepared"
    before: dict[str, Any]
    changes: list[str]


@dataclass(frozen=True)
class StageStarted(Event):
    """A stage begins: the traffic share it moves to and the observation window it must hold."""

    name: ClassVar[str] = "stage_started"
    stage: int
    stage_name: str
    weight: int
    observe_s: float


@dataclass(frozen=True)
class TrafficShifted(Event):
    """The stage's traffic share is in place (on a cluster: rolled out and available): its window starts now."""

    name: ClassVar[str] = "traffic_shifted"
    stage: int
    weight: int
    waited_s: float
    """Rollout time from the stage's start: how long the shift waited for its rollout."""


@dataclass(frozen=True)
class SampleTaken(Event):
    """One reading of canary and stable, and how the analysis judged it."""

    name: ClassVar[str] = "sample"
    stage: int
    metrics: dict[str, dict[str, float | None]]
    """metric → {"canary": value, "stable": value}; None where the source had no data."""
    requests: float | None
    """Canary requests in the sample's interval."""
    verdict: str
    """pass, breach (a criterion or trigger), or inconclusive."""
    breaches: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    streaks: dict[str, int] = field(default_factory=dict)
    """Breaches (and inconclusive samples) in a row so far, so a resumed run counts on."""
    span_s: float | None = None
    """The rollout time the sample measured, ending at `t`: its interval, or the time since the stage's last
    sample when it lands late. Its share of an observation window counts as covered when it is conclusive;
    None in older journals (covers nothing)."""
    verdicts: dict[str, str] = field(default_factory=dict)
    """metric → how this sample judged it (analysis.MetricVerdict): pass, inconclusive, unmet (a stage
    criterion: the window decides), warning or critical (that trigger's breach condition held). Only the
    metrics a check judged; empty in older journals, whose values the console shows unjudged."""
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """track → samples.TrackCounts.to_dict(): the requests, errors and latency buckets each track served in
    the sample's interval, the judge's evidence; only the tracks the source counted (empty in older journals)."""
    judge: dict[str, dict[str, Any]] = field(default_factory=dict)
    """metric → the sequential judge's evidence so far in the rollout (controller/sequential.py): the rate
    ratio canary/stable with its interval, the log e-value and the log threshold that rolls back, the
    counts behind them. Empty under `judge: threshold`, before any counts, and in older journals."""


@dataclass(frozen=True)
class StagePassed(Event):
    """The stage's observation window held its criteria."""

    name: ClassVar[str] = "stage_passed"
    stage: int
    summary: dict[str, dict[str, float | None]]
    """metric → window means {"canary", "stable"}."""


@dataclass(frozen=True)
class AwaitingPromote(Event):
    """The stage's window held and it waits for an operator's promote (a manual stage, or a manual run)."""

    name: ClassVar[str] = "awaiting_promote"
    stage: int


@dataclass(frozen=True)
class Paused(Event):
    """The rollout holds where it is for a person: `reason` says why, `trigger` what (a metric, operator, drift)."""

    name: ClassVar[str] = "paused"
    reason: str
    trigger: str = ""


@dataclass(frozen=True)
class Resumed(Event):
    """The rollout goes on after a pause: the stage's window starts again."""

    name: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class SupervisionResumed(Event):
    """A controller took up a rollout its predecessor left (it was stopped, killed, or the machine rebooted)."""

    name: ClassVar[str] = "supervision_resumed"
    unwatched_s: float
    """Rollout time since the last journaled event: nobody sampled the canary then."""
    window_restarted: bool
    """The stage's window starts again: more samples were missed while nobody watched than its coverage can
    make up for. Otherwise it keeps its start, the time missed a hole in its coverage."""
    digest: str = ""
    """The digest of the plan the resumed controller runs under (another than before when the plan was edited)."""


@dataclass(frozen=True)
class ConsoleEvent(Event):
    """A console coming or going, with the person at it."""

    actor: str
    watch_only: bool = False
    """A read-only console or a follower of the events (attach --headless): it cannot decide a pause."""
    consoles: int = 0
    """Consoles that may act attached once this one came or went; at 0 nobody can decide a pause, so
    pause_timeout applies as in a headless run."""


@dataclass(frozen=True)
class ConsoleAttached(ConsoleEvent):
    """A console came (or a follower of the events)."""

    name: ClassVar[str] = "attached"


@dataclass(frozen=True)
class ConsoleDetached(ConsoleEvent):
    """A console left (or the controller that served it stopped: `reason` says so)."""

    name: ClassVar[str] = "detached"
    reason: str = ""


@dataclass(frozen=True)
class RollbackStarted(Event):
    """Traffic goes back to stable: a critical trigger decided it, or an operator."""

    name: ClassVar[str] = "rollback_started"
    reason: str
    trigger: str
    """The metric that breached, or "operator"."""


@dataclass(frozen=True)
class RollbackVerified(Event):
    """What the target read back after the rollback, and whether stable serves again."""

    name: ClassVar[str] = "rollback_verified"
    healthy: bool
    detail: str


@dataclass(frozen=True)
class RollbackFailed(Event):
    """A rollback the target does not read back as done: it stays open (rolling_back) and is tried again.

    Journaled at the first failure, when what fails changes, and once a minute meanwhile, not at every attempt."""

    name: ClassVar[str] = "rollback_failed"
    reason: str
    """What failed: `rollback` (the target's rollback call), `read_back` (reading the target), or
    `not_verified` (read back, the new version still serves or stable has not rolled out)."""
    detail: str
    attempts: int
    """Attempts so far by this controller."""
    since_s: float
    """Wall seconds since this controller's first attempt at the rollback."""
    retry_in_s: float
    """Wall seconds until the next attempt."""


@dataclass(frozen=True)
class RolledBack(Event):
    """The rollback is done: stable serves 100%."""

    name: ClassVar[str] = "rolled_back"
    duration_s: float
    """Brahma's own time from the decision to the stable version serving 100%."""
    read_back: str = ""
    """What the target read back to verify it (weights, selector, images)."""


@dataclass(frozen=True)
class Completed(Event):
    """The new version serves 100% and the last window held."""

    name: ClassVar[str] = "completed"


@dataclass(frozen=True)
class FlagChanged(Event):
    """A flag of the release changed in its store: by the controller (a stage, a rollback) or by a person."""

    name: ClassVar[str] = "flag_changed"
    flag: str
    old: dict[str, Any]
    new: dict[str, Any]
    actor: str
    reason: str = ""

    @classmethod
    def of(cls, t: float, change: Any) -> FlagChanged:
        """The journal record of a flag store's change (anything with flag, old, new, actor, reason)."""
        return cls(t, flag=change.flag, old=change.old or {}, new=change.new, actor=change.actor, reason=change.reason)


@dataclass(frozen=True)
class CommandIssued(Event):
    """An operator's command, with who gave it."""

    name: ClassVar[str] = "command"
    command: str
    actor: str
    argument: str = ""
    """What the command is about: the item a sign-off signs."""

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, "t": self.t, "ts": self.ts, "name": self.command, "actor": self.actor, "argument": self.argument}


@dataclass(frozen=True)
class DriftDetected(Event):
    """Someone else changed the target: it differs from what the release left there. The rollout pauses for
    a person when a difference is new; a resume accepts them all (Brahma then puts back what is its own)."""

    name: ClassVar[str] = "drift_detected"
    changes: list[str]
    """Every difference found now, one line each: what, as left → as found, and by whom when the target says."""
    weight: int
    """The traffic share whose state was compared."""


@dataclass(frozen=True)
class DriftResolved(Event):
    """The target is again as the release left it."""

    name: ClassVar[str] = "drift_resolved"


@dataclass(frozen=True)
class ErrorRaised(Event):
    """Something failed that the controller carried on through: a target call, a notification."""

    name: ClassVar[str] = "error"
    where: str
    message: str
    repeated: int = 0
    """0 for an error as it first happens; N for a line saying the error just before happened N more times."""


@dataclass(frozen=True)
class NotificationSent(Event):
    """How a webhook delivery went; journaled by the notifier, never by the controller's loop.

    A failed one is also told as an `error` event, so it shows wherever errors show."""

    name: ClassVar[str] = "notification"
    webhook: str
    """The webhook's kind and host ("slack hooks.slack.com"): never its address, which may hold a key."""
    about: str
    """The event it told of (rollback_started, completed, ...)."""
    status: str
    """sent or failed."""
    attempts: int
    detail: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        RolloutStarted,
        PreflightResult,
        PreflightPassed,
        PreflightFailed,
        TargetPrepared,
        StageStarted,
        TrafficShifted,
        SampleTaken,
        StagePassed,
        AwaitingPromote,
        Paused,
        Resumed,
        SupervisionResumed,
        ConsoleAttached,
        ConsoleDetached,
        RollbackStarted,
        RollbackVerified,
        RollbackFailed,
        RolledBack,
        Completed,
        FlagChanged,
        CommandIssued,
        DriftDetected,
        DriftResolved,
        ErrorRaised,
        NotificationSent,
    )
}

FINAL_EVENTS = ("rolled_back", "completed", "preflight_failed")


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event a journal line holds; KeyError or TypeError when the line is not one."""
    kind = EVENT_TYPES[data["event"]]
    values = {k: v for k, v in data.items() if k != "event"}
    if kind is CommandIssued:
        values["command"] = values.pop("name")
    known = _field_names(kind)
    return kind(**{k: v for k, v in values.items() if k in known})


@functools.cache
def _field_names(kind: type[Event]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(kind))
