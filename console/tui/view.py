"""The controller's state as the widgets' plain data: what each pane shows, computed in one place."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from console.journal.evidence import JudgeEvidence, trigger_metric
from console.journal.state import Phase, RolloutState
from console.metric_catalogue import CATALOGUE, label
from console.narrate import DAY_S, rollout_clock, spans_days
from console.plan.checks import Check
from console.plan.model import RolloutPlan, Stage
from console.samples import TrackValues
from console.units import format_metric_value, shown_as_percent
from widgets.stage_track import StageInfo, StageStatus, TrackState

if TYPE_CHECKING:  # the panes' modules (and the DataTable they are built on) are loaded once the first frame shows
    from widgets.chart_screen import Band, ChartData
    from widgets.checklist import ChecklistItem
    from widgets.metric_table import MetricRow, Verdict


def stage_track(plan: RolloutPlan, state: RolloutState, now: float, keys: Mapping[str, str] | None = None) -> TrackState:
    """`keys`: binding id → key, for the keys the status line offers (none: a console that cannot act)."""
    stages = tuple(StageInfo(stage.name, stage_label(stage), _stage_status(stage.index, state)) for stage in plan.stages)
    current = plan.stages[state.stage] if 0 <= state.stage < len(plan.stages) else None
    window = current.observe if current and state.active else 0.0
    text, tone = state_line(state)
    text += rollout_days(plan, state, now)
    return TrackState(stages, min(window_elapsed(state, now), window), window, text, tone, next_steps(plan, state, keys or {}))


def rollout_days(plan: RolloutPlan, state: RolloutState, now: float) -> str:
    """` · day 3 of 7 · next: ⚑50% on Fri 14:00` for a rollout whose plan spans days (nothing for a shorter one):
    days counted from the first stage's start, the next step's time in the machine's zone, where a running
    window will end (none while it waits for a person: nobody knows when)."""
    if not spans_days(plan.planned_duration) or state.finished or not 0 <= state.stage < len(plan.stages):
        return ""
    said = f" · day {int(now // DAY_S) + 1} of {math.ceil(plan.planned_duration / DAY_S)}"
    current = plan.stages[state.stage]
    if state.phase != Phase.RUNNING or not state.last_ts:
        return said
    following = plan.stages[state.stage + 1] if state.stage + 1 < len(plan.stages) else None
    ends_t = now + current.observe - min(window_elapsed(state, now), current.observe)
    ends = (datetime.fromisoformat(state.last_ts) + timedelta(seconds=ends_t - state.last_t)).astimezone()
    what = f"next: {stage_label(following)}" if following else "completes"
    return f"{said} · {what} on {ends:%a %H:%M}"


def next_steps(plan: RolloutPlan, state: RolloutState, keys: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What a person can do about a pause, by key: space resume · p promote to 50% · ctrl+r roll back."""
    if state.phase != Phase.PAUSED:
        return ()
    following = plan.stages[state.stage + 1] if state.stage + 1 < len(plan.stages) else None
    promote = f"promote to {stage_label(following)}" if following else "complete the release"
    steps = (("rollout.resume", "resume"), ("rollout.promote", promote), ("rollout.rollback", "roll back"))
    return tuple((keys[binding], what) for binding, what in steps if binding in keys)


def window_elapsed(state: RolloutState, now: float) -> float:
    """How much of the stage's window has been observed: none before its traffic is in place, and the
    count stops while paused (a resume starts the window again)."""
    if state.shifted_stage != state.stage:
        return 0.0
    end = {Phase.RUNNING: now, Phase.PAUSED: state.paused_t}.get(state.phase, state.last_sample_t or now)
    return max(0.0, end - state.window_started_t)


def promote_question(plan: RolloutPlan, state: RolloutState, now: float, *, full: bool) -> tuple[str, str] | None:
    """(title, body) asking before a promote, saying what it skips; None for `p` after a window held."""
    current = plan.stages[state.stage]
    target = len(plan.stages) - 1 if full else state.stage + 1
    unobserved = 0.0 if state.stage in state.passed_stages else current.observe - min(window_elapsed(state, now), current.observe)
    if not full and unobserved <= 0:
        return None
    title = f"Promote to {stage_label(plan.stages[target])} now?" if target < len(plan.stages) else "Complete the release now?"
    said = [
        f"The {stage_label(current)} window has {rollout_clock(math.ceil(unobserved))} left unobserved."
        if unobserved > 0
        else f"The {stage_label(current)} window held."
    ]
    passed_over = [stage_label(stage) for stage in plan.stages[state.stage + 1 : target]]
    if passed_over:
        their = "its window" if len(passed_over) == 1 else "their windows"
        said.append(f"Skips {', '.join(passed_over)} and {their}.")
    return title, " ".join(said)


