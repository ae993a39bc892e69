"""The runbook entry: a Markdown report built from the journal alone, never from memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from console.controller import events as ev
from console.controller.analysis import WindowStats
from console.atomic import atomic_write
from console.controller.journal import read_events
from console.controller.state import RolloutState
from console.metrics.base import TrackValues
from console.narrate import flag_change, rollback_failed, rollout_clock, supervision_resumed
from console.redact import redact
from console.units import format_duration, format_metric_value

# For these a higher value is worse; for success_rate and throughput a lower one is.
HIGHER_IS_WORSE = {"error_rate", "latency_p50", "latency_p95", "latency_p99", "cpu", "memory", "health_check_failures", "memory_oom_kills"}
REGRESSION = 0.10
"""A change of more than this share in the worse direction is called a regression."""

ROLLBACK_METHODS = {
    "canary": "traffic back to stable (canary weight 0, stable image restored)",
    "blue-green": "active selector switched back to blue",
    "rolling": "undo to the previous revision",
}


@dataclass
class StageRecord:
    index: int
    name: str
    weight: int
    started_t: float
    ended_t: float | None = None
    outcome: str = "running"
    window: WindowStats = field(default_factory=WindowStats)


@dataclass
class ReportData:
    state: RolloutState = field(default_factory=RolloutState)
    started: ev.RolloutStarted | None = None
    stages: list[StageRecord] = field(default_factory=list)
    baseline: WindowStats = field(default_factory=WindowStats)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    issues: list[tuple[float, str]] = field(default_factory=list)
    flags: list[ev.FlagChanged] = field(default_factory=list)
    preflight: list[ev.PreflightResult] = field(default_factory=list)
    errors: list[ev.ErrorRaised] = field(default_factory=list)
    notifications: list[ev.NotificationSent] = field(default_factory=list)
    first_ts: str = ""
    last_ts: str = ""


def collect(journal: Path) -> ReportData:
    data = ReportData()
    for event in read_events(journal):
        data.state.apply(event)
        data.first_ts = data.first_ts or event.ts
        data.last_ts = event.ts
        _collect_event(data, event)
    return data


def _close_stage(data: ReportData, t: float, outcome: str) -> None:
    if data.stages and data.stages[-1].ended_t is None:
        data.stages[-1].ended_t, data.stages[-1].outcome = t, outcome


def _collect_event(data: ReportData, event: ev.Event) -> None:
    match event:
        case ev.RolloutStarted():
            data.started = event
        case ev.PreflightResult():
            data.preflight = [r for r in data.preflight if r.item != event.item] + [event]
        case ev.StageStarted():
            _close_stage(data, event.t, "promoted")
            data.stages.append(StageRecord(event.stage, event.stage_name, event.weight, event.t))
            data.timeline.append((event.t, f"{event.stage_name} started at {event.weight}%"))
        case ev.TrafficShifted() if event.waited_s:
            data.timeline.append((event.t, f"{event.weight}% in place after {format_duration(event.waited_s)} (the window started then)"))
        case ev.SampleTaken():
            if data.stages:
                data.stages[-1].window.add(event.metrics, conclusive=not event.inconclusive)
            data.baseline.add({m: {"stable": v.get("stable")} for m, v in event.metrics.items()}, True)
        case ev.StagePassed():
            _close_stage(data, event.t, "passed")
            data.timeline.append((event.t, f"stage {event.stage + 1} passed"))
        case ev.Paused():
            data.timeline.append((event.t, f"paused: {event.reason}"))
            data.issues.append((event.t, f"Paused ({event.trigger or 'operator'}): {event.reason}"))
        case ev.Resumed():
            data.timeline.append((event.t, "resumed"))
        case ev.SupervisionResumed():
            data.timeline.append((event.t, supervision_resumed(event)))
            if event.window_restarted:
                data.issues.append((event.t, f"Unsupervised for {format_duration(event.unwatched_s)}: the stage's window started again"))
        case ev.RollbackStarted():
            _close_stage(data, event.t, "rolled back")
            data.timeline.append((event.t, f"rollback started ({event.trigger}): {event.reason}"))
            data.issues.append((event.t, f"Rollback started ({event.trigger}): {event.reason}"))
        case ev.RollbackFailed():
            data.timeline.append((event.t, f"rollback not verified: {rollback_failed(event)}"))
            data.issues.append((event.t, f"Rollback NOT verified: {rollback_failed(event)}"))
        case ev.RolledBack():
            read_back = f" (read back: {event.read_back})" if event.read_back else ""
            data.timeline.append((event.t, f"rolled back in {event.duration_s:.3f}s{read_back}"))
        case ev.RollbackVerified():
            data.timeline.append((event.t, f"rollback verified: {event.detail}"))
        case ev.Completed():
            _close_stage(data, event.t, "passed")
            data.timeline.append((event.t, "completed"))
        case ev.CommandIssued():
            about = f" {event.argument!r}" if event.argument else ""
            data.timeline.append((event.t, f"{event.command}{about} by {event.actor}"))
        case ev.FlagChanged():
            data.flags.append(event)
        case ev.NotificationSent():
            data.notifications.append(event)
        case ev.ErrorRaised():
            data.errors.append(event)
            data.issues.append((event.t, f"Error in {event.where}: {event.message}"))
        case ev.PreflightFailed():
            data.issues.append((event.t, f"Pre-flight gate failed: {', '.join(event.failed)}"))


def _metric_line(metric: str, means: dict[str, TrackValues]) -> str:
    values = means.get(metric, TrackValues(None, None))
    return f"{format_metric_value(metric, values.canary)} (stable {format_metric_value(metric, values.stable)})"


def _status(metric: str, before: float | None, after: float | None) -> tuple[str, str]:
    if before is None or after is None:
        return "—", "no data"
    if before == 0:
        change = "±0" if after == 0 else "new"
        worse = after > 0 and metric in HIGHER_IS_WORSE
    else:
        ratio = (after - before) / abs(before)
        change = f"{ratio:+.1%}"
        worse = ratio > REGRESSION if metric in HIGHER_IS_WORSE else ratio < -REGRESSION
    return change, "regressed" if worse else "ok"


def render(data: ReportData) -> str:
    state, started = data.state, data.started
    lines: list[str] = []
    title = started.rollout if started else "unknown rollout"
    outcomes = {"completed": "completed", "rolled_back": "rolled back", "rolling_back": "rollback NOT verified", "gate_failed": "stopped at the pre-flight gate"}
    outcome = outcomes.get(state.phase, f"unfinished ({state.phase})")
    lines += [f"# Release {title}: {outcome}", ""]
    if started:
        actual = max((s.ended_t or s.started_t) for s in data.stages) if data.stages else 0.0
        lines += [
            f"- Application: {started.app}",
            f"- Image: `{started.image}`",
            f"- Strategy: {started.strategy}",
            f"- Plan: `{started.plan}`",
            f"- Started by: {started.actor}",
            f"- Wall time: {data.first_ts} → {data.last_ts}",
            f"- Duration: planned {format_duration(started.planned_s)}, actual {format_duration(actual)}",
        ]
        if state.rollback_duration_s is not None:
            lines.append(f"- Time to rollback: {state.rollback_duration_s:.3f}s of Brahma's own time from the decision to stable serving 100%")
        lines.append("")

    lines += ["## Pre-flight", ""]
    if data.preflight:
        lines += ["| item | kind | required | result | by | duration | output |", "|---|---|---|---|---|---|---|"]
        for r in data.preflight:
            output = redact(r.output.strip().splitlines()[-1]) if r.output.strip() else ""
            lines.append(f"| {r.item} | {r.kind} | {'yes' if r.required else 'advisory'} | {r.status} | {r.by} | {r.duration_s:.2f}s | {output[:80].replace('|', '/')} |")
    else:
        lines.append("The plan has no pre-flight items.")
    lines.append("")
    lines += _unpassed_outputs(data.preflight)

    lines += ["## Stages", "", "| stage | weight | from | to | outcome | samples | error rate | p99 latency |", "|---|---|---|---|---|---|---|---|"]
    for stage in data.stages:
        means = stage.window.means()
        ended = rollout_clock(stage.ended_t) if stage.ended_t is not None else "—"
        lines.append(
            f"| {stage.name} | {stage.weight}% | {rollout_clock(stage.started_t)} | {ended} | {stage.outcome} | {stage.window.samples} "
            f"| {_metric_line('error_rate', means)} | {_metric_line('latency_p99', means)} |"
        )
    lines.append("")

    lines += ["## Timeline", ""]
    lines += [f"- `{rollout_clock(t)}` {text}" for t, text in data.timeline] or ["Nothing happened after the gate."]
    lines.append("")

    lines += ["## Metrics summary", "", "| metric | before (stable) | after (new version) | change | status |", "|---|---|---|---|---|"]
    before_means = data.baseline.means()
    last_observed = next((s for s in reversed(data.stages) if s.window.samples), None)
    after_means = last_observed.window.means() if last_observed else {}
    for metric in sorted(set(before_means) | set(after_means)):
        before = before_means.get(metric, TrackValues(None, None)).stable
        after = after_means.get(metric, TrackValues(None, None)).canary
        change, status = _status(metric, before, after)
        lines.append(f"| {metric} | {format_metric_value(metric, before)} | {format_metric_value(metric, after)} | {change} | {status} |")
    lines.append("")

    lines += ["## Flag changes", ""]
    lines += [f"- `{rollout_clock(f.t)}` {f.flag}: {flag_change(f.old, f.new)} by {f.actor}" + (f" ({f.reason})" if f.reason else "") for f in data.flags] or ["None."]
    lines.append("")

    lines += ["## Notifications", ""]
    if data.notifications:
        lines += ["| at | webhook | about | result | attempts | detail |", "|---|---|---|---|---|---|"]
        lines += [
            f"| `{rollout_clock(n.t)}` | {n.webhook} | {n.about} | {n.status} | {n.attempts} | {redact(n.detail).replace('|', '/')} |"
            for n in data.notifications
        ]
    else:
        lines.append("None sent.")
    lines.append("")

    lines += ["## Issues", ""]
    lines += [f"- `{rollout_clock(t)}` {text}" for t, text in data.issues] or ["None."]
    lines.append("")

    lines += ["## Rollback plan", ""]
    if started:
        lines.append(f"- Automatic: {ROLLBACK_METHODS.get(started.strategy, 'traffic back to stable')}, then flags marked disable_on_rollback switched off, then stable verified.")
        lines.append("- By hand: `ctrl+r` then Enter in the console, or stop the run and restore the state recorded below.")
        if state.target_before:
            lines.append(f"- State before the release: `{state.target_before}`")
        if started.rollback_plan:
            lines.append(f"- From the plan: {started.rollback_plan}")
    lines.append("")

    lines += ["## Follow-up actions", ""]
    lines += [f"- [ ] {action}" for action in follow_ups(data)]
    lines.append("")
    return "\n".join(lines)


def _unpassed_outputs(results: list[ev.PreflightResult]) -> list[str]:
    """The whole output of each item that did not pass: the table shows one line, the fix needs all."""
    lines = []
    for result in results:
        if result.status == "pass" or not result.output.strip():
            continue
        weight = "required" if result.required else "advisory"
        lines += [f"### {result.item}: {result.status} ({weight})", "", "~~~", redact(result.output.strip()), "~~~", ""]
    return lines


UNJUDGED = ("pass", "cancelled")
"""Pre-flight results that need no follow-up: passed, or cancelled once the gate could not open (nothing was found)."""


def follow_ups(data: ReportData) -> list[str]:
    state = data.state
    actions = []
    if state.phase == "rolled_back":
        actions.append(f"Find the cause of the rollback ({state.rollback_trigger}): {state.rollback_reason}")
        actions.append("Fix, then run the release again; the journal of this attempt is kept beside the new one.")
    if state.phase == "gate_failed":
        blocking = [r.item for r in data.preflight if r.required and r.status not in UNJUDGED]
        actions.append(f"Make the failed pre-flight items pass ({', '.join(blocking)}), then run the release again.")
    advisory = [r.item for r in data.preflight if not r.required and r.status not in UNJUDGED]
    if advisory:
        actions.append(f"Look into the advisory pre-flight items that did not pass: {', '.join(advisory)}.")
    undelivered = sorted({n.webhook for n in data.notifications if n.status == "failed"})
    if undelivered:
        actions.append(f"Fix the webhooks that could not be notified ({', '.join(undelivered)}) and tell their people by hand.")
    if any(text.startswith("Paused") for _, text in data.issues):
        actions.append("Review each pause and tighten or relax the thresholds that caused it.")
    if data.errors:
        actions.append("Look into the errors the controller carried on through (listed under Issues).")
    if state.phase == "completed":
        if data.started and data.started.strategy == "blue-green":
            actions.append("Retire the old colour when the rollback window has passed.")
        actions.append("Enable the release's flags gradually and remove them once fully on.")
    if state.phase == "rolling_back":
        actions.append("The rollback is not verified: the target may still serve the new version. Check it against the "
                       "state before the release (under Rollback plan), then run the same command again to go on with the rollback.")
    elif not state.finished:
        actions.append("The rollout is unfinished: run the same command again to resume it.")
    return actions


def write_report(journal: str | Path, output: str | Path | None = None) -> Path:
    journal = Path(journal)
    target = Path(output) if output else journal.with_suffix(".md")
    atomic_write(target, render(collect(journal)).encode())
    return target
