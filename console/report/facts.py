"""What the journal says, gathered for the runbook: the stages and their windows, the triggers that
held, the pauses, the rollback and its breach, the gate, the flags. Read from the journal alone."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.journal import events as ev
from console.journal.evidence import by_trigger
from console.journal.journal import read_events
from console.journal.state import Phase, RolloutState
from console.narrate import console_detached, flag_change, rollback_failed, rollout_clock, spans_days, supervision_resumed, times_repeated
from console.plan.checks import Check
from console.report.judgement import SEVERITY_RANK, Limit, Moments, Tracks
from console.units import format_duration, format_metric_value

FALLBACK_JUDGED = ("error_rate", "latency_p99", "success_rate")
"""The metrics a stage's row shows when an older journal does not say what the stage judged."""
_TRIGGER_KEY = re.compile(r"^(critical|warning):(.+?)(<=|>=|<|>)([-+]?[\d.]+(?:e[-+]?\d+)?)(x?)$")
"""A streak's key in a sample (analysis.trigger_key): the trigger it counts, readable from any journal."""


@dataclass
class TriggerHold:
    """A trigger's breach condition holding on samples of one stage."""

    limit: Limit
    needed: int
    samples: int = 0
    longest: int = 0
    worst: float | None = None
    first_t: float = 0.0
    last_t: float = 0.0

    def add(self, t: float, value: float | None, streak: int) -> None:
        if not self.samples:
            self.first_t = t
        self.samples, self.last_t, self.longest = self.samples + 1, t, max(self.longest, streak)
        if value is not None and (self.worst is None or (value > self.worst) == self.limit.bounds_above):
            self.worst = value


@dataclass
class StageRecord:
    index: int
    name: str
    weight: int
    planned_s: float
    criteria: list[Check] = field(default_factory=list)
    started_t: float | None = None
    ended_t: float | None = None
    outcome: str = "not reached"
    note: str = ""
    samples: int = 0
    metrics: dict[str, Tracks] = field(default_factory=dict)
    holds: dict[str, TriggerHold] = field(default_factory=dict)

    @property
    def judged(self) -> list[str]:
        names = list(dict.fromkeys(c.metric for c in self.criteria))
        return names or [m for m in FALLBACK_JUDGED if m in self.metrics]

    def mean(self, metric: str, track: str) -> float | None:
        tracks = self.metrics.get(metric)
        return getattr(tracks, track).value if tracks else None

    def window_failures(self, metric: str) -> list[str]:
        """The criteria on `metric` the window's means did not meet."""
        canary, stable = self.mean(metric, "canary"), self.mean(metric, "stable")
        return [c.describe() for c in self.criteria if c.metric == metric and c.holds(canary, stable) is False]


@dataclass
class PauseRecord:
    t: float
    reason: str
    trigger: str
    ended: str = ""


@dataclass
class RollbackRecord:
    t: float
    reason: str
    trigger: str
    stage: StageRecord | None
    weight: int
    after_completion: bool
    sample: ev.SampleTaken | None
    """The sample that breached (or, for an operator's or a window's rollback, the last one before it)."""
    verified: ev.RollbackVerified | None = None
    duration_s: float | None = None
    failures: list[ev.Event] = field(default_factory=list)
    """rollback_failed events: the target did not read back stable serving everything."""


@dataclass
class ReportData:
    journal: Path = Path("rollout.jsonl")
    state: RolloutState = field(default_factory=RolloutState)
    started: ev.RolloutStarted | None = None
    prepared: ev.TargetPrepared | None = None
    stages: list[StageRecord] = field(default_factory=list)
    baseline: dict[str, Moments] = field(default_factory=dict)
    """Stable's values over the whole rollout: the Metrics Summary's before."""
    triggers: list[Limit] = field(default_factory=list)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    issues: list[tuple[float, str]] = field(default_factory=list)
    pauses: list[PauseRecord] = field(default_factory=list)
    rollback: RollbackRecord | None = None
    flags: list[ev.FlagChanged] = field(default_factory=list)
    preflight: dict[str, ev.PreflightResult] = field(default_factory=dict)
    gate: ev.Event | None = None
    errors: list[ev.ErrorRaised] = field(default_factory=list)
    notifications: list[ev.NotificationSent] = field(default_factory=list)
    last_command: ev.CommandIssued | None = None
    last_sample: ev.SampleTaken | None = None
    pause_sample: ev.SampleTaken | None = None
    first_ts: str = ""
    last_ts: str = ""
    percent_metrics: set[str] = field(default_factory=set)
    """Business metrics the plan declared percentages: their values are shown as percentages too."""

    def shown(self, metric: str, value: float | None) -> str:
        return format_metric_value(metric, value, metric in self.percent_metrics)

    @property
    def spans_days(self) -> bool:
        return self.started is not None and spans_days(self.started.planned_s)

    def clock(self, t: float) -> str:
        """`t` on the rollout's clock, in days for a rollout planned to last them (as the console and the timeline tell it)."""
        return rollout_clock(t, self.spans_days)

    def stage(self, index: int) -> StageRecord | None:
        return next((s for s in self.stages if s.index == index), None)

    @property
    def current(self) -> StageRecord | None:
        return self.stage(self.state.stage)

    @property
    def on_cluster(self) -> bool:
        return bool(self.prepared and "strategy" in self.prepared.before)

    @property
    def old_image(self) -> str:
        before = self.prepared.before if self.prepared else {}
        if "stable_image" in before:
            return str(before["stable_image"])
        images = before.get("images") or {}
        new = self.started.image if self.started else ""
        repository = new.rsplit(":", 1)[0]
        matching = [image for image in images.values() if str(image).rsplit(":", 1)[0] == repository]
        if matching or len(images) == 1:
            return str((matching or list(images.values()))[0])
        return ", ".join(f"{name}={image}" for name, image in images.items()) or "the running version"


