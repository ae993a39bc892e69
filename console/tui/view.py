"""The controller's state as the widgets' plain data: what each pane shows, computed in one place."""

from __future__ import annotations

from datetime import datetime

from console.controller.state import RolloutState
from console.metrics.base import TrackValues
from console.plan.checks import Check
from console.plan.model import RolloutPlan
from console.units import FRACTION_METRICS, LATENCY_METRICS, format_metric_value
from widgets.chart_screen import ChartData
from widgets.checklist import ChecklistItem
from widgets.metric_table import MetricRow
from widgets.stage_track import StageInfo, TrackState


def stage_track(plan: RolloutPlan, state: RolloutState, now: float) -> TrackState:
    stages = []
    for stage in plan.stages:
        if stage.index in state.passed_stages or stage.index < state.stage:
            status = "done"
        elif stage.index == state.stage:
            status = "failed" if state.phase in ("rolling_back", "rolled_back") else "current"
        else:
            status = "next"
        step = stage.flag_step
        label = f"{stage.weight}%" if step is None else ("⚑int" if step.users and not step.percentage else f"⚑{step.percentage}%")
        stages.append(StageInfo(stage.name, label, status))
    current = plan.stages[state.stage] if 0 <= state.stage < len(plan.stages) else None
    window = current.observe if current and state.active else 0.0
    elapsed = max(0.0, now - state.window_started_t) if state.phase == "running" else (state.last_sample_t or now) - state.window_started_t
    text, tone = state_line(state)
    return TrackState(tuple(stages), min(elapsed, window), window, text, tone)


def state_line(state: RolloutState) -> tuple[str, str]:
    split = f"new {state.weight}% · stable {100 - state.weight}%"
    match state.phase:
        case "new" | "preflight":
            waiting = any(item.status == "waiting" for item in state.preflight.values())
            return ("PRE-FLIGHT: waiting for sign-off (s)" if waiting else "PRE-FLIGHT: checks running"), "idle"
        case "running":
            return f"RUNNING · {split}", "ok"
        case "paused":
            return f"PAUSED · {state.paused_reason}", "warn"
        case "awaiting_promote":
            return f"HELD · waiting for promote (p) · {split}", "warn"
        case "rolling_back" if state.rollback_failure:
            return f"ROLLBACK NOT VERIFIED · retrying · {state.rollback_failure.detail}", "bad"
        case "rolling_back":
            return f"ROLLING BACK · {state.rollback_reason}", "bad"
        case "rolled_back":
            return f"ROLLED BACK · {state.rollback_reason}", "bad"
        case "completed":
            return "COMPLETE · the new version serves 100%", "ok"
        case "gate_failed":
            return "GATE FAILED · nothing was changed", "bad"
    return state.phase, "idle"


def _limit_checks(plan: RolloutPlan, state: RolloutState, metric: str) -> list[tuple[str, Check]]:
    """The checks that judge `metric` now: the stage's criteria, then the triggers."""
    stage = plan.stages[state.stage] if 0 <= state.stage < len(plan.stages) else plan.stages[0]
    checks = [("criterion", c) for c in stage.criteria if c.metric == metric]
    checks += [(t.severity, t.check) for t in plan.triggers if t.check.metric == metric]
    return checks


LABELS = {
    "error_rate": "errors",
    "success_rate": "success",
    "latency_p50": "p50",
    "latency_p95": "p95",
    "latency_p99": "p99",
    "health_check_failures": "health fails",
    "memory_oom_kills": "OOM kills",
    "throughput": "req/s",
}


def metric_rows(plan: RolloutPlan, state: RolloutState, last_seen: dict[str, datetime]) -> list[MetricRow]:
    rows = []
    for metric in plan.metric_names:
        history = state.history.get(metric, ())
        canary, stable = (history[-1][1], history[-1][2]) if history else (None, None)
        checks = _limit_checks(plan, state, metric)
        criterion = next((c for kind, c in checks if kind == "criterion"), None)
        shown = criterion or (checks[0][1] if checks else None)
        limit = compact_limit(shown) if shown else ""
        if not history:
            rows.append(MetricRow(metric, LABELS.get(metric, metric), (), "—", "—", limit, "idle"))
            continue
        if canary is None:
            rows.append(MetricRow(metric, LABELS.get(metric, metric), tuple(h[1] for h in history), "no data", format_metric_value(metric, stable), limit, "nodata"))
            continue
        verdict = "pass"
        for kind, check in checks:
            holds = check.holds(canary, stable)
            if kind == "critical" and holds:
                verdict = "fail"
            elif kind == "criterion" and holds is False and verdict == "pass":
                verdict = "warn"
            elif kind == "warning" and holds and verdict == "pass":
                verdict = "warn"
        rows.append(MetricRow(metric, LABELS.get(metric, metric), tuple(h[1] for h in history), format_metric_value(metric, canary), format_metric_value(metric, stable), limit, verdict))
    return rows


def compact_limit(check: Check) -> str:
    """A limit that fits its column: "< 500ms", "<=1.5×st" for 1.5 times stable."""
    if check.relative:
        return f"{check.op}{check.value:g}×st"
    return check.describe()


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
    items = []
    for spec in plan.preflight:
        result = state.preflight.get(spec.name)
        if result is None:
            items.append(ChecklistItem(spec.name, "running" if state.phase == "preflight" else "pending", spec.required))
        else:
            status = CHECKLIST_STATES.get(result.status, "fail")  # a status this version does not know never reads as passed
            items.append(ChecklistItem(spec.name, status, spec.required, result.duration_s, result.by, result.output))
    return items


def unit_of(metric: str) -> str:
    if metric in LATENCY_METRICS:
        return "ms"
    if metric in FRACTION_METRICS:
        return "%"
    return "value"


def chart_data(plan: RolloutPlan, state: RolloutState, metric: str, backfill: list[tuple[float, TrackValues]] = ()) -> ChartData:
    """Canary and stable over time (percent for fractions), the limits as lines."""
    scale = 100.0 if metric in FRACTION_METRICS else 1.0
    points = {t: TrackValues(v.canary, v.stable) for t, v in backfill}
    points.update({t: TrackValues(c, s) for t, c, s in state.history.get(metric, ())})
    times = sorted(points)

    def scaled(value: float | None) -> float | None:
        return None if value is None else value * scale

    limits = tuple(
        (f"{kind} {check.describe()}", check.value * scale)
        for kind, check in _limit_checks(plan, state, metric)
        if not check.relative
    )
    return ChartData(
        metric,
        unit_of(metric),
        tuple(t / 60 for t in times),
        tuple(scaled(points[t].canary) for t in times),
        tuple(scaled(points[t].stable) for t in times),
        limits,
    )
