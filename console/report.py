"""The runbook: a Markdown report built from the journal alone, never from memory.

It is what a person reads first after an incident, so it opens with three lines (what was
released, what happened and why, the state now), then what a rollback was about, then the
reference runbook's sections. It reads as plain text in a terminal and renders on GitHub.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from console.atomic import atomic_write
from console.controller import events as ev
from console.controller.journal import read_events
from console.controller.state import RolloutState
from console.narrate import flag_change, flag_state, rollout_clock, supervision_resumed
from console.plan.checks import Check
from console.redact import redact
from console.units import format_duration, format_metric_value

WIDTH = 100
"""Prose is wrapped here; commands sit in code blocks, whole, to be copied."""
SUMMARY_WIDTH = 120
"""The three opening lines stay one line each, shortened past this."""

# Without limits to tell, for these a higher value is worse; for the rest (success_rate, throughput) a lower one.
HIGHER_IS_WORSE = {"error_rate", "latency_p50", "latency_p95", "latency_p99", "cpu", "memory", "health_check_failures", "memory_oom_kills"}
FALLBACK_JUDGED = ("error_rate", "latency_p99", "success_rate")
"""The metrics a stage's row shows when an older journal does not say what the stage judged."""

SIGNIFICANCE_Z = 3.0
"""A difference larger than this many standard errors is not noise."""
HEADROOM_SHARE = 0.5
"""With a limit, the new version is materially worse once past this share of the way from stable's value to it."""
TOLERANCE = 0.20
"""With no limit, it is materially worse when worse than stable by more than this share."""
MIN_COVERAGE = 0.8
"""Share of the window's samples that must have had a value for its mean to be judged (the plan's default)."""
STATUS_RULE = (
    f"A metric is regressed when it breached a limit in that window (a trigger on any sample, or "
    f"the stage's criterion on the window's mean), or when it is both significantly worse than "
    f"stable (by more than {SIGNIFICANCE_Z:g} standard errors) and materially worse (past "
    f"{HEADROOM_SHARE:.0%} of the way from stable's value to its nearest limit; with no limit, more "
    f"than {TOLERANCE:.0%} worse). Otherwise it is ok (within limits, when stable had no data to compare "
    f"with); no data when fewer than {MIN_COVERAGE:.0%} of the window's samples had a value."
)

ROLLBACK_METHODS = {
    "canary": "traffic back to stable (canary weight 0, stable image restored)",
    "blue-green": "active selector switched back to blue",
    "rolling": "undo to the previous revision",
}
SEVERITY_RANK = {"critical": 0, "warning": 1, "criterion": 2}
_TRIGGER_KEY = re.compile(r"^(critical|warning):(.+?)(<=|>=|<|>)([-+]?[\d.]+(?:e[-+]?\d+)?)(x?)$")
"""A streak's key in a sample (analysis.trigger_key): the trigger it counts, readable from any journal."""


# --- statistics and judgement ------------------------------------------------------------------


@dataclass
class Moments:
    """Count, mean and spread of a series, one value at a time (Welford), in constant memory."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def value(self) -> float | None:
        return self.mean if self.count else None

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1) / self.count) if self.count > 1 else 0.0


@dataclass
class Tracks:
    canary: Moments = field(default_factory=Moments)
    stable: Moments = field(default_factory=Moments)


@dataclass(frozen=True)
class Limit:
    """A check and where it comes from: a critical or warning trigger, or a stage's criterion."""

    check: Check
    kind: str

    @property
    def bounds_above(self) -> bool:
        """True when it caps the metric (a higher value is worse)."""
        caps = self.check.op in ("<", "<=")
        return caps if self.kind == "criterion" else not caps

    def describe(self, in_a_row: bool = True) -> str:
        """What the limit does, so a trigger is never read as a goal: "rolls back if > 1%", "must be < 0.5%"."""
        if self.kind == "criterion":
            return f"must be {self.check.describe()}"
        action = "rolls back" if self.kind == "critical" else "pauses"
        count = f" on {self.check.consecutive} samples in a row" if in_a_row and self.check.consecutive > 1 else ""
        return f"{action} if {self.check.describe()}{count}"


@dataclass(frozen=True)
class Verdict:
    status: str
    """regressed, ok, within limits (no stable to compare), no baseline, or no data."""
    why: str = ""

    def __str__(self) -> str:
        return f"{self.status}: {self.why}" if self.why else self.status


def higher_is_worse(metric: str, limits: list[Limit]) -> bool:
    own = [limit for limit in limits if limit.check.metric == metric]
    return own[0].bounds_above if own else metric in HIGHER_IS_WORSE


def nearest_bound(metric: str, limits: list[Limit], stable: float | None) -> tuple[float, Limit] | None:
    """The limit the new version would reach first going the worse way, and its value."""
    worse_up = higher_is_worse(metric, limits)
    bounds = [
        (value, limit) for limit in limits
        if limit.check.metric == metric and limit.bounds_above == worse_up
        and (value := limit.check.limit(stable)) is not None
    ]
    if not bounds:
        return None
    return min(bounds, key=lambda b: b[0]) if worse_up else max(bounds, key=lambda b: b[0])