def image_forms(image: str) -> list[str]:
    """The image in less and less room: the registry host cut first, then the path; the tag never.

    `registry.example.com/checkout:2.4.1` → `…/checkout:2.4.1` → `checkout:2.4.1`.
    """
    path = image.split("/")
    forms = [image] + ["…/" + "/".join(path[cut:]) for cut in range(1, len(path))] + [path[-1]]
    return list(dict.fromkeys(forms))


def subtitle(strategy: str, image: str, room: int, read_only: bool = False) -> str:
    """The header's subtitle in `room` cells, the image's tag whole: `canary · …/checkout:2.4.1`."""
    note = " · read-only" if read_only else ""
    forms = image_forms(image)
    candidates = [f"{strategy} · {form}{note}" for form in forms] + [f"{forms[-1]}{note}"]
    return next((text for text in candidates if len(text) <= room), forms[-1])


def stage_label(stage: Stage) -> str:
    """The traffic weight ("25%"), or the flag step a stage takes ("⚑5%", "⚑int" for internal users)."""
    step = stage.flag_step
    if step is None:
        return f"{stage.weight}%"
    return "⚑int" if step.users and not step.percentage else f"⚑{step.percentage}%"


def _stage_status(index: int, state: RolloutState) -> StageStatus:
    if index == state.stage and state.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        return "failed"  # where the rollback happened, even in a stage whose window had held
    if index in state.passed_stages:
        return "done"
    if index in state.skipped_stages:
        return "skipped"
    return "current" if index == state.stage else "next"


def state_line(state: RolloutState) -> tuple[str, str]:
    split = f"new {state.weight}% · stable {100 - state.weight}%"
    match state.phase:
        case Phase.NEW | Phase.PREFLIGHT:
            waiting = any(item.status == "waiting" for item in state.preflight.values())
            return ("PRE-FLIGHT: waiting for sign-off (s)" if waiting else "PRE-FLIGHT: checks running"), "idle"
        case Phase.RUNNING:
            return f"RUNNING · {split}", "ok"
        case Phase.PAUSED:
            return f"PAUSED · {state.paused_reason}", "warn"
        case Phase.AWAITING_PROMOTE:
            return f"HELD · waiting for promote (p) · {split}", "warn"
        case Phase.ROLLING_BACK if state.rollback_failure:
            return f"ROLLBACK NOT VERIFIED · retrying · {state.rollback_failure.detail}", "bad"
        case Phase.ROLLING_BACK:
            return f"ROLLING BACK · {state.rollback_reason}", "bad"
        case Phase.ROLLED_BACK:
            return f"ROLLED BACK · {state.rollback_reason}", "bad"
        case Phase.COMPLETED:
            return "COMPLETE · the new version serves 100%", "ok"
        case Phase.GATE_FAILED:
            return "GATE FAILED · nothing was changed", "bad"
    return state.phase, "idle"


def _limit_checks(plan: RolloutPlan, state: RolloutState, metric: str) -> list[tuple[str, Check]]:
    """The checks that judge `metric` now: the stage's criteria, then the triggers."""
    stage = plan.stages[state.stage] if 0 <= state.stage < len(plan.stages) else plan.stages[0]
    checks = [("criterion", c) for c in stage.criteria if c.metric == metric]
    checks += [(t.severity, t.check) for t in plan.triggers if t.check.metric == metric]
    return checks