def collect(journal: str | Path) -> ReportData:
    data = ReportData(journal=Path(journal))
    for event in read_events(journal):
        data.first_ts = data.first_ts or event.ts
        data.last_ts = event.ts
        _collect_event(data, event)  # before the fold takes it: the state says what was so until then
        data.state.apply(event)
    return data


def _checks(entries: Any) -> list[Check]:
    checks = []
    for entry in entries or ():
        try:
            checks.append(Check(**{k: entry[k] for k in ("metric", "op", "value", "relative", "consecutive", "percent") if k in entry}))
        except (TypeError, KeyError):
            continue  # a shape this report does not know: left out, not guessed
    return checks


def _started(data: ReportData, event: ev.RolloutStarted) -> None:
    data.started = event
    data.stages = [
        StageRecord(i, s.get("name") or f"stage {i + 1}", int(s.get("weight", 0)), float(s.get("observe_s", 0)), _checks(s.get("criteria")))
        for i, s in enumerate(event.stages)
    ]
    for entry in event.triggers:
        for check in _checks([entry]):
            data.triggers.append(Limit(check, entry.get("severity", "warning")))
    limits = [c for stage in data.stages for c in stage.criteria] + [limit.check for limit in data.triggers]
    data.percent_metrics = {check.metric for check in limits if check.percent}


def _close_current(data: ReportData, t: float, outcome: str, note: str = "") -> None:
    stage = data.current
    if stage is not None and stage.started_t is not None and stage.ended_t is None:
        stage.ended_t, stage.outcome, stage.note = t, outcome, note


def _stage_started(data: ReportData, event: ev.StageStarted) -> None:
    current, command = data.current, data.last_command
    by = f" by {command.actor}" if command else ""
    if current is not None and current.ended_t is None and current.started_t is not None:
        observed = format_duration(event.t - current.started_t)
        _close_current(data, event.t, "skipped", f"promoted{by} after {observed} of {format_duration(current.planned_s)}")
    elif current is not None and current.outcome == "passed" and command and command.command.startswith("promote"):
        current.note = f"promoted{by}"
    for skipped in data.stages:
        if data.state.stage < skipped.index < event.stage and skipped.started_t is None:
            skipped.outcome, skipped.note = "skipped", f"jumped over by promote-full{by}"
    stage = data.stage(event.stage)
    if stage is None:  # a journal whose rollout_started listed fewer stages
        stage = StageRecord(event.stage, event.stage_name, event.weight, event.observe_s)
        data.stages.append(stage)
    stage.started_t, stage.outcome, stage.planned_s = event.t, "running", event.observe_s
    data.timeline.append((event.t, event.ts, f"{event.stage_name} started at {event.weight}%"))


def _sample(data: ReportData, event: ev.SampleTaken) -> None:
    data.last_sample = event
    for metric, values in event.metrics.items():
        data.baseline.setdefault(metric, Moments()).add(values.get("stable"))
    stage = data.stage(event.stage)
    if stage is None:
        return
    stage.samples += 1
    for metric, values in event.metrics.items():
        tracks = stage.metrics.setdefault(metric, Tracks())
        tracks.canary.add(values.get("canary"))
        tracks.stable.add(values.get("stable"))
    for key, streak, limit in held_on(data, event):
        hold = stage.holds.setdefault(key, TriggerHold(limit, limit.check.consecutive))
        hold.add(event.t, (event.metrics.get(limit.check.metric) or {}).get("canary"), streak)