def judge_metric(metric: str, before: Moments, after: Moments, limits: list[Limit], breached: list[str], samples: int) -> Verdict:
    """The Metrics Summary's status (see STATUS_RULE): limits first, then stable, never on relative change alone.

    `breached` says how the new version broke a limit in the window, most severe first; `samples` is
    how many the window took (a mean over a few of them is no evidence).
    """
    if breached:
        return Verdict("regressed", breached[0])
    if after.value is None:
        return Verdict("no data")
    if after.count < MIN_COVERAGE * samples:
        return Verdict("no data", f"{after.count} of {samples} samples had a value")
    if before.value is None:
        # Nothing to compare with (a rolling update replaces every pod): the limits alone can speak.
        return Verdict("within limits", "no stable to compare") if nearest_bound(metric, limits, None) else Verdict("no baseline")
    worse_by = after.value - before.value if higher_is_worse(metric, limits) else before.value - after.value
    spread = math.hypot(after.standard_error, before.standard_error)
    significant = worse_by > 0 and (spread == 0 or worse_by > SIGNIFICANCE_Z * spread)
    nearest = nearest_bound(metric, limits, before.value)
    if nearest is not None:
        room = abs(nearest[0] - before.value)
        material = worse_by > HEADROOM_SHARE * room
        why = f"worse than stable, past {HEADROOM_SHARE:.0%} of the way to {nearest[1].check.describe()}"
    else:
        material = worse_by > TOLERANCE * abs(before.value)
        why = f"worse than stable by more than {TOLERANCE:.0%}"
    return Verdict("regressed", why) if significant and material else Verdict("ok")


def relative_change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "—"
    if before == 0:
        return "±0" if after == 0 else "new"
    return f"{(after - before) / abs(before):+.1%}"


# --- what the journal says, gathered ----------------------------------------------------------


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
            checks.append(Check(**{k: entry[k] for k in ("metric", "op", "value", "relative", "consecutive") if k in entry}))
        except (TypeError, KeyError):
            continue  # a shape this report does not know: left out, not guessed
    return checks


def _trigger_from_key(key: str) -> tuple[Limit, int] | None:
    match = _TRIGGER_KEY.match(key)
    if not match:
        return None
    severity, metric, op, value, relative = match.groups()
    return Limit(Check(metric, op, float(value), relative=bool(relative)), severity), 0


def _started(data: ReportData, event: ev.RolloutStarted) -> None:
    data.started = event
    data.stages = [
        StageRecord(i, s.get("name") or f"stage {i + 1}", int(s.get("weight", 0)), float(s.get("observe_s", 0)), _checks(s.get("criteria")))
        for i, s in enumerate(event.stages)
    ]
    for entry in event.triggers:
        for check in _checks([entry]):
            data.triggers.append(Limit(check, entry.get("severity", "warning")))


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
    for key, streak in event.streaks.items():
        known = _trigger_from_key(key)
        if known is None or streak < 1 or known[0].check.metric in event.inconclusive:
            continue  # held only when judged: a trigger that could not be judged keeps its old count
        limit = _journaled_trigger(data, known[0])
        hold = stage.holds.setdefault(key, TriggerHold(limit, limit.check.consecutive))
        hold.add(event.t, (event.metrics.get(limit.check.metric) or {}).get("canary"), streak)


def _journaled_trigger(data: ReportData, parsed: Limit) -> Limit:
    """The plan's trigger the key names (with its consecutive count), or the key's own reading of it."""
    for limit in data.triggers:
        check, other = limit.check, parsed.check
        if (limit.kind, check.metric, check.op, check.relative) == (parsed.kind, other.metric, other.op, other.relative) and math.isclose(check.value, other.value, rel_tol=1e-5):
            return limit
    return parsed


def _rollback_started(data: ReportData, event: ev.RollbackStarted) -> None:
    state = data.state
    stage = data.current if state.phase != "completed" else None
    if state.phase == "paused" and data.pause_sample is not None:
        sample = data.pause_sample  # a pause that timed out: the breach is the one that paused it
    else:
        sample = data.last_sample if state.stage >= 0 else None
    data.rollback = RollbackRecord(event.t, event.reason, event.trigger, stage, state.weight, state.phase == "completed", sample)
    _close_current(data, event.t, "rolled back")
    data.timeline.append((event.t, event.ts, f"rollback started ({event.trigger}): {event.reason}"))
    data.issues.append((event.t, f"Rolled back ({event.trigger}): {event.reason}"))
    if data.pauses and not data.pauses[-1].ended:
        waited = format_duration(event.t - data.pauses[-1].t)
        data.pauses[-1].ended = f"rolled back after {waited} paused" if event.trigger != "operator" else f"rolled back by hand after {waited}"


def _rollback_failed(data: ReportData, event: ev.Event) -> None:
    """`rollback_failed` (reason or detail, attempts, since_s): the target did not read back stable serving all."""
    why = getattr(event, "reason", "") or getattr(event, "detail", "") or "the target did not read back stable serving all traffic"
    attempts, since = getattr(event, "attempts", None), getattr(event, "since_s", None)
    how = ", ".join(filter(None, (f"{attempts} attempts" if attempts else "", f"{format_duration(since)} since it began" if since is not None else "")))
    text = f"Rollback NOT verified ({how}): {why}" if how else f"Rollback NOT verified: {why}"
    if data.rollback is not None:
        data.rollback.failures.append(event)
    data.timeline.append((event.t, event.ts, text[0].lower() + text[1:]))
    data.issues.append((event.t, text))


