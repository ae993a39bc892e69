"""Judgement of samples and windows: pure functions, table-tested, no I/O and no clock.

A sample is judged against the stage's criteria and the plan's triggers; the streaks of
breaches and of inconclusive samples carry from one sample to the next; the window is judged
once, when it ends, on its means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from console.journal.window import WindowStats
from console.metric_catalogue import TRAFFIC_METRICS
from console.plan.checks import Check
from console.samples import Sample, TrackValues
from console.units import format_duration, format_metric_value

if TYPE_CHECKING:
    from console.plan.model import Stage, Trigger

INCONCLUSIVE_STREAK = "inconclusive"

MetricVerdict = Literal["pass", "inconclusive", "unmet", "warning", "critical"]
"""How one sample judged one metric: every check of it held; no usable value (missing, or set aside on
too little traffic); a stage criterion not met (the window decides the stage); a warning or critical
trigger's breach condition held (whether or not its streak acts yet)."""
VERDICT_RANK: dict[str, int] = {"pass": 0, "inconclusive": 1, "unmet": 2, "warning": 3, "critical": 4}
"""A metric judged by several checks takes the worst of their verdicts."""


def trigger_key(trigger: Trigger) -> str:
    check = trigger.check
    return f"{trigger.severity}:{check.metric}{check.op}{check.value:g}{'x' if check.relative else ''}"


@dataclass(frozen=True)
class SampleJudgement:
    verdict: Literal["pass", "breach", "inconclusive"]
    failed_criteria: tuple[Check, ...]
    """Stage criteria this sample did not meet (shown; the window decides the stage)."""
    held_triggers: tuple[Trigger, ...]
    """Triggers whose breach condition held on this sample."""
    clear_triggers: tuple[Trigger, ...]
    """Triggers that could be judged and did not breach (their streaks reset)."""
    inconclusive: tuple[str, ...]
    """Metrics judged on this sample that had no usable value."""
    thin_traffic: str = ""
    """Why rates and latencies were set aside: fewer canary requests than min_requests."""
    verdicts: dict[str, MetricVerdict] = field(default_factory=dict)
    """Each metric a check judged, and how (the console shows these, never a judgement of its own)."""


def usable_values(sample: Sample, min_requests: int) -> dict[str, TrackValues]:
    """The sample's values, with rates and latencies dropped when the canary saw too little traffic."""
    thin = sample.canary_requests is None or sample.canary_requests < min_requests
    return {metric: TrackValues(None, values.stable) if thin and metric in TRAFFIC_METRICS else values for metric, values in sample.values.items()}


def judge_sample(sample: Sample, stage: Stage, triggers: tuple[Trigger, ...], min_requests: int) -> SampleJudgement:
    values = usable_values(sample, min_requests)
    missing = TrackValues(None, None)
    inconclusive: list[str] = []
    verdicts: dict[str, MetricVerdict] = {}

    def outcome(check: Check, breach: bool, breached: MetricVerdict) -> bool | None:
        """Whether `check` holds; `breach`: the result that is a breach, said of the metric as `breached`."""
        track = values.get(check.metric, missing)
        result = check.holds(track.canary, track.stable)
        if result is None and check.metric not in inconclusive:
            inconclusive.append(check.metric)
        verdict: MetricVerdict = "inconclusive" if result is None else breached if result is breach else "pass"
        if VERDICT_RANK[verdict] >= VERDICT_RANK[verdicts.get(check.metric, "pass")]:
            verdicts[check.metric] = verdict
        return result

    failed = tuple(check for check in stage.criteria if outcome(check, False, "unmet") is False)
    held, clear = [], []
    for trigger in triggers:
        result = outcome(trigger.check, True, trigger.severity)
        if result is True:
            held.append(trigger)
        elif result is False:
            clear.append(trigger)
    verdict = "breach" if failed or held else ("inconclusive" if inconclusive else "pass")
    thin = ""
    if sample.canary_requests is not None and sample.canary_requests < min_requests:
        thin = f"the canary served {sample.canary_requests:.0f} requests, fewer than min_requests {min_requests}"
    return SampleJudgement(verdict, failed, tuple(held), tuple(clear), tuple(inconclusive), thin, verdicts)