def held_on(data: ReportData, sample: ev.SampleTaken) -> list[tuple[str, int, Limit]]:
    """The triggers whose breach condition held on `sample` (streak key, breaches in a row, the trigger),
    most severe first.

    A streak counts on while its trigger holds and is dropped once it clears; a trigger that could not
    be judged (its metric had no usable value) keeps its old count, so it held only if its metric was judged.
    """
    held = []
    for key, streak in sample.streaks.items():
        match = _TRIGGER_KEY.match(key)
        if not match or streak < 1 or match.group(2) in sample.inconclusive:
            continue
        severity, metric, op, value, relative = match.groups()
        held.append((key, streak, _journaled_trigger(data, Limit(Check(metric, op, float(value), relative=bool(relative)), severity))))
    return sorted(held, key=lambda h: SEVERITY_RANK[h[2].kind])


def _journaled_trigger(data: ReportData, parsed: Limit) -> Limit:
    """The plan's trigger the key names (with its consecutive count), or the key's own reading of it."""
    for limit in data.triggers:
        check, other = limit.check, parsed.check
        if (limit.kind, check.metric, check.op, check.relative) == (parsed.kind, other.metric, other.op, other.relative) and math.isclose(
            check.value, other.value, rel_tol=1e-5
        ):
            return limit
    return parsed


def _rollback_started(data: ReportData, event: ev.RollbackStarted) -> None:
    state = data.state
    stage = data.current if state.phase != Phase.COMPLETED else None
    if state.phase == Phase.PAUSED and data.pause_sample is not None and event.reason.startswith("paused"):
        sample = data.pause_sample  # a pause that timed out: the breach is the one that paused it
    else:
        sample = data.last_sample if state.stage >= 0 else None
    data.rollback = RollbackRecord(event.t, event.reason, event.trigger, stage, state.weight, state.phase == Phase.COMPLETED, sample)
    _close_current(data, event.t, "rolled back")
    data.timeline.append((event.t, event.ts, f"rollback started{by_trigger(event.trigger)}: {event.reason}"))
    data.issues.append((event.t, f"Rollback started{by_trigger(event.trigger)}: {event.reason}"))
    if data.pauses and not data.pauses[-1].ended:
        waited = format_duration(event.t - data.pauses[-1].t)
        data.pauses[-1].ended = f"rolled back after {waited} paused" if event.trigger != "operator" else f"rolled back by hand after {waited}"


def _rollback_failed(data: ReportData, event: ev.RollbackFailed) -> None:
    """The target did not read back stable serving all: the rollback stays open."""
    text = f"Rollback NOT verified: {rollback_failed(event)}"
    if data.rollback is not None:
        data.rollback.failures.append(event)
    data.timeline.append((event.t, event.ts, text[0].lower() + text[1:]))
    data.issues.append((event.t, text))


