"""Every release a state dir remembers, one record a journal: what was released, how it ended, how long it
took against its plan, why it paused or rolled back, and how long each rollback took to be verified.

Read from the journals alone: the live one of each release and the finished ones archived beside it
(RolloutFiles.archive_finished). Backtests replay history and are not releases; journals that are not a
rollout's (the flag changes' journal, a file that does not begin with rollout_started) are left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from console.journal import events as ev
from console.journal.journal import JournalError, read_events
from console.journal.state_dir import StateDir
from console.narrate import rollback_failed
from console.units import format_duration

ROLLBACK_LIMIT_S = 300.0
"""From the decision to the old version serving 100%: the reference process's limit, 5 minutes."""


def wall_seconds(first: str, last: str) -> float | None:
    """Seconds of wall time between two journaled `ts`; None when either cannot be read."""
    from datetime import datetime

    try:
        return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    except ValueError:
        return None


def format_rollback_time(seconds: float) -> str:
    """Sub-second where it matters (Brahma aims under one second of its own), 4m10s past ten seconds."""
    return f"{seconds:.2f}s" if seconds < 10 else format_duration(seconds)


@dataclass
class PastRollback:
    """One rollback of a past release, as its journal tells it."""

    reason: str
    trigger: str
    """The metric that breached, `operator`, or the sequential judge's trigger."""
    stage: str
    """The stage it was decided in; empty before any stage, or after the release completed (an undo)."""
    weight: int
    decided_ts: str
    seconds: float | None = None
    """Wall time from rollback_started to rolled_back: what the 5-minute limit is about (the rollout's own
    clock is virtual in --fast and --speed runs). None while the rollback was not verified."""
    brahma_s: float | None = None
    """Brahma's own time from the decision to stable serving everything (rolled_back's duration_s)."""
    failures: list[str] = field(default_factory=list)
    """rollback_failed as narrated: the target did not read back stable serving everything."""
    open_for_s: float | None = None
    """For one never verified: wall time from the decision to the journal's last line."""

    @property
    def verified(self) -> bool:
        return self.seconds is not None


@dataclass
class PastRelease:
    """One release of an app: a journal's story in a few facts."""

    journal: Path
    rollout: str
    app: str
    image: str
    strategy: str
    target: str
    """The target's kind (sim, kubernetes)."""
    started_ts: str
    ended_ts: str
    outcome: str
    """completed, rolled back, rollback not verified, gate failed, or unfinished (and where it stood)."""
    planned_s: float
    actual_s: float | None = None
    """Rollout time from the first stage to the end (or to the journal's last line); None when no stage started."""
    pauses: list[tuple[str, str]] = field(default_factory=list)
    """(trigger, reason) of every pause."""
    rollbacks: list[PastRollback] = field(default_factory=list)
    gate_failed: list[str] = field(default_factory=list)
    shift_waits_s: list[float] = field(default_factory=list)
    """How long each stage's traffic shift waited for its rollout on the target (on a cluster: pods available)."""

    @property
    def went_wrong(self) -> list[str]:
        """What a person should know before releasing this app again: rollbacks, pauses, a closed gate."""
        said = []
        for rollback in self.rollbacks:
            where = f" at {rollback.stage} ({rollback.weight}%)" if rollback.stage else ""
            if rollback.verified:
                took = f"rolled back in {format_rollback_time(rollback.seconds or 0.0)}"
            else:
                took = "ROLLBACK NOT VERIFIED" + (f": {rollback.failures[-1]}" if rollback.failures else "")
            said.append(f"rollback{where} by {rollback.trigger}: {rollback.reason}; {took}")
        said += [f"paused ({trigger}): {reason}" for trigger, reason in self.pauses]
        if self.gate_failed:
            said.append(f"pre-flight gate failed: {', '.join(self.gate_failed)}")
        return said

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["journal"] = str(self.journal)
        data["pauses"] = [{"trigger": trigger, "reason": reason} for trigger, reason in self.pauses]
        return data


class _Reading:
    """The fold of one journal into a PastRelease: only the events a history tells of."""

    def __init__(self, journal: Path, started: ev.RolloutStarted):
        self.release = PastRelease(
            journal,
            started.rollout,
            started.app,
            started.image,
            started.strategy,
            str(started.target.get("kind") or "sim"),
            started.ts,
            started.ts,
            "unfinished (pre-flight)",
            started.planned_s,
        )
        self.stage, self.weight, self.first_stage_ts = "", 0, ""
        self.ended = False
        """Completed or rolled back: what follows (an undo) is not the release's own time."""
        self.open: PastRollback | None = None

    def take(self, event: ev.Event) -> None:
        release = self.release
        release.ended_ts = event.ts
        if release.actual_s is not None and not self.ended:  # an undo after completion leaves the release's own duration
            release.actual_s = max(release.actual_s, event.t)
        match event:
            case ev.StageStarted():
                self.stage, self.weight = event.stage_name, event.weight
                release.outcome = f"unfinished (at {event.stage_name}, {event.weight}%)"
                release.actual_s = release.actual_s or 0.0
            case ev.TrafficShifted() if event.waited_s:
                release.shift_waits_s.append(event.waited_s)
            case ev.Paused():
                release.pauses.append((event.trigger or "operator", event.reason))
            case ev.PreflightFailed():
                release.gate_failed, release.outcome = list(event.failed), "gate failed"
            case ev.RollbackStarted():
                self.open = PastRollback(event.reason, event.trigger, "" if self.ended else self.stage, 0 if self.ended else self.weight, event.ts)
                release.rollbacks.append(self.open)
                release.outcome = "rollback not verified"
            case ev.RollbackFailed() if self.open is not None:
                self.open.failures.append(rollback_failed(event))
            case ev.RolledBack() if self.open is not None:
                self.open.seconds = wall_seconds(self.open.decided_ts, event.ts)
                self.open.brahma_s, self.open = event.duration_s, None
                release.outcome, self.ended = "rolled back", True
            case ev.Completed():
                release.outcome, self.ended = "completed", True

    def done(self) -> PastRelease:
        if self.open is not None:
            self.open.open_for_s = wall_seconds(self.open.decided_ts, self.release.ended_ts)
        return self.release


