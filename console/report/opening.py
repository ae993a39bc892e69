"""The runbook's opening: three lines (what was released, what happened and why, the state now),
then what a rollback was about: the decision, the trigger, the sample that breached with its values."""

from __future__ import annotations

import textwrap

from console.journal import events as ev
from console.journal.evidence import JUDGE_TRIGGER_PREFIX, JudgeEvidence, trigger_metric, trigger_said
from console.journal.state import Phase, RolloutState
from console.narrate import flag_state
from console.report.facts import ReportData, RollbackRecord, StageRecord, final_flags, held_on, held_without_acting, trigger_limit
from console.report.judgement import SEVERITY_RANK, Limit
from console.report.markdown import SUMMARY_WIDTH, bullet, table
from console.units import format_duration


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


def _flags_now(data: ReportData) -> str:
    final = final_flags(data)
    planned = [f.get("name") for f in data.started.flags] if data.started else []
    names = list(dict.fromkeys([*planned, *final]))
    if not names:
        return "no flags"
    if all(name in final and not final[name].get("enabled") for name in names):
        return f"flags off ({', '.join(names)})"
    return "flags: " + ", ".join(f"{name} {flag_state(final[name]) if name in final else 'unchanged'}" for name in names)


def _outcome_word(state: RolloutState) -> str:
    return {
        Phase.COMPLETED: "completed",
        Phase.ROLLED_BACK: "rolled back",
        Phase.GATE_FAILED: "stopped at the pre-flight gate",
        Phase.ROLLING_BACK: "ROLLBACK NOT VERIFIED",
    }.get(state.phase, f"unfinished ({state.phase.replace('_', ' ')})")


def summary(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    title = started.rollout if started else "unknown rollout"
    backtest = started is not None and started.target.get("kind") == ev.BACKTEST_TARGET
    lines = [f"# {'Backtest of' if backtest else 'Release'} {title}: {_outcome_word(state)}", ""]
    if started is None:
        return lines + ["The journal has no rollout_started line: it is not a whole rollout's journal.", ""]
    versions = (
        _versions(data.old_image, started.image)
        if data.prepared
        else f"{started.image} (nothing was changed)"
        if state.phase == Phase.GATE_FAILED
        else started.image
    )
    # A blue-green release's stages say more by name (preview, switch) than by weight alone.
    weights = " → ".join(f"{s.name} {s.weight}%" if started.strategy == "blue-green" else f"{s.weight}%" for s in data.stages)
    released = f"- Released: {started.app} {versions}, {started.strategy} {weights}".rstrip()
    if len(released) > SUMMARY_WIDTH:  # the images are never cut: the stages are in the Timeline
        released = f"- Released: {started.app} {versions}, {started.strategy} in {len(data.stages)} stages"
    lines.append(released)
    # One line each, whatever their length: the sections below say the rest in full.
    lines.append(textwrap.shorten(f"- Happened: {_what_happened(data)}", SUMMARY_WIDTH, placeholder=" …"))
    now = "a backtest over history: nothing was acted on (a recording target, no flags, no webhooks)" if backtest else _state_now(data)
    lines.append(textwrap.shorten(f"- Now: {now}", SUMMARY_WIDTH, placeholder=" …"))
    return lines + [""]


def _stage_phrase(stage: StageRecord | None, t: float) -> str:
    if stage is None or stage.started_t is None:
        return "before any stage"
    return f"{format_duration(t - stage.started_t)} into {stage.name} at {stage.weight}%"


def _what_happened(data: ReportData) -> str:
    state, rollback = data.state, data.rollback
    last = data.stages[-1] if data.stages else None
    if rollback is not None and state.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK):
        verb = "rolled back" if state.phase == Phase.ROLLED_BACK else "rolling back (not verified)"
        if rollback.after_completion:
            return f"completed, then {verb} at {data.clock(rollback.t)}: {_why_short(data, rollback)}"
        if rollback.stage is None:
            return f"{verb} before any change: {rollback.reason}"
        return f"{verb} {_stage_phrase(rollback.stage, rollback.t)}: {_why_short(data, rollback)}"
    if state.phase == Phase.COMPLETED:
        actual = format_duration(last.ended_t or 0) if last else "0s"
        planned = format_duration(data.started.planned_s) if data.started else "?"
        skipped = [s for s in data.stages if s.outcome == "skipped"]
        said = f"promoted to 100% in {actual}" + (" as planned" if actual == planned else f" (planned {planned})")
        said += f"; {len(skipped)} stage{'s' if len(skipped) != 1 else ''} skipped by promote" if skipped else "; every window held"
        fired = held_without_acting(data)
        return said + (f"; {len(fired)} trigger{'s' if len(fired) != 1 else ''} fired without acting (Issues)" if fired else "")
    if state.phase == Phase.GATE_FAILED:
        failed = [r.item for r in data.preflight.values() if r.required and r.status not in ("pass", "cancelled")]
        return f"stopped at the pre-flight gate: {len(failed)} required item{'s' if len(failed) != 1 else ''} did not pass ({_few(failed)})"
    stage = data.current
    if state.phase == Phase.PAUSED:
        return f"paused {_stage_phrase(stage, state.paused_t)}: {state.paused_reason}"
    if state.phase == Phase.AWAITING_PROMOTE:
        return f"{stage.name if stage else 'a stage'} held its window and waits for a promote"
    if state.phase == Phase.RUNNING and stage is not None:
        return f"running, {_stage_phrase(stage, state.last_t)} (journal ends at {data.clock(state.last_t)})"
    return "the pre-flight gate had not finished when the journal ends"