def _collect_event(data: ReportData, event: ev.Event) -> None:
    match event:
        case ev.RollbackFailed():
            _rollback_failed(data, event)
        case ev.RolloutStarted():
            _started(data, event)
        case ev.PreflightResult():
            data.preflight.pop(event.item, None)
            data.preflight[event.item] = event  # each item once, in the order of its last result
        case ev.PreflightPassed():
            data.gate = event
        case ev.PreflightFailed():
            data.gate = event
            data.issues.append((event.t, f"Pre-flight gate failed: {', '.join(event.failed)}"))
        case ev.TargetPrepared():
            data.prepared = event
        case ev.StageStarted():
            _stage_started(data, event)
        case ev.TrafficShifted() if event.waited_s:
            data.timeline.append((event.t, event.ts, f"{event.weight}% in place after {format_duration(event.waited_s)} (the window started then)"))
        case ev.SampleTaken():
            _sample(data, event)
        case ev.StagePassed():
            stage = data.stage(event.stage)
            if stage is not None:
                stage.ended_t, stage.outcome = event.t, "passed"
            data.timeline.append((event.t, event.ts, f"{stage.name if stage else f'stage {event.stage + 1}'} passed"))
        case ev.AwaitingPromote():
            stage = data.stage(event.stage)
            data.timeline.append((event.t, event.ts, f"{stage.name if stage else f'stage {event.stage + 1}'} held: waiting for a promote"))
        case ev.Paused():
            data.pause_sample = data.last_sample
            data.pauses.append(PauseRecord(event.t, event.reason, event.trigger or "operator"))
            data.timeline.append((event.t, event.ts, f"paused: {event.reason}"))
        case ev.Resumed():
            if data.pauses and not data.pauses[-1].ended:
                data.pauses[-1].ended = f"resumed after {format_duration(event.t - data.pauses[-1].t)}"
            data.timeline.append((event.t, event.ts, "resumed (the window started again)"))
        case ev.SupervisionResumed():
            data.timeline.append((event.t, event.ts, supervision_resumed(event)))
            if event.window_restarted:
                data.issues.append((event.t, f"Unsupervised for {format_duration(event.unwatched_s)}: the stage's window started again"))
        case ev.ConsoleDetached() if event.consoles == 0 and not event.watch_only:
            data.timeline.append((event.t, event.ts, console_detached(event)))
        case ev.ConsoleAttached() if data.state.alone_since is not None and not event.watch_only:
            since = data.clock(data.state.alone_since.t)
            data.timeline.append((event.t, event.ts, f"{event.actor} attached; no console that may act had been since `{since}`"))
        case ev.RollbackStarted():
            _rollback_started(data, event)
        case ev.RollbackVerified():
            if data.rollback is not None:
                data.rollback.verified = event
            data.timeline.append((event.t, event.ts, f"rollback verified: {event.detail}"))
            if not event.healthy:
                data.issues.append((event.t, f"Stable not verified healthy after the rollback: {event.detail}"))
        case ev.RolledBack():
            if data.rollback is not None:
                data.rollback.duration_s = event.duration_s
            read_back = f" (read back: {event.read_back})" if event.read_back else ""
            data.timeline.append((event.t, event.ts, f"rolled back in {event.duration_s:.3f}s{read_back}"))
        case ev.Completed():
            current = data.current
            if current is not None and current.ended_t is None:
                _close_current(
                    data,
                    event.t,
                    "skipped",
                    f"promoted{_by(data.last_command)} after {format_duration(event.t - (current.started_t or 0))} of {format_duration(current.planned_s)}",
                )
            data.timeline.append((event.t, event.ts, "completed"))
        case ev.CommandIssued():
            data.last_command = event
            about = f' of "{event.argument}"' if event.argument else ""
            data.timeline.append((event.t, event.ts, f"{event.command}{about} by {event.actor}"))
        case ev.FlagChanged():
            data.flags.append(event)
            data.timeline.append((event.t, event.ts, f"flag {event.flag}: {flag_change(event.old, event.new)} by {event.actor}"))
        case ev.NotificationSent():
            data.notifications.append(event)
        case ev.ErrorRaised():
            data.errors.append(event)
            data.timeline.append((event.t, event.ts, f"error in {event.where}{times_repeated(event)}: {event.message}"))
            data.issues.append((event.t, f"Error in {event.where}{times_repeated(event)}: {event.message}"))
        case ev.DriftDetected():
            changes = "; ".join(event.changes)
            data.timeline.append((event.t, event.ts, f"the target changed beside the release: {changes}"))
            data.issues.append((event.t, f"Drift ({len(event.changes)} change{'' if len(event.changes) == 1 else 's'} beside the release): {changes}"))
        case ev.DriftResolved():
            data.timeline.append((event.t, event.ts, "drift resolved: the target is as the release left it"))


def _by(command: ev.CommandIssued | None) -> str:
    return f" by {command.actor}" if command else ""


def trigger_limit(data: ReportData, rollback: RollbackRecord) -> Limit | None:
    """The limit behind a metric's rollback: the most severe one that held on the breaching sample."""
    held = held_on(data, rollback.sample) if rollback.sample else []
    return next((limit for _, _, limit in held if limit.check.metric == rollback.trigger), None)


def final_flags(data: ReportData) -> dict[str, dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    for change in data.flags:
        final[change.flag] = change.new
    return final


def held_without_acting(data: ReportData) -> list[tuple[float, str]]:
    """Triggers that held on samples but never often enough in a row to act (a warning that fired and
    did not pause: a flapping new version), one line per trigger across the stages.

    A trigger that acted is told by its pause or rollback; one that held only on the sample a rollback
    was decided on adds nothing to it.
    """
    grouped: dict[Limit, list[tuple[StageRecord, TriggerHold]]] = {}
    for stage in data.stages:
        for hold in stage.holds.values():
            grouped.setdefault(hold.limit, []).append((stage, hold))
    decided_t = data.rollback.t if data.rollback else None
    said = []
    for limit, holds in grouped.items():
        needed = max(limit.check.consecutive, 1)
        if max(h.longest for _, h in holds) >= needed or all(h.first_t == h.last_t == decided_t for _, h in holds):
            continue
        samples = sum(h.samples for _, h in holds)
        worst_values = [h.worst for _, h in holds if h.worst is not None]
        worst = (max if limit.bounds_above else min)(worst_values) if worst_values else None
        stages = ", ".join(stage.name for stage, _ in holds)
        first, last = holds[0][1].first_t, holds[-1][1].last_t
        span = f"at `{data.clock(first)}`" if samples == 1 else f"from `{data.clock(first)}` to `{data.clock(last)}`"
        kind = "Warning" if limit.kind == "warning" else "Critical trigger"
        said.append(
            (
                first,
                f"{kind} {limit.check.metric} {limit.check.describe()} fired on {samples} sample{'s' if samples != 1 else ''} "
                f"{span} ({stages}), up to {data.shown(limit.check.metric, worst)}; "
                f"never {needed} in a row, so it did not {'roll back' if limit.kind == 'critical' else 'pause'}",
            )
        )
    return said