def read_release(journal: Path) -> PastRelease | None:
    """The release a journal tells of; None for a journal that is no release's (a backtest, the flag changes').

    JournalError when it cannot be read. Of the samples, most of a long journal, only the last is parsed: a history
    takes of them only their time, and the journal's times only grow."""
    reading: _Reading | None = None
    for event in read_events(journal, last_sample_only=True):
        if reading is None:
            if not isinstance(event, ev.RolloutStarted) or event.target.get("kind") == ev.BACKTEST_TARGET:
                return None
            reading = _Reading(journal, event)
        reading.take(event)
    return reading.done() if reading else None


@dataclass
class History:
    """Past releases by app, oldest first, and the journals that could not be read."""

    releases: list[PastRelease] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def of(self, app: str) -> list[PastRelease]:
        return [release for release in self.releases if release.app == app]

    @property
    def apps(self) -> list[str]:
        return sorted({release.app for release in self.releases})


class StateDirMissing(Exception):
    """A state dir named that is not one (missing, or not a directory)."""


def read_history(state_dirs: Iterable[Path], app: str | None = None) -> History:
    """Every release the state dirs' journals tell of (of `app` alone when given), in the order they started.

    StateDirMissing for a state dir that is not a directory; a journal that cannot be read is named in
    `unreadable` and the others are read."""
    history = History()
    for state_dir in state_dirs:
        if not state_dir.is_dir():
            raise StateDirMissing(f"{state_dir}: {'not a directory' if state_dir.exists() else 'no such state dir'}")
        flag_changes = StateDir(state_dir).flags_journal
        for journal in sorted(state_dir.glob("*.jsonl")):
            if journal == flag_changes:
                continue
            try:
                release = read_release(journal)
            except JournalError as error:
                history.unreadable.append(str(error))
                continue
            if release is not None and (app is None or release.app == app):
                history.releases.append(release)
    history.releases.sort(key=lambda release: release.started_ts)
    return history


@dataclass(frozen=True)
class RollbackTimes:
    """This app's measured rollbacks, against the limit."""

    measured: tuple[float, ...]
    not_verified: int

    @classmethod
    def of(cls, releases: Sequence[PastRelease]) -> RollbackTimes:
        rollbacks = [rollback for release in releases for rollback in release.rollbacks]
        return cls(tuple(r.seconds for r in rollbacks if r.seconds is not None), sum(1 for r in rollbacks if not r.verified))

    @property
    def worst(self) -> float | None:
        return max(self.measured, default=None)

    @property
    def median(self) -> float | None:
        return statistics.median(self.measured) if self.measured else None

    def describe(self) -> str:
        """`3 measured: median 0.21s, worst 0.40s (limit 5m); 1 never verified`, or what is missing, plainly."""
        failed = f"; {self.not_verified} never verified" if self.not_verified else ""
        if not self.measured:
            return f"no past rollbacks measured{failed}"
        count = f"{len(self.measured)} measured" if len(self.measured) > 1 else "1 measured"
        return f"{count}: median {format_rollback_time(self.median or 0.0)}, worst {format_rollback_time(self.worst or 0.0)} (limit {format_duration(ROLLBACK_LIMIT_S)}){failed}"

    def to_json(self) -> dict[str, Any]:
        return {
            "measured_s": list(self.measured),
            "median_s": self.median,
            "worst_s": self.worst,
            "not_verified": self.not_verified,
            "limit_s": ROLLBACK_LIMIT_S,
        }


def history_lines(history: History) -> list[str]:
    """`brahma history` as text: per app, its releases oldest first, then its rollback times."""
    lines = []
    for app in history.apps:
        releases = history.of(app)
        outcomes: dict[str, int] = {}
        for release in releases:
            outcomes[release.outcome] = outcomes.get(release.outcome, 0) + 1
        tally = ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items())
        lines.append(f"{app}: {len(releases)} release{'s' if len(releases) != 1 else ''} ({tally})")
        for release in releases:
            actual = format_duration(release.actual_s) if release.actual_s is not None else "no stage started"
            lines.append(
                f"  {release.started_ts[:16].replace('T', ' ')}  {release.rollout}  {release.strategy}  {release.outcome}: "
                f"planned {format_duration(release.planned_s)}, actual {actual}"
            )
            lines += [f"    {line}" for line in release.went_wrong]
        lines.append(f"  time to rollback: {RollbackTimes.of(releases).describe()}")
    return lines
