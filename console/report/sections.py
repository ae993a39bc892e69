"""The reference runbook's sections, after the opening: Changes, Pre-Deployment Validation, the
Timeline, the Metrics Summary, Feature Flags, Notifications, Issues Encountered and the
Post-Deployment Actions."""

from __future__ import annotations

from console.journal import events as ev
from console.journal.evidence import JudgeEvidence, by_trigger
from console.journal.state import Phase
from console.narrate import flag_change, flag_state
from console.printable import printable
from console.redact import redact
from console.report.facts import ReportData, StageRecord, final_flags, held_without_acting
from console.report.judgement import SEVERITY_RANK, STATUS_RULE, Limit, Moments, judge_metric, nearest_bound, relative_change
from console.report.markdown import bullet, paragraph, plain, table, wall, wall_span
from console.units import format_duration


def changes(data: ReportData) -> list[str]:
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
        lines += bullet(f"Wall time: {wall_span(data.first_ts, data.last_ts)}")
    lines.append("")
    if data.prepared is not None and data.prepared.changes:
        lines += ["What the target said it would change, read before the first change:", ""]
        for change in data.prepared.changes:
            lines += bullet(redact(plain(change)))
        lines.append("")
    if started.flags:  # a paragraph, not a bullet: the changes' list above would take it in
        lines += paragraph(f"Flags the plan brings: {'; '.join(_flag_role(flag) for flag in started.flags)}.") + [""]
    return lines


def _flag_role(flag: dict) -> str:
    roles = [role for role, on in (("new with this release", flag.get("new")), ("switched off by a rollback", flag.get("disable_on_rollback"))) if on]
    return f"{flag.get('name')} ({', '.join(roles)})" if roles else str(flag.get("name"))


def validation(data: ReportData) -> list[str]:
    lines = ["## Pre-Deployment Validation", ""]
    results = list(data.preflight.values())
    gate = data.gate
    verdict = (
        f"The gate passed at {wall(gate.ts)}."
        if isinstance(gate, ev.PreflightPassed)
        else f"The gate FAILED at {wall(gate.ts)}: nothing was changed."
        if isinstance(gate, ev.PreflightFailed)
        else "The gate had not finished when the journal ends."
    )
    if not results:
        return lines + [f"The plan has no pre-flight items. {verdict if gate else ''}".rstrip(), ""]
    required = sum(1 for r in results if r.required)
    lines += paragraph(f"{verdict} {len(results)} items, {required} required; each with who or what judged it, when, and its output.") + [""]
    rows = []
    for r in results:
        output = redact(printable(r.output).strip().splitlines()[-1]) if r.output.strip() else ""
        short = output if len(output) <= 48 else output[:47] + "…"
        rows.append([r.item, r.kind, "yes" if r.required else "advisory", r.status, r.by or "—", wall(r.ts), f"{r.duration_s:.2f}s", short])
    lines += table(["item", "kind", "required", "result", "by", "at", "took", "output"], rows) + [""]
    for r in results:
        if r.status == "pass" or not r.output.strip():
            continue  # the table shows one line; a fix needs the whole output
        lines += [f"### {r.item}: {r.status} ({'required' if r.required else 'advisory'})", "", "~~~", redact(printable(r.output).strip()), "~~~", ""]
    return lines


def _stage_outcome(data: ReportData, stage: StageRecord) -> str:
    state = data.state
    outcome = stage.outcome
    if stage.index == state.stage and state.phase == Phase.AWAITING_PROMOTE:
        outcome = "passed, waiting for a promote"
    elif outcome == "running" and stage.index == state.stage:
        outcome = {Phase.PAUSED: "paused", Phase.ROLLING_BACK: "rolling back"}.get(state.phase, "running")
    return f"{outcome} ({stage.note})" if stage.note else outcome