def _collect_event(data: ReportData, event: ev.Event) -> None:
    if event.name == "rollback_failed":  # journaled by newer controllers; read by name, field by field
        _rollback_failed(data, event)
        return
    match event:
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
            data.timeline.append((event.t, event.ts, f"rolled back in {event.duration_s:.3f}s"))
        case ev.Completed():
            current = data.current
            if current is not None and current.ended_t is None:
                _close_current(data, event.t, "skipped", f"promoted{_by(data.last_command)} after {format_duration(event.t - (current.started_t or 0))} of {format_duration(current.planned_s)}")
            data.timeline.append((event.t, event.ts, "completed"))
        case ev.CommandIssued():
            data.last_command = event
            data.timeline.append((event.t, event.ts, f"{event.command} by {event.actor}"))
        case ev.FlagChanged():
            data.flags.append(event)
            data.timeline.append((event.t, event.ts, f"flag {event.flag}: {flag_change(event.old, event.new)} by {event.actor}"))
        case ev.NotificationSent():
            data.notifications.append(event)
        case ev.ErrorRaised():
            data.errors.append(event)
            data.timeline.append((event.t, event.ts, f"error in {event.where}: {event.message}"))
            data.issues.append((event.t, f"Error in {event.where}: {event.message}"))


def _by(command: ev.CommandIssued | None) -> str:
    return f" by {command.actor}" if command else ""


# --- Markdown that reads as plain text ---------------------------------------------------------


