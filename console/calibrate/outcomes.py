"""What one A/A replay says: how it ended, which of the plan's items stopped it, and what each absolute limit saw.

An item is what can stop a release: a stage's criterion (its window failed, or could not be told to hold),
a critical or warning trigger, the sequential judge on one metric, or missing data. The controller names the
metric and gives a reason in its pause and rollback events; the stage (from the last stage_started) and the
reason's wording (console/controller/analysis.py writes it) tell which item of that metric it was.

Each absolute limit's observed value, per replay, is the worst value it was judged on: a criterion on a counted
rate (error_rate, success_rate) its stage window's rate from the canary's counts, as judge_window reads it, any
other criterion its window's mean, and a trigger its worst sample's value. A trigger
breaches only beyond doubt and some only after several samples in a row, so its worst sample is a conservative
stand-in: a limit past it would not have fired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from console.backtest.replay import note_judged_window
from console.controller.analysis import COUNTED_RATES
from console.journal import events as ev
from console.journal.state import RolloutState
from console.journal.window import WindowStats
from console.plan.checks import Check
from console.plan.model import RolloutPlan
from console.samples import TrackValues

NO_DATA = "no data"
JUDGE = "judge"
CRITERION = "criterion"
OTHER = "other"
NO_DATA_TRIGGERS = frozenset({"inconclusive", "coverage"})
"""What the controller names as the trigger of a pause for missing data (decide, judge_window)."""


@dataclass(frozen=True)
class Item:
    """Something in the plan that can pause or roll back a release."""

    key: str
    """Where it is written: stages[2].criteria.error_rate, triggers.critical.error_rate, analysis.judge.error_rate."""
    label: str
    """As a person reads it: `stage 3 (50%): error_rate < 0.1%`, `critical trigger: error_rate > 1%`."""
    kind: str
    """criterion, critical, warning, judge, no data, other."""
    metric: str = ""
    check: Check | None = None
    stage: int | None = None

    @property
    def worse_is_higher(self) -> bool:
        """Whether a higher value is the worse one: a criterion that must stay under its limit, or a trigger that breaches over it."""
        below = self.check is not None and self.check.op in ("<", "<=")
        return below if self.kind == CRITERION else not below

    @property
    def absolute(self) -> bool:
        """A limit on the canary's own value (not relative to stable): the kind calibration can suggest a value for."""
        return self.check is not None and not self.check.relative


def plan_items(plan: RolloutPlan) -> list[Item]:
    """Every item of the plan, in the plan's order: stages' criteria, triggers, the judge's metrics, missing data."""
    items = []
    for stage in plan.stages:
        for check in stage.criteria:
            same_metric = [other for other in stage.criteria if other.metric == check.metric]
            index = f"[{same_metric.index(check)}]" if len(same_metric) > 1 else ""
            label = f"{stage.name} ({stage.weight}%): {check.metric} {check.describe()}"
            items.append(Item(f"stages[{stage.index}].criteria.{check.metric}{index}", label, CRITERION, check.metric, check, stage.index))
    for trigger in plan.triggers:
        check = trigger.check
        label = f"{trigger.severity} trigger: {check.metric} {check.describe()}"
        items.append(Item(f"triggers.{trigger.severity}.{check.metric}", label, trigger.severity, check.metric, check))
    if plan.judge == "sequential":
        for metric in judged_metrics(plan):
            items.append(Item(f"analysis.judge.{metric}", f"sequential judge: {metric} worse than stable", JUDGE, metric))
    items.append(Item("analysis.inconclusive_limit", "no usable data (inconclusive samples or window coverage)", NO_DATA))
    return items


def judged_metrics(plan: RolloutPlan) -> tuple[str, ...]:
    """What the sequential judge tests (controller/sequential.py): errors always, the latency quantiles the plan judges."""
    from console.derived import QUANTILES

    return ("error_rate", *(metric for metric in plan.metric_names if metric in QUANTILES))


@dataclass(frozen=True)
class Decision:
    """The replay's first pause or rollback, and the items it was made for."""

    action: str
    """pause or rollback."""
    at_wall: float
    items: tuple[str, ...]
    """Item keys."""
    reason: str
    value: float | None = None
    """The canary's value of the decision's metric at the last sample before it (what a person would have seen)."""


@dataclass(frozen=True)
class ReplayOutcome:
    start_wall: float
    outcome: str
    """promoted, rolled back, or not finished (the history ended first)."""
    decision: Decision | None = None
    observed: dict[str, float] = field(default_factory=dict)
    """Absolute item key → the worst value it was judged on (see the module's docstring)."""
    cpu_s: float = 0.0
    """CPU time the replay took (its process's)."""

    @property
    def finished(self) -> bool:
        return self.outcome != "not finished"