def metric_rows(plan: RolloutPlan, state: RolloutState, last_seen: dict[str, datetime]) -> list[MetricRow]:
    from widgets.metric_table import MetricRow

    rows = []
    for metric in plan.metric_names:
        history = state.history.get(metric, ())
        canary, stable = (history[-1][1], history[-1][2]) if history else (None, None)
        percent = shown_as_percent(metric, plan.metrics.units)
        shown = label(metric)
        evidence = state.judge.get(metric)
        limits = _limits(metric, shown, _limit_checks(plan, state, metric), percent, _judge_said(plan, evidence))
        if evidence is not None:
            limits["ratio"] = evidence.forms()
        trend = tuple(h[1] for h in history)
        if not history:
            rows.append(MetricRow(metric, shown, (), "—", "—", verdict="idle", **limits))
        elif canary is None:
            rows.append(MetricRow(metric, shown, trend, "no data", table_value(metric, stable, percent), verdict="nodata", **limits))
        else:
            rows.append(
                MetricRow(
                    metric,
                    shown,
                    trend,
                    table_value(metric, canary, percent),
                    table_value(metric, stable, percent),
                    verdict=row_verdict(state, metric),
                    **limits,
                )
            )
    return rows


def _judge_said(plan: RolloutPlan, evidence: JudgeEvidence | None) -> str:
    """The judge's evidence for the line under the table: "judge ×2.8 [1.1–5.8] of stable's errors, rolls back once sure >×1.2"."""
    if evidence is None:
        return ""
    return f"judge {evidence.said()} of stable's {evidence.counted}, {_judge_acts(plan)}"


def _judge_acts(plan: RolloutPlan) -> str:
    return f"rolls back once sure >×{1 + plan.tolerance:g}"


ROW_VERDICTS: dict[str, Verdict] = {"pass": "pass", "inconclusive": "nodata", "unmet": "warn", "warning": "warn", "critical": "fail"}
"""The controller's verdict on a metric (analysis.MetricVerdict) as the table marks it."""


def row_verdict(state: RolloutState, metric: str) -> Verdict:
    """The controller's verdict on `metric`, as its journal says: the last sample's, and the metric a
    rollback or a pause names (a window that failed on its means, the sequential judge's "judge:error_rate"
    among them). No check judged it: idle."""
    verdict = ROW_VERDICTS.get(state.last_verdicts.get(metric, ""), "idle")
    if state.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and trigger_metric(state.rollback_trigger) == metric:
        return "fail"
    if state.phase == Phase.PAUSED and trigger_metric(state.paused_trigger) == metric and verdict in ("idle", "pass"):
        return "warn"
    return verdict


def _limits(metric: str, shown: str, checks: list[tuple[str, Check]], percent: bool, judge: str = "") -> dict:
    """A row's limits, the pass condition apart from what acts: its cells, the line under the table
    (what acts first, the goal last, then the judge's evidence: a narrow line cuts what the table shows
    anyway), and the band its trend is drawn in."""
    kinds = {kind: [c for k, c in checks if k == kind] for kind in ("criterion", "warning", "critical")}

    def cell(of: list[Check]) -> str:
        return compact_limit(of[0]) + ("+" if len(of) > 1 else "") if of else ""

    def said(of: list[Check]) -> str:
        return " or ".join(compact_limit(c) + (f" ×{c.consecutive}" if c.consecutive > 1 else "") for c in of)

    parts = (("pauses", said(kinds["warning"])), ("rolls back", said(kinds["critical"])), ("must", " and ".join(map(compact_limit, kinds["criterion"]))))
    stated = [f"{what} {limits}" for what, limits in parts if limits] + ([judge] if judge else [])
    detail = f"{shown}: " + (" · ".join(stated) or "no limit in this stage")
    return {
        "must": cell(kinds["criterion"]),
        "pauses": cell(kinds["warning"]),
        "rolls_back": cell(kinds["critical"]),
        "detail": detail,
        "band": trend_band(checks, percent),
    }


def trend_band(checks: list[tuple[str, Check]], percent: bool) -> tuple[float, float] | None:
    """The band a metric's trend is drawn in, set by its limits, so noise far inside them draws flat:
    from zero to the first bound the canary must stay under (0.01% against "< 1%" draws at the
    bottom), or centred on the bound it must stay over. None when it has no absolute limit."""
    bounds = [(c.value, c.op in ("<", "<=") if kind == "criterion" else c.op in (">", ">=")) for kind, c in checks if not c.relative]
    uppers = [value for value, upper in bounds if upper]
    lowers = [value for value, upper in bounds if not upper]
    if uppers and min(uppers) > 0:
        return 0.0, min(uppers)
    if lowers:
        floor = max(lowers)
        ceiling = 1.0 if percent and floor < 1 else 2 * floor
        return 2 * floor - ceiling, ceiling
    return None