def _why_short(data: ReportData, rollback: RollbackRecord) -> str:
    """The rollback's reason in a few words: the breach and its value, and whether a pause went undecided."""
    limit, sample = trigger_limit(data, rollback), rollback.sample
    pause = data.pauses[-1] if data.pauses and rollback.reason.startswith("paused") else None
    if limit is not None and sample is not None:
        value = (sample.metrics.get(limit.check.metric) or {}).get("canary")
        why = f"{limit.check.metric} {data.shown(limit.check.metric, value)} {limit.check.describe()} ({limit.kind})"
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
    if state.phase == Phase.ROLLING_BACK:
        return "ROLLBACK NOT VERIFIED: the new version may still serve traffic (see Rollback Plan)"
    if state.phase == Phase.ROLLED_BACK:
        verified = rollback.verified if rollback else None
        if rollback is not None and rollback.stage is None and not rollback.after_completion:
            return f"nothing was changed: the running version serves as before; {flags}"
        check = "verified" if verified and verified.healthy else f"not verified healthy: {verified.detail}" if verified else "not verified"
        return f"stable serves 100% on {data.old_image} ({check}); {flags}"
    if state.phase == Phase.COMPLETED:
        return f"the new version serves 100% on {data.started.image if data.started else '?'}; {flags}"
    if state.phase == Phase.GATE_FAILED:
        return f"nothing was changed: the running version serves as before; {flags}"
    if state.active:
        return f"UNFINISHED: the new version serves {state.weight}%; a person decides (see Rollback Plan); {flags}"
    return f"nothing has changed yet; {flags}"


def rollback_section(data: ReportData) -> list[str]:
    rollback = data.rollback
    if rollback is None or data.state.phase not in (Phase.ROLLED_BACK, Phase.ROLLING_BACK):
        return []
    lines = ["## Why it was rolled back", ""]
    when = "after the release had completed" if rollback.after_completion else _stage_phrase(rollback.stage, rollback.t)
    lines += bullet(f"Decision at `{data.clock(rollback.t)}`, {when}: {rollback.reason}")
    lines += bullet(f"Trigger: {_trigger_text(data, rollback)}")
    lines += _breach_sample(data, rollback)
    if data.state.phase == Phase.ROLLING_BACK:
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
    if rollback.trigger.startswith(JUDGE_TRIGGER_PREFIX):
        return _judge_text(rollback)
    limit = trigger_limit(data, rollback)
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


def _judged(rollback: RollbackRecord) -> JudgeEvidence | None:
    """The sequential judge's evidence, on the sample its rollback was decided on, about the metric it names."""
    entry = rollback.sample.judge.get(trigger_metric(rollback.trigger)) if rollback.sample else None
    return JudgeEvidence.from_journal(entry) if isinstance(entry, dict) else None


def _judge_text(rollback: RollbackRecord) -> str:
    evidence = _judged(rollback)
    what = evidence.counted if evidence else trigger_metric(rollback.trigger).replace("_", " ")
    said = (
        f"evidence beyond doubt that the new version's {what} exceed stable's by more than the plan's tolerance"
        " (analysis.tolerance), from the counts both tracks served over the whole rollout"
    )
    return f"{trigger_said(rollback.trigger)}: {said}" + (f" ({evidence.e_value_said})" if evidence and evidence.e_value_said else "")


def _breach_sample(data: ReportData, rollback: RollbackRecord) -> list[str]:
    sample = rollback.sample
    if sample is None:
        return []
    held: dict[str, list[Limit]] = {}
    for _, _, limit in held_on(data, sample):
        held.setdefault(limit.check.metric, []).append(limit)
    stage = data.stage(sample.stage)
    criteria = stage.criteria if stage else []
    named = trigger_metric(rollback.trigger)
    judged = _judged(rollback) if named != rollback.trigger else None
    breached = list(dict.fromkeys(([named] if judged else []) + sample.breaches))
    metrics = breached or ([named] if named in sample.metrics else stage.judged if stage else [])
    which = "The sample that breached" if breached else "The last sample before it"
    rows = []
    for metric in metrics:
        values = sample.metrics.get(metric) or {}
        canary, stable = values.get("canary"), values.get("stable")
        failed = [Limit(c, "criterion") for c in criteria if c.metric == metric and c.holds(canary, stable) is False]
        limits = [limit.describe() for limit in sorted(held.get(metric, []) + failed, key=lambda limit: SEVERITY_RANK[limit.kind])]
        if judged and metric == named:
            limits.insert(0, f"the sequential judge: {judged.counted} {judged.said()} of stable's")
        rows.append([metric, data.shown(metric, canary), data.shown(metric, stable), "; ".join(limits) or "none"])
    lines = bullet(f"{which}, at `{data.clock(sample.t)}`" + (f" ({'; '.join(sample.errors)})" if sample.errors else "") + ":")
    return lines + [""] + table(["metric", "new version", "stable", "limits it broke"], rows) + [""]