def timeline(data: ReportData) -> list[str]:
    lines = ["## Timeline", ""]
    if not data.stages:
        return lines + ["No stages.", ""]
    rows = []
    for stage in data.stages:
        end = stage.ended_t if stage.ended_t is not None else data.state.last_t if stage.started_t is not None else None
        actual = format_duration(end - stage.started_t) if stage.started_t is not None and end is not None else "—"
        start = data.clock(stage.started_t) if stage.started_t is not None else "—"
        rows.append([stage.name, f"{stage.weight}%", start, format_duration(stage.planned_s), actual, _stage_outcome(data, stage)])
    lines += table(["stage", "weight", "start", "planned", "actual", "outcome"], rows) + [""]
    observed = [s for s in data.stages if s.started_t is not None]
    if observed:
        lines += paragraph(
            "The window's means of the metrics each stage judged, new version beside stable, and whether the means met the stage's criteria:"
        ) + [""]
        rows = []
        for stage in observed:
            for i, metric in enumerate(stage.judged):
                canary, stable = stage.mean(metric, "canary"), stage.mean(metric, "stable")
                criteria = [c for c in stage.criteria if c.metric == metric]
                met = [c.holds(canary, stable) for c in criteria]
                held = "—" if not met else "no data" if None in met else "yes" if all(met) else "no"
                must = ", ".join(c.describe() for c in criteria) or "—"
                rows.append([stage.name if i == 0 else "", metric, data.shown(metric, canary), data.shown(metric, stable), must, held])
            if not stage.judged:
                rows.append([stage.name, "—", "—", "—", "—", "no samples"])
        lines += table(["stage", "metric", "new version", "stable", "must", "met"], rows) + [""]
    lines += ["Events, on the rollout's clock and the wall clock:", ""]
    for t, ts, text in data.timeline:
        lines += bullet(f"`{data.clock(t)}` {wall(ts, weekday=data.spans_days)} {text}")
    if not data.timeline:
        lines.append("Nothing happened after the gate.")
    return lines + [""]


def _after_stage(data: ReportData) -> StageRecord | None:
    return next((s for s in reversed(data.stages) if s.samples), None)


def _window_limits(data: ReportData, stage: StageRecord) -> list[Limit]:
    return [Limit(c, "criterion") for c in stage.criteria] + data.triggers


def _breaches_in(data: ReportData, stage: StageRecord, metric: str) -> list[str]:
    holds = sorted((h for h in stage.holds.values() if h.limit.check.metric == metric), key=lambda h: SEVERITY_RANK[h.limit.kind])
    said = [f"up to {data.shown(metric, h.worst)} ({h.limit.describe(in_a_row=False)})" for h in holds]
    mean = data.shown(metric, stage.mean(metric, "canary"))
    return said + [f"window mean {mean} (must be {failed})" for failed in stage.window_failures(metric)]


def metrics_summary(data: ReportData) -> list[str]:
    lines = ["## Metrics Summary", ""]
    after_stage = _after_stage(data)
    if after_stage is None:
        return lines + ["No samples were taken: nothing to compare.", ""]
    judged = data.state.judge
    lines += paragraph(
        f"Before is stable's mean over the rollout; after is the new version's mean over its last window "
        f"({after_stage.name} at {after_stage.weight}%). " + STATUS_RULE + (JUDGE_RULE if judged else "")
    ) + [""]
    limits = _window_limits(data, after_stage)
    rows = []
    for metric in list(dict.fromkeys([*after_stage.metrics, *data.baseline])):
        before = data.baseline.get(metric, Moments())
        after = after_stage.metrics[metric].canary if metric in after_stage.metrics else Moments()
        verdict = judge_metric(metric, before, after, limits, _breaches_in(data, after_stage, metric), after_stage.samples)
        nearest = nearest_bound(metric, limits, before.value)
        row = [
            metric,
            data.shown(metric, before.value),
            data.shown(metric, after.value),
            relative_change(before.value, after.value),
            nearest[1].describe(in_a_row=False) if nearest else "—",
        ]
        rows.append(row + ([_vs_stable(judged[metric]) if metric in judged else "—"] if judged else []) + [str(verdict)])
    headers = ["metric", "before", "after", "change", "limit"] + (["vs stable (judge)"] if judged else []) + ["status"]
    return lines + table(headers, rows) + [""]


def _vs_stable(evidence: JudgeEvidence) -> str:
    """ "×2.8 [1.1–5.8]"; for a latency, with the bound its slow requests are counted past: "×1.3 [0.65–2.2] over 250ms"."""
    return evidence.said() + (f" over {evidence.bound_ms:g}ms" if evidence.bound_ms is not None else "")