@dataclass(frozen=True)
class Decision:
    action: Literal["continue", "pause", "rollback"]
    reason: str = ""
    trigger: str = ""


def describe_breach(trigger: Trigger, values: Mapping[str, TrackValues]) -> str:
    check = trigger.check
    track = values.get(check.metric, TrackValues(None, None))
    shown = format_metric_value(check.metric, track.canary, check.percent)
    streak = f", {check.consecutive} samples in a row" if check.consecutive > 1 else ""
    return f"{check.metric} {shown} {check.describe()} ({trigger.severity}{streak})"


def decide(
    judgement: SampleJudgement,
    streaks: Mapping[str, int],
    sample: Sample,
    inconclusive_limit: int,
    pause_on_warning: bool = True,
) -> tuple[dict[str, int], Decision]:
    """The new streaks and what to do: critical → rollback, warning → pause, too long inconclusive → pause."""
    updated = dict(streaks)
    for trigger in judgement.held_triggers:
        updated[trigger_key(trigger)] = updated.get(trigger_key(trigger), 0) + 1
    for trigger in judgement.clear_triggers:
        updated.pop(trigger_key(trigger), None)
    if judgement.inconclusive:
        updated[INCONCLUSIVE_STREAK] = updated.get(INCONCLUSIVE_STREAK, 0) + 1
    else:
        updated.pop(INCONCLUSIVE_STREAK, None)

    acting = [t for t in judgement.held_triggers if updated[trigger_key(t)] >= t.check.consecutive]
    for severity, action in (("critical", "rollback"), ("warning", "pause")):
        firing = [t for t in acting if t.severity == severity]
        if firing and (action == "rollback" or pause_on_warning):
            reason = "; ".join(describe_breach(t, sample.values) for t in firing)
            return updated, Decision(action, reason, firing[0].check.metric)
    if pause_on_warning and updated.get(INCONCLUSIVE_STREAK, 0) >= inconclusive_limit:
        detail = "; ".join(filter(None, (*sample.errors, judgement.thin_traffic))) or "no usable data"
        metrics = ", ".join(judgement.inconclusive)
        reason = f"inconclusive for {updated[INCONCLUSIVE_STREAK]} samples in a row ({metrics}): {detail}"
        return updated, Decision("pause", reason, "inconclusive")
    return updated, Decision("continue")


@dataclass(frozen=True)
class WindowJudgement:
    outcome: Literal["pass", "fail", "inconclusive"]
    reason: str
    means: dict[str, TrackValues]
    metric: str = ""
    """The first metric that failed or had no data."""


def judge_window(stage: Stage, window: WindowStats, elapsed_s: float, min_coverage: float) -> WindowJudgement:
    """Whether the whole window held the stage's criteria, judged on its means and its coverage.

    Coverage is the share of the window's time (`elapsed_s`, from its start to its last sample, at least
    the stage's observe) that conclusive samples measured: samples landing late cost nothing while they
    measure the time since the one before, and a hole or an inconclusive sample costs its time.
    """
    means = window.means()
    length = max(stage.observe, elapsed_s)
    coverage = window.covered_s / length if length > 0 else 1.0
    if coverage < min_coverage - 1e-9:
        covered = format_duration(window.covered_s)
        reason = f"usable data covered only {covered} of the {format_duration(length)} window ({coverage:.0%} < {min_coverage:.0%})"
        return WindowJudgement("inconclusive", reason, means, "coverage")
    failed: list[tuple[str, str]] = []
    unknown: list[str] = []
    for check in stage.criteria:
        track = means.get(check.metric, TrackValues(None, None))
        held = check.holds(track.canary, track.stable)
        if held is None:
            unknown.append(check.metric)
        elif not held:
            shown = format_metric_value(check.metric, track.canary, check.percent)
            failed.append((check.metric, f"{check.metric} mean {shown} not {check.describe()}"))
    if failed:
        reason = f"{stage.name} window failed: " + "; ".join(text for _, text in failed)
        return WindowJudgement("fail", reason, means, failed[0][0])
    if unknown:
        return WindowJudgement("inconclusive", f"no window data for {', '.join(unknown)}", means, unknown[0])
    return WindowJudgement("pass", "", means)