def outcome_of(
    plan: RolloutPlan,
    start_wall: float,
    outcome: str,
    events: Sequence[ev.Event],
    items: Sequence[Item],
    cpu_s: float = 0.0,
    windows: Mapping[int, WindowStats] | None = None,
) -> ReplayOutcome:
    """The outcome of one replay, from its events (rollout time t, so wall time is start_wall + t), and the stages'
    windows where they were judged when the replay kept them (Replay.judged_windows; else folded from the events)."""
    decision = None
    stage = 0
    last_sample: ev.SampleTaken | None = None
    for event in events:
        if isinstance(event, ev.StageStarted):
            stage = event.stage
        elif isinstance(event, ev.SampleTaken):
            last_sample = event
        elif isinstance(event, ev.Paused | ev.RollbackStarted):
            action = "pause" if isinstance(event, ev.Paused) else "rollback"
            keys = tuple(item.key for item in attribute(plan, items, stage, event.trigger, event.reason, action))
            value = _canary_value(last_sample, event.trigger.removeprefix("judge:"))
            decision = Decision(action, start_wall + event.t, keys, event.reason, value)
            break
    return ReplayOutcome(start_wall, outcome, decision, observed_values(events, items, windows), cpu_s)


def _canary_value(sample: ev.SampleTaken | None, metric: str) -> float | None:
    if sample is None:
        return None
    return (sample.metrics.get(metric) or {}).get("canary")


def attribute(plan: RolloutPlan, items: Sequence[Item], stage: int, trigger: str, reason: str, action: str) -> list[Item]:
    """The items a pause or rollback (its trigger and reason) was made for."""
    if trigger.startswith("judge:"):
        return [item for item in items if item.kind == JUDGE and item.metric == trigger.removeprefix("judge:")]
    if trigger in NO_DATA_TRIGGERS:
        return [item for item in items if item.kind == NO_DATA]
    breach = [item for item in items if item.kind in ("critical", "warning") and item.metric == trigger and f"({item.kind}" in reason]
    if breach:
        return breach
    # A window that failed, or whose criteria could not be told to hold: one "; "-separated part per criterion,
    # each "<metric> <value> not <the criterion>".
    window_reason = reason.split(" window failed: ", 1)[-1]
    parts = window_reason.split("; ")
    criteria = [
        item
        for item in items
        if item.kind == CRITERION
        and item.stage == stage
        and any(part.startswith(f"{item.metric} ") and f"not {item.check.describe()}" in part for part in parts)
    ]
    if criteria:
        return criteria
    if reason.startswith("no window data"):
        return [item for item in items if item.kind == NO_DATA]
    return [Item(f"other.{trigger or action}", f"other: {reason}", OTHER, trigger)]


def observed_values(events: Sequence[ev.Event], items: Sequence[Item], windows: Mapping[int, WindowStats] | None = None) -> dict[str, float]:
    """Each absolute item's worst value in this replay (see the module's docstring). A stage's window is the
    journal's own (console/journal/state.py folds the events into it, as the controller judges it), taken where
    it was judged: when the stage passed, or at the replay's first pause or rollback. `windows`, when given, are
    those the replay's controller held there (Replay.judged_windows): the same fold, not done a second time."""
    samples = [event for event in events if isinstance(event, ev.SampleTaken)]
    if windows is None:
        windows = judged_windows(events)
    observed: dict[str, float] = {}
    for item in items:
        if not item.absolute:
            continue
        window = windows.get(item.stage)
        value = (_window_value(item, window) if window is not None else None) if item.kind == CRITERION else _worst_sample(item, samples)
        if value is not None:
            observed[item.key] = value
    return observed


def judged_windows(events: Iterable[ev.Event]) -> dict[int, WindowStats]:
    """Each stage's window where it was judged, folded from the replay's events (as the journal's state folds them)."""
    state = RolloutState()
    windows: dict[int, WindowStats] = {}
    for event in events:
        state.apply(event)
        note_judged_window(windows, state, event)
    return windows


def _window_value(item: Item, window: WindowStats) -> float | None:
    """What judge_window reads: a counted rate's canary counts, otherwise the canary's mean."""
    counts = window.track_counts("canary") if item.metric in COUNTED_RATES else None
    if counts is not None:
        return counts.errors / counts.requests if item.metric == "error_rate" else 1 - counts.errors / counts.requests
    return window.means().get(item.metric, TrackValues(None, None)).canary


def _worst_sample(item: Item, samples: Sequence[ev.SampleTaken]) -> float | None:
    values = [value for sample in samples if (value := (sample.metrics.get(item.metric) or {}).get("canary")) is not None]
    if not values:
        return None
    return max(values) if item.worse_is_higher else min(values)