def plain(value: Any) -> str:
    """A journal value as a person reads it: never a Python repr."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return "; ".join(plain(v) for v in value) or "—"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table whose columns line up in a terminal (cells padded to their column's width)."""
    cells = [[_cell(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return [line.rstrip() for line in lines]


def bullet(text: str, mark: str = "-") -> list[str]:
    lead = f"{mark} "
    return textwrap.wrap(text, WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead), break_long_words=False, break_on_hyphens=False) or [lead.rstrip()]


def paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def code_block(commands: list[str]) -> list[str]:
    return ["```sh", *commands, "```"]


def wall(ts: str) -> str:
    """The wall time of an event, HH:MM:SS (the date is given once, in Changes)."""
    try:
        return datetime.fromisoformat(ts).strftime("%H:%M:%S")
    except ValueError:
        return ts or "—"


def _wall_span(first: str, last: str) -> str:
    try:
        start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
    except ValueError:
        return f"{first} → {last}"
    zone = start.strftime("%Z") or ""
    shown_end = end.strftime("%H:%M:%S") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M:%S")
    return f"{start:%Y-%m-%d %H:%M:%S} → {shown_end} {zone}".rstrip()


def _versions(old: str, new: str) -> str:
    """`registry/app:1.0 → :1.1` when both share a repository, the two images otherwise."""
    old_repo, _, old_tag = old.rpartition(":")
    new_repo, _, new_tag = new.rpartition(":")
    if old_repo and old_repo == new_repo and "/" not in old_tag + new_tag:
        return f"{old} → :{new_tag}"
    return f"{old} → {new}"


def _first_part(reason: str) -> str:
    """The first breach of a reason that lists several, naming the others."""
    parts = reason.split("; ")
    others = [p.split(" ", 1)[0] for p in parts[1:]]
    return parts[0] + (f", with {', '.join(others)}" if others else "")


def _final_flags(data: ReportData) -> dict[str, dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    for change in data.flags:
        final[change.flag] = change.new
    return final


def _flags_now(data: ReportData) -> str:
    final = _final_flags(data)
    planned = [f.get("name") for f in data.started.flags] if data.started else []
    names = list(dict.fromkeys([*planned, *final]))
    if not names:
        return "no flags"
    if all(name in final and not final[name].get("enabled") for name in names):
        return f"flags off ({', '.join(names)})"
    return "flags: " + ", ".join(f"{name} {flag_state(final[name]) if name in final else 'unchanged'}" for name in names)


# --- the sections ------------------------------------------------------------------------------


def render(data: ReportData) -> str:
    lines: list[str] = []
    for section in (_summary, _rollback_section, _changes, _validation, _timeline, _metrics_summary,
                    _feature_flags, _notifications, _issues, _rollback_plan, _post_deployment):
        lines += section(data)
    return "\n".join(lines).rstrip() + "\n"


def _outcome_word(state: RolloutState) -> str:
    return {
        "completed": "completed",
        "rolled_back": "rolled back",
        "gate_failed": "stopped at the pre-flight gate",
        "rolling_back": "ROLLBACK NOT VERIFIED",
    }.get(state.phase, f"unfinished ({state.phase.replace('_', ' ')})")


def _summary(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    title = started.rollout if started else "unknown rollout"
    lines = [f"# Release {title}: {_outcome_word(state)}", ""]
    if started is None:
        return lines + ["The journal has no rollout_started line: it is not a whole rollout's journal.", ""]
    versions = _versions(data.old_image, started.image) if data.prepared else f"{started.image} (nothing was changed)" if state.phase == "gate_failed" else started.image
    # A blue-green release's stages say more by name (preview, switch) than by weight alone.
    weights = " → ".join(f"{s.name} {s.weight}%" if started.strategy == "blue-green" else f"{s.weight}%" for s in data.stages)
    released = f"- Released: {started.app} {versions}, {started.strategy} {weights}".rstrip()
    if len(released) > SUMMARY_WIDTH:  # the images are never cut: the stages are in the Timeline
        released = f"- Released: {started.app} {versions}, {started.strategy} in {len(data.stages)} stages"
    lines.append(released)
    # One line each, whatever their length: the sections below say the rest in full.
    lines.append(textwrap.shorten(f"- Happened: {_what_happened(data)}", SUMMARY_WIDTH, placeholder=" …"))
    lines.append(textwrap.shorten(f"- Now: {_state_now(data)}", SUMMARY_WIDTH, placeholder=" …"))
    return lines + [""]


def _stage_phrase(stage: StageRecord | None, t: float) -> str:
    if stage is None or stage.started_t is None:
        return "before any stage"
    return f"{format_duration(t - stage.started_t)} into {stage.name} at {stage.weight}%"


def _what_happened(data: ReportData) -> str:
    state, rollback = data.state, data.rollback
    last = data.stages[-1] if data.stages else None
    if rollback is not None and state.phase in ("rolled_back", "rolling_back"):
        verb = "rolled back" if state.phase == "rolled_back" else "rolling back (not verified)"
        if rollback.after_completion:
            return f"completed, then {verb} at {rollout_clock(rollback.t)}: {_why_short(data, rollback)}"
        if rollback.stage is None:
            return f"{verb} before any change: {rollback.reason}"
        return f"{verb} {_stage_phrase(rollback.stage, rollback.t)}: {_why_short(data, rollback)}"
    if state.phase == "completed":
        actual = format_duration(last.ended_t or 0) if last else "0s"
        planned = format_duration(data.started.planned_s) if data.started else "?"
        skipped = [s for s in data.stages if s.outcome == "skipped"]
        said = f"promoted to 100% in {actual}" + (" as planned" if actual == planned else f" (planned {planned})")
        said += f"; {len(skipped)} stage{'s' if len(skipped) != 1 else ''} skipped by promote" if skipped else "; every window held"
        fired = held_without_acting(data)
        return said + (f"; {len(fired)} trigger{'s' if len(fired) != 1 else ''} fired without acting (Issues)" if fired else "")
    if state.phase == "gate_failed":
        failed = [r.item for r in data.preflight.values() if r.required and r.status != "pass"]
        return f"stopped at the pre-flight gate: {len(failed)} required item{'s' if len(failed) != 1 else ''} did not pass ({_few(failed)})"
    stage = data.current
    if state.phase == "paused":
        return f"paused {_stage_phrase(stage, state.paused_t)}: {state.paused_reason}"
    if state.phase == "awaiting_promote":
        return f"{stage.name if stage else 'a stage'} held its window and waits for a promote"
    if state.phase == "running" and stage is not None:
        return f"running, {_stage_phrase(stage, state.last_t)} (journal ends at {rollout_clock(state.last_t)})"
    return "the pre-flight gate had not finished when the journal ends"


def _why_short(data: ReportData, rollback: RollbackRecord) -> str:
    """The rollback's reason in a few words: the breach and its value, and whether a pause went undecided."""
    limit, sample = _trigger_limit(data, rollback), rollback.sample
    pause = data.pauses[-1] if data.pauses and rollback.reason.startswith("paused") else None
    if limit is not None and sample is not None:
        value = (sample.metrics.get(limit.check.metric) or {}).get("canary")
        why = f"{limit.check.metric} {format_metric_value(limit.check.metric, value)} {limit.check.describe()} ({limit.kind})"
        others = [part.split(" ", 1)[0] for part in rollback.reason.split("; ")[1:]]
        why += f", with {', '.join(others)}" if others and not pause else ""
    elif rollback.trigger == "inconclusive" and sample is not None:
        why = f"no data: {'; '.join(sample.errors) or 'the source returned nothing'}"
    else:
        return _first_part(rollback.reason)
    return f"{why}, then paused {format_duration(rollback.t - pause.t)} undecided" if pause else why


def _few(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _state_now(data: ReportData) -> str:
    state, rollback, flags = data.state, data.rollback, _flags_now(data)
    if state.phase == "rolling_back":
        return "ROLLBACK NOT VERIFIED: the new version may still serve traffic (see Rollback Plan)"
    if state.phase == "rolled_back":
        verified = rollback.verified if rollback else None
        if rollback is not None and rollback.stage is None and not rollback.after_completion:
            return f"nothing was changed: the running version serves as before; {flags}"
        check = "verified" if verified and verified.healthy else f"not verified healthy: {verified.detail}" if verified else "not verified"
        return f"stable serves 100% on {data.old_image} ({check}); {flags}"
    if state.phase == "completed":
        return f"the new version serves 100% on {data.started.image if data.started else '?'}; {flags}"
    if state.phase == "gate_failed":
        return f"nothing was changed: the running version serves as before; {flags}"
    if state.active:
        return f"UNFINISHED: the new version serves {state.weight}%; a person decides (see Rollback Plan); {flags}"
    return f"nothing has changed yet; {flags}"


def _rollback_section(data: ReportData) -> list[str]:
    rollback = data.rollback
    if rollback is None or data.state.phase not in ("rolled_back", "rolling_back"):
        return []
    lines = ["## Why it was rolled back", ""]
    when = "after the release had completed" if rollback.after_completion else _stage_phrase(rollback.stage, rollback.t)
    lines += bullet(f"Decision at `{rollout_clock(rollback.t)}`, {when}: {rollback.reason}")
    lines += bullet(f"Trigger: {_trigger_text(data, rollback)}")
    lines += _breach_sample(data, rollback)
    if data.state.phase == "rolling_back":
        failures = len(rollback.failures)
        lines += bullet(
            "NOT VERIFIED: the target has not read back stable serving all traffic"
            + (f" ({failures} failed check{'s' if failures != 1 else ''}, see Issues)" if failures else "")
            + "; the new version may still serve traffic. See Rollback Plan for what to do now."
        )
    else:
        if rollback.duration_s is not None:
            lines += bullet(f"Time to rollback: {rollback.duration_s:.3f}s of Brahma's own time from the decision to stable serving 100%")
        if rollback.verified is not None:
            lines += bullet(f"Stable {'verified' if rollback.verified.healthy else 'NOT verified healthy'}: {rollback.verified.detail}")
    switched = [f.flag for f in data.flags if f.t >= rollback.t and f.old.get("enabled") and not f.new.get("enabled")]
    if switched:
        lines += bullet(f"Flags switched off: {', '.join(dict.fromkeys(switched))}")
    return lines + [""]


def _trigger_text(data: ReportData, rollback: RollbackRecord) -> str:
    if rollback.trigger == "operator":
        return "an operator's rollback"
    limit = _trigger_limit(data, rollback)
    if limit is None:
        return {"inconclusive": "inconclusive samples (no usable data), then a pause nobody decided"}.get(rollback.trigger, rollback.trigger)
    check, n = limit.check, max(limit.check.consecutive, 1)
    if limit.kind == "critical":
        acts = "any one sample past it rolls back" if n == 1 else f"{n} samples in a row roll back"
    elif limit.kind == "warning":
        acts = "a sample past it pauses the rollout" if n == 1 else f"{n} samples in a row past it pause the rollout"
    else:
        acts = "the stage's criterion"
    undecided = "; the pause went undecided past pause_timeout" if data.pauses and rollback.reason.startswith("paused") else ""
    return f"{check.metric} {check.describe()}, {limit.kind}: {acts}{undecided}"


def _trigger_limit(data: ReportData, rollback: RollbackRecord) -> Limit | None:
    """The limit behind a metric's rollback: the most severe one that held on the breaching sample."""
    sample = rollback.sample
    held = [_journaled_trigger(data, known[0]) for key, n in (sample.streaks.items() if sample else ()) if n and (known := _trigger_from_key(key))]
    mine = sorted((limit for limit in held if limit.check.metric == rollback.trigger), key=lambda limit: SEVERITY_RANK[limit.kind])
    return mine[0] if mine else None


def _breach_sample(data: ReportData, rollback: RollbackRecord) -> list[str]:
    sample = rollback.sample
    if sample is None:
        return []
    held: dict[str, list[Limit]] = {}
    for key, streak in sample.streaks.items():
        known = _trigger_from_key(key)
        if known and streak and known[0].check.metric not in sample.inconclusive:
            limit = _journaled_trigger(data, known[0])
            held.setdefault(limit.check.metric, []).append(limit)
    stage = data.stage(sample.stage)
    criteria = stage.criteria if stage else []
    breached = list(dict.fromkeys(sample.breaches))
    metrics = breached or ([rollback.trigger] if rollback.trigger in sample.metrics else stage.judged if stage else [])
    which = "The sample that breached" if breached else "The last sample before it"
    rows = []
    for metric in metrics:
        values = sample.metrics.get(metric) or {}
        canary, stable = values.get("canary"), values.get("stable")
        failed = [Limit(c, "criterion") for c in criteria if c.metric == metric and c.holds(canary, stable) is False]
        limits = sorted(held.get(metric, []) + failed, key=lambda limit: SEVERITY_RANK[limit.kind])
        rows.append([metric, format_metric_value(metric, canary), format_metric_value(metric, stable), "; ".join(limit.describe() for limit in limits) or "none"])
    lines = bullet(f"{which}, at `{rollout_clock(sample.t)}`" + (f" ({'; '.join(sample.errors)})" if sample.errors else "") + ":")
    return lines + [""] + table(["metric", "new version", "stable", "limits it broke"], rows) + [""]


def _changes(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    lines = ["## Changes", ""]
    if started is None:
        return lines + ["Unknown: the journal does not say what was released.", ""]
    old = data.old_image if data.prepared else "the running version (not read: the target was not prepared)"
    lines += bullet(f"Version: {old} → {started.image}")
    stages = " → ".join(f"{s.weight}% for {format_duration(s.planned_s)}" for s in data.stages)
    lines += bullet(f"Strategy: {started.strategy}, {len(data.stages)} stage{'s' if len(data.stages) != 1 else ''}: {stages}")
    last = max((s.ended_t or s.started_t or 0.0 for s in data.stages), default=0.0)
    if not state.finished:
        last = max(last, state.last_t)
    lines += bullet(f"Duration: planned {format_duration(started.planned_s)}, actual {format_duration(last)}")
    supervision = {True: ", headless (a pause with no decision rolls back)", False: ", at a console", None: ""}[started.headless]
    lines += bullet(f"Plan: `{started.plan}`, started by {started.actor}{supervision}")
    if data.first_ts:
        lines += bullet(f"Wall time: {_wall_span(data.first_ts, data.last_ts)}")
    lines.append("")
    if data.prepared is not None and data.prepared.changes:
        lines += ["What the target said it would change, read before the first change:", ""]
        for change in data.prepared.changes:
            lines += bullet(redact(plain(change)))
        lines.append("")
    if started.flags:
        described = [
            f"{f.get('name')}" + (" (new with this release" + (", switched off by a rollback)" if f.get("disable_on_rollback") else ")") if f.get("new") else
                                  " (switched off by a rollback)" if f.get("disable_on_rollback") else "")
            for f in started.flags
        ]
        lines += bullet(f"Flags the plan brings: {'; '.join(described)}", mark="-") + [""]
    return lines


def _validation(data: ReportData) -> list[str]:
    lines = ["## Pre-Deployment Validation", ""]
    results = list(data.preflight.values())
    gate = data.gate
    verdict = (
        f"The gate passed at {wall(gate.ts)}." if isinstance(gate, ev.PreflightPassed) else
        f"The gate FAILED at {wall(gate.ts)}: nothing was changed." if isinstance(gate, ev.PreflightFailed) else
        "The gate had not finished when the journal ends."
    )
    if not results:
        return lines + [f"The plan has no pre-flight items. {verdict if gate else ''}".rstrip(), ""]
    required = sum(1 for r in results if r.required)
    lines += paragraph(f"{verdict} {len(results)} items, {required} required; each with who or what judged it, when, and its output.") + [""]
    rows = []
    for r in results:
        output = redact(r.output.strip().splitlines()[-1]) if r.output.strip() else ""
        short = output if len(output) <= 48 else output[:47] + "…"
        rows.append([r.item, r.kind, "yes" if r.required else "advisory", r.status, r.by or "—", wall(r.ts), f"{r.duration_s:.2f}s", short])
    lines += table(["item", "kind", "required", "result", "by", "at", "took", "output"], rows) + [""]
    for r in results:
        if r.status == "pass" or not r.output.strip():
            continue  # the table shows one line; a fix needs the whole output
        lines += [f"### {r.item}: {r.status} ({'required' if r.required else 'advisory'})", "", "~~~", redact(r.output.strip()), "~~~", ""]
    return lines


def _stage_outcome(data: ReportData, stage: StageRecord) -> str:
    state = data.state
    outcome = stage.outcome
    if stage.index == state.stage and state.phase == "awaiting_promote":
        outcome = "passed, waiting for a promote"
    elif outcome == "running" and stage.index == state.stage:
        outcome = {"paused": "paused", "rolling_back": "rolling back"}.get(state.phase, "running")
    return f"{outcome} ({stage.note})" if stage.note else outcome


def _timeline(data: ReportData) -> list[str]:
    lines = ["## Timeline", ""]
    if not data.stages:
        return lines + ["No stages.", ""]
    rows = []
    for stage in data.stages:
        end = stage.ended_t if stage.ended_t is not None else data.state.last_t if stage.started_t is not None else None
        actual = format_duration(end - stage.started_t) if stage.started_t is not None and end is not None else "—"
        start = rollout_clock(stage.started_t) if stage.started_t is not None else "—"
        rows.append([stage.name, f"{stage.weight}%", start, format_duration(stage.planned_s), actual, _stage_outcome(data, stage)])
    lines += table(["stage", "weight", "start", "planned", "actual", "outcome"], rows) + [""]
    observed = [s for s in data.stages if s.started_t is not None]
    if observed:
        lines += paragraph("The window's means of the metrics each stage judged, new version beside stable, and whether the means met the stage's criteria:") + [""]
        rows = []
        for stage in observed:
            for i, metric in enumerate(stage.judged):
                canary, stable = stage.mean(metric, "canary"), stage.mean(metric, "stable")
                criteria = [c for c in stage.criteria if c.metric == metric]
                met = [c.holds(canary, stable) for c in criteria]
                held = "—" if not met else "no data" if None in met else "yes" if all(met) else "no"
                must = ", ".join(c.describe() for c in criteria) or "—"
                rows.append([stage.name if i == 0 else "", metric, format_metric_value(metric, canary), format_metric_value(metric, stable), must, held])
            if not stage.judged:
                rows.append([stage.name, "—", "—", "—", "—", "no samples"])
        lines += table(["stage", "metric", "new version", "stable", "must", "met"], rows) + [""]
    lines += ["Events, on the rollout's clock and the wall clock:", ""]
    for t, ts, text in data.timeline:
        lines += bullet(f"`{rollout_clock(t)}` {wall(ts)} {text}")
    if not data.timeline:
        lines.append("Nothing happened after the gate.")
    return lines + [""]


def _after_stage(data: ReportData) -> StageRecord | None:
    return next((s for s in reversed(data.stages) if s.samples), None)


def _window_limits(data: ReportData, stage: StageRecord) -> list[Limit]:
    return [Limit(c, "criterion") for c in stage.criteria] + data.triggers


def _breaches_in(stage: StageRecord, metric: str) -> list[str]:
    holds = sorted((h for h in stage.holds.values() if h.limit.check.metric == metric), key=lambda h: SEVERITY_RANK[h.limit.kind])
    said = [f"up to {format_metric_value(metric, h.worst)} ({h.limit.describe(in_a_row=False)})" for h in holds]
    mean = format_metric_value(metric, stage.mean(metric, "canary"))
    return said + [f"window mean {mean} (must be {failed})" for failed in stage.window_failures(metric)]


def _metrics_summary(data: ReportData) -> list[str]:
    lines = ["## Metrics Summary", ""]
    after_stage = _after_stage(data)
    if after_stage is None:
        return lines + ["No samples were taken: nothing to compare.", ""]
    lines += paragraph(
        f"Before is stable's mean over the rollout; after is the new version's mean over its last window "
        f"({after_stage.name} at {after_stage.weight}%). " + STATUS_RULE
    ) + [""]
    limits = _window_limits(data, after_stage)
    rows = []
    for metric in list(dict.fromkeys([*after_stage.metrics, *data.baseline])):
        before = data.baseline.get(metric, Moments())
        after = after_stage.metrics[metric].canary if metric in after_stage.metrics else Moments()
        verdict = judge_metric(metric, before, after, limits, _breaches_in(after_stage, metric), after_stage.samples)
        nearest = nearest_bound(metric, limits, before.value)
        rows.append([
            metric, format_metric_value(metric, before.value), format_metric_value(metric, after.value),
            relative_change(before.value, after.value), nearest[1].describe(in_a_row=False) if nearest else "—", str(verdict),
        ])
    return lines + table(["metric", "before", "after", "change", "limit", "status"], rows) + [""]


def _feature_flags(data: ReportData) -> list[str]:
    lines = ["## Feature Flags", ""]
    final = _final_flags(data)
    if not final and not (data.started and data.started.flags):
        return lines + ["The release has no flags and none was changed.", ""]
    if final:
        lines += bullet("At the end: " + "; ".join(f"{name} {flag_state(flag)}" for name, flag in final.items())) + [""]
    for f in data.flags:
        lines += bullet(f"`{rollout_clock(f.t)}` {f.flag}: {flag_change(f.old, f.new)} by {f.actor}" + (f" ({f.reason})" if f.reason else ""))
    if not data.flags:
        lines.append("No flag was changed.")
    return lines + [""]


def _notifications(data: ReportData) -> list[str]:
    lines = ["## Notifications", ""]
    if not data.notifications:
        return lines + ["No notification was sent.", ""]
    rows = [[f"`{rollout_clock(n.t)}`", n.webhook, n.about, n.status, str(n.attempts), redact(n.detail)] for n in data.notifications]
    return lines + table(["at", "webhook", "about", "result", "attempts", "detail"], rows) + [""]


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
        span = f"at `{rollout_clock(first)}`" if samples == 1 else f"from `{rollout_clock(first)}` to `{rollout_clock(last)}`"
        kind = "Warning" if limit.kind == "warning" else "Critical trigger"
        said.append((first, f"{kind} {limit.check.metric} {limit.check.describe()} fired on {samples} sample{'s' if samples != 1 else ''} "
                            f"{span} ({stages}), up to {format_metric_value(limit.check.metric, worst)}; "
                            f"never {needed} in a row, so it did not {'roll back' if limit.kind == 'critical' else 'pause'}"))
    return said


def _issues(data: ReportData) -> list[str]:
    lines = ["## Issues Encountered", ""]
    issues = list(data.issues)
    for pause in data.pauses:
        ended = pause.ended or "still paused when the journal ends"
        issues.append((pause.t, f"Paused ({pause.trigger}): {pause.reason}; {ended}"))
    issues += held_without_acting(data)
    for stage in data.stages:
        if stage.outcome == "skipped":
            issues.append((stage.started_t if stage.started_t is not None else (stage.ended_t or 0.0), f"{stage.name} skipped: {stage.note}; its window was not observed whole"))
    for t, text in sorted(issues, key=lambda issue: issue[0]):
        lines += bullet(f"`{rollout_clock(t)}` {text}")
    if not issues:
        lines.append("Nothing: no pause, no breach, no error.")
    return lines + [""]


def _rollback_plan(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    lines = ["## Rollback Plan", ""]
    if started is None:
        return lines
    lines += bullet(f"Automatic: {ROLLBACK_METHODS.get(started.strategy, 'traffic back to stable')}, then flags marked disable_on_rollback switched off, then stable verified.")
    lines.append("")
    lines += _what_to_do_now(data)
    if data.on_cluster and state.phase not in ("gate_failed",):
        lines += _by_hand_on_the_cluster(data)
    elif data.prepared is not None:
        lines += paragraph("On the simulator there is nothing to change by hand: Brahma's own commands above are the whole way back.") + [""]
    if started.rollback_plan:
        lines += bullet(f"From the plan: {' '.join(started.rollback_plan.split())}") + [""]
    if data.prepared is not None:
        lines += _before_lines(data.prepared.before)
    return lines


def _before_lines(before: dict[str, Any]) -> list[str]:
    """The state the rollback goes back to, as the target recorded it before the first change."""
    if "stable_image" in before:
        said = f"stable image {before['stable_image']}, canary weight {before.get('weight', 0)}%, {before.get('replicas', '?')} replicas"
        return bullet(f"State before the release: {said}") + [""]
    rows = [[key.replace("_", " "), plain(value)] for key, value in before.items()]
    return ["State before the release, as the target recorded it:", ""] + table(["what", "before the release"], rows) + [""]


def _what_to_do_now(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    name, state_dir = started.rollout, data.journal.parent
    attach = f"brahma attach {name} --state-dir {state_dir}"
    run = f"brahma run {started.plan} --state-dir {state_dir}"
    if state.phase == "completed":
        return paragraph("To undo this release, open the console on it and press ctrl+r, then Enter: a controller takes the journal up and rolls it back.") + [""] + code_block([attach]) + [""]
    if state.phase == "rolled_back":
        return paragraph(f"Nothing to undo: stable serves 100%. To release again once fixed (this journal is kept beside the new one):") + [""] + code_block([run + (" --headless" if started.headless else "")]) + [""]
    if state.phase == "gate_failed":
        return paragraph("Nothing was changed, so nothing to roll back. Make the failed items pass, then run the release again:") + [""] + code_block([run]) + [""]
    if state.phase == "rolling_back":
        said = paragraph(
            "The rollback is NOT verified: the new version may still serve traffic. Check the target by hand now, "
            "and take the rollback up again (it retries from the journal until the target reads back stable serving all):"
        )
        return said + [""] + code_block([attach if started.headless is False else run + (" --headless" if started.headless else "")]) + [""]
    if started.headless:
        said = paragraph("It ran headless and is unfinished. The same command takes it up where the journal ends; to decide by hand instead (resume, promote, or ctrl+r then Enter to roll back), open the console on it:")
        return said + [""] + code_block([run + " --headless", run]) + [""]
    if started.headless is False:
        said = paragraph("It ran at a console and is unfinished. Attach to it (this restarts its controller if it died); ctrl+r then Enter rolls back, space resumes, p promotes:")
        return said + [""] + code_block([attach]) + [""]
    said = paragraph("It is unfinished. Running the release again takes it up where the journal ends (and attaches if a controller still supervises it):")
    return said + [""] + code_block([run]) + [""]


def _by_hand_on_the_cluster(data: ReportData) -> list[str]:
    """The kubectl commands that do what Brahma's rollback does, with the objects' names from the journal."""
    before = data.prepared.before
    kubectl = f"kubectl -n {before.get('namespace') or 'NAMESPACE'}"
    strategy = before.get("strategy")
    images = " ".join(f"{c}={i}" for c, i in (before.get("images") or {}).items())
    if strategy == "canary":
        commands = ["# traffic back to stable: this is the rollback"]
        if before.get("httproute"):
            patch = [{"op": "replace", "path": f"/spec/rules/{i}/backendRefs", "value": refs} for i, refs in enumerate(before.get("route_backends") or [])]
            commands.append(f"{kubectl} patch httproute/{before['httproute']} --type=json -p '{json.dumps(patch, separators=(',', ':'))}'")
        commands.append(f"{kubectl} delete deployment/{before['canary_deployment']} --ignore-not-found")
        commands += ["# stable's image as it was (it changed only if the release was promoted)", f"{kubectl} set image deployment/{before['deployment']} {images}"]
        if before.get("canary_service") and not before.get("canary_service_existed"):
            commands.append(f"{kubectl} delete service/{before['canary_service']} --ignore-not-found")
        commands.append(f"{kubectl} rollout status deployment/{before['deployment']}")
    elif strategy == "blue-green":
        selector = json.dumps([{"op": "replace", "path": "/spec/selector", "value": before.get("selector") or {}}], separators=(",", ":"))
        commands = ["# the active Service selects the old colour again: this is the rollback", f"{kubectl} patch service/{before['service']} --type=json -p '{selector}'"]
        tidy = []
        if before.get("preview_selector") is None:
            tidy.append(f"{kubectl} delete service/{before['preview_service']} --ignore-not-found")
        if not before.get("new_existed"):
            tidy.append(f"{kubectl} delete deployment/{before['new_deployment']} --ignore-not-found")
        commands += ["# then what the release added goes, as Brahma's rollback does", *tidy] if tidy else []
        commands.append(f"{kubectl} get service/{before['service']} -o wide")
    elif strategy == "rolling":
        commands = [
            f"{kubectl} rollout undo deployment/{before['deployment']} --to-revision={before.get('revision')}",
            f"# if that revision has left the history: {kubectl} set image deployment/{before['deployment']} {images}",
            f"{kubectl} rollout status deployment/{before['deployment']}",
        ]
    else:
        return []
    done = data.state.phase == "rolled_back"
    said = (
        "Brahma's rollback did this on the cluster; by hand (if Brahma cannot), in the cluster the release ran on:"
        if done else "By hand, without Brahma, in the cluster the release ran on (what its rollback does):"
    )
    return paragraph(said) + [""] + code_block(commands) + [""]


def _post_deployment(data: ReportData) -> list[str]:
    lines = ["## Post-Deployment Actions", ""]
    for action in follow_ups(data):
        lines += bullet(action, mark="- [ ]")
    return lines + [""]


def follow_ups(data: ReportData) -> list[str]:
    state = data.state
    actions = []
    if state.phase == "rolling_back":
        actions.append("Check by hand that stable serves all traffic (Rollback Plan), then take the rollback up again until it is verified.")
    if state.phase in ("rolled_back", "rolling_back"):
        actions.append(f"Find the cause of the rollback ({state.rollback_trigger}): {state.rollback_reason}")
        actions.append("Fix, then run the release again; the journal of this attempt is kept beside the new one.")
    if state.phase == "gate_failed":
        blocking = [r.item for r in data.preflight.values() if r.required and r.status != "pass"]
        actions.append(f"Make the failed pre-flight items pass ({', '.join(blocking)}), then run the release again.")
    advisory = [r.item for r in data.preflight.values() if not r.required and r.status != "pass"]
    if advisory:
        actions.append(f"Look into the advisory pre-flight items that did not pass: {', '.join(advisory)}.")
    undelivered = sorted({n.webhook for n in data.notifications if n.status == "failed"})
    if undelivered:
        actions.append(f"Fix the webhooks that could not be notified ({', '.join(undelivered)}) and tell their people by hand.")
    if data.pauses:
        actions.append("Review each pause and tighten or relax the thresholds that caused it.")
    if held_without_acting(data):
        actions.append("Look into the triggers that fired without acting (Issues): the new version flaps near a limit.")
    if any(s.outcome == "skipped" for s in data.stages):
        actions.append("Watch the metrics the skipped stages would have judged: their windows were not observed whole.")
    if data.errors:
        actions.append("Look into the errors the controller carried on through (listed under Issues).")
    if state.phase == "completed":
        if data.started and data.started.strategy == "blue-green":
            actions.append("Retire the old colour when the rollback window has passed.")
        actions.append("Enable the release's flags gradually and remove them once fully on.")
    if state.active or state.phase in ("new", "preflight"):
        actions.append("The rollout is unfinished: take it up (Rollback Plan) and decide.")
    return actions


def write_report(journal: str | Path, output: str | Path | None = None) -> Path:
    journal = Path(journal)
    target = Path(output) if output else journal.with_suffix(".md")
    atomic_write(target, render(collect(journal)).encode())
    return target