def table_value(metric: str, value: float | None, percent: bool) -> str:
    """A value as the table shows it: two significant digits under 1% (0.0097%), so it fits 80 columns."""
    if value is not None and percent and 0 < value * 100 < 1:
        return f"{value * 100:.2g}%"
    return format_metric_value(metric, value, percent)


COMPACT_OPERATORS = {"<=": "≤", ">=": "≥"}


def compact_limit(check: Check) -> str:
    """A limit that fits its column: "<500ms", "≤1.5×st" for 1.5 times stable."""
    op = COMPACT_OPERATORS.get(check.op, check.op)
    if check.relative:
        return f"{op}{check.value:g}×st"
    return f"{op}{format_metric_value(check.metric, check.value, check.percent)}"


def source_status(plan: RolloutPlan, state: RolloutState, last_seen: dict[str, datetime]) -> str:
    """What is wrong with the metric source, said in place: "canary: no data since 14:32:05 · <error>"."""
    missing = [m for m in plan.metric_names if (history := state.history.get(m)) and history[-1][1] is None]
    if not missing:
        return ""
    seen = [last_seen[m] for m in missing if m in last_seen]
    since = f"no data since {min(seen):%H:%M:%S}" if seen else "no data yet"
    error = state.last_errors[0] if state.last_errors else ""
    return f"canary: {since}" + (f" · {error}" if error else "")


CHECKLIST_STATES = {"pass": "pass", "fail": "fail", "error": "error", "waiting": "waiting", "running": "running", "cancelled": "pending"}
"""A journaled pre-flight status as the checklist shows it: a cancelled check never ran to its end."""


def checklist(plan: RolloutPlan, state: RolloutState) -> list[ChecklistItem]:
    from widgets.checklist import ChecklistItem

    items = []
    for spec in plan.preflight:
        result = state.preflight.get(spec.name)
        if result is None:
            items.append(ChecklistItem(spec.name, "running" if state.phase == Phase.PREFLIGHT else "pending", spec.required))
        else:
            status = CHECKLIST_STATES.get(result.status, "fail")  # a status this version does not know never reads as passed
            items.append(ChecklistItem(spec.name, status, spec.required, result.duration_s, result.by, result.output))
    return items


CHART_UNITS = {"ms": "ms", "rps": "req/s"}
"""A built-in metric's unit as a chart's title says it; percentages say %, other numbers "value"."""


def unit_of(metric: str, percent: bool) -> str:
    known = CATALOGUE.get(metric)
    if known and known.unit in CHART_UNITS:
        return CHART_UNITS[known.unit]
    return "%" if percent else "value"


def chart_data(plan: RolloutPlan, state: RolloutState, metric: str, backfill: list[tuple[float, TrackValues]] = ()) -> ChartData:
    """Canary and stable over time (percent for fractions), the limits as lines; for a metric the
    sequential judge weighs, its ratio to stable and the interval narrowing, against 1 + tolerance."""
    from widgets.chart_screen import ChartData, Limit

    percent = shown_as_percent(metric, plan.metrics.units)
    scale = 100.0 if percent else 1.0
    points = {t: TrackValues(v.canary, v.stable) for t, v in backfill}
    points.update({t: TrackValues(c, s) for t, c, s in state.history.get(metric, ())})
    times = sorted(points)

    def scaled(value: float | None) -> float | None:
        return None if value is None else value * scale

    acts = {"criterion": "must", "warning": "pauses", "critical": "rolls back"}
    limits = tuple(
        Limit(f"{acts[kind]} {compact_limit(check)}", check.value * scale, acts[kind])
        for kind, check in _limit_checks(plan, state, metric)
        if not check.relative
    )
    return ChartData(
        metric,
        unit_of(metric, percent),
        tuple(t / 60 for t in times),
        tuple(scaled(points[t].canary) for t in times),
        tuple(scaled(points[t].stable) for t in times),
        limits,
        _judge_band(plan, state, metric),
    )


def _judge_band(plan: RolloutPlan, state: RolloutState, metric: str) -> Band | None:
    from widgets.chart_screen import Band

    band = list(state.judge_history.get(metric, ()))
    if not band:
        return None
    return Band(
        tuple(point.t / 60 for point in band),
        tuple(point.ratio for point in band),
        tuple(point.low for point in band),
        tuple(point.high for point in band),
        1 + plan.tolerance,
        _judge_acts(plan),
    )