JUDGE_RULE = (
    " Vs stable is the sequential judge's ratio of the new version's rate to stable's (errors; for a latency,"
    " requests slower than its bound), on the counts both served over the whole rollout, with its confidence"
    " interval (an end not bounded yet is 0 or ∞); the judge rolls back once it is beyond doubt that the ratio"
    " is over 1 + the plan's tolerance."
)


def feature_flags(data: ReportData) -> list[str]:
    lines = ["## Feature Flags", ""]
    final = final_flags(data)
    if not final and not (data.started and data.started.flags):
        return lines + ["The release has no flags and none was changed.", ""]
    if final:
        lines += paragraph("At the end: " + "; ".join(f"{name} {flag_state(flag)}" for name, flag in final.items()) + ".") + [""]
    for f in data.flags:
        lines += bullet(f"`{data.clock(f.t)}` {f.flag}: {flag_change(f.old, f.new)} by {f.actor}" + (f" ({f.reason})" if f.reason else ""))
    if not data.flags:
        lines.append("No flag was changed.")
    return lines + [""]


def notifications(data: ReportData) -> list[str]:
    lines = ["## Notifications", ""]
    if not data.notifications:
        return lines + ["No notification was sent.", ""]
    rows = [[f"`{data.clock(n.t)}`", n.webhook, n.about, n.status, str(n.attempts), redact(n.detail)] for n in data.notifications]
    return lines + table(["at", "webhook", "about", "result", "attempts", "detail"], rows) + [""]


def issues(data: ReportData) -> list[str]:
    lines = ["## Issues Encountered", ""]
    issues = list(data.issues)
    for pause in data.pauses:
        ended = pause.ended or "still paused when the journal ends"
        issues.append((pause.t, f"Paused{by_trigger(pause.trigger)}: {pause.reason}; {ended}"))
    issues += held_without_acting(data)
    for stage in data.stages:
        if stage.outcome == "skipped":
            issues.append(
                (
                    stage.started_t if stage.started_t is not None else (stage.ended_t or 0.0),
                    f"{stage.name} skipped: {stage.note}; its window was not observed whole",
                )
            )
    for t, text in sorted(issues, key=lambda issue: issue[0]):
        lines += bullet(f"`{data.clock(t)}` {text}")
    if not issues:
        lines.append("Nothing: no pause, no breach, no error.")
    return lines + [""]


def post_deployment(data: ReportData) -> list[str]:
    lines = ["## Post-Deployment Actions", ""]
    for action in follow_ups(data):
        lines += bullet(action, mark="- [ ]")
    return lines + [""]


UNJUDGED = ("pass", "cancelled")
"""Pre-flight results that need no follow-up: passed, or cancelled once the gate could not open (nothing was found)."""


def follow_ups(data: ReportData) -> list[str]:
    state = data.state
    actions = []
    if state.phase == Phase.ROLLING_BACK:
        actions.append("Check by hand that stable serves all traffic (Rollback Plan), then take the rollback up again until it is verified.")
    if state.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK):
        actions.append(f"Find the cause of the rollback{by_trigger(state.rollback_trigger)}: {state.rollback_reason}")
    if state.phase == Phase.ROLLED_BACK:
        actions.append("Fix, then run the release again; the journal of this attempt is kept beside the new one.")
    if state.phase == Phase.GATE_FAILED:
        blocking = [r.item for r in data.preflight.values() if r.required and r.status not in UNJUDGED]
        actions.append(f"Make the failed pre-flight items pass ({', '.join(blocking)}), then run the release again.")
    advisory = [r.item for r in data.preflight.values() if not r.required and r.status not in UNJUDGED]
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
    if state.drift:
        actions.append(f"Reconcile what was changed beside the release and is still there: {'; '.join(state.drift)}.")
    if state.phase == Phase.COMPLETED:
        if data.started and data.started.strategy == "blue-green":
            actions.append("Retire the old colour when the rollback window has passed.")
        actions.append("Enable the release's flags gradually and remove them once fully on.")
    if state.active or state.phase.before_first_change:
        actions.append("The rollout is unfinished: take it up (Rollback Plan) and decide.")
    return actions
