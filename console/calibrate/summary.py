"""The summary of an A/A calibration: rates with their intervals, each item's share and worst moment, and the
limits to write instead where an absolute limit fires on stable itself.

False rollbacks: a replay that ended rolled back, as a headless run ends (a pause with nobody to decide rolls
back after pause_timeout), counted over the replays that finished. Its interval is Wilson's score interval at
95%, once over the replays and once over as many as do not overlap: replays that start every few minutes
share most of their history, so their outcomes are far from independent, and the honest sample size is closer
to the range's length over a replay's (`independent_replays`) than to the number of replays.

A suggestion: for an absolute limit that stopped more than the target's share of the replays, the value that
the (1 - target) quantile of what it was judged on (outcomes.py) stays within, with a margin, rounded out to a
number a person writes; as a YAML snippet in the plan's own syntax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from console.backtest.times import format_wall
from console.calibrate.outcomes import Item, ReplayOutcome
from console.metric_catalogue import FRACTION_METRICS, LATENCY_METRICS
from console.plan.model import RolloutPlan
from console.units import format_duration, format_metric_value, limit_unit

CONFIDENCE_Z = 1.959963984540054
"""The standard normal's 97.5% quantile: two-sided 95% intervals."""
SUGGESTION_MARGIN = 0.1
"""A suggested limit sits this share (of the distance from the ideal: 0 for rates, 100% for success) beyond the
quantile it must clear, before rounding out, so the next week's noise does not sit right at it."""
NICE_STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
DEFAULT_TARGET = 0.01


def wilson(successes: float, trials: float, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """Wilson's score interval of a proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


@dataclass(frozen=True)
class Rate:
    count: int
    of: int
    independent: float
    """How many replays do not overlap: the interval's honest sample size."""

    @property
    def estimate(self) -> float:
        return self.count / self.of if self.of else 0.0

    def interval(self) -> tuple[float, float]:
        return wilson(self.count, self.of)

    def independent_interval(self) -> tuple[float, float]:
        """Wilson's interval over the independent replays, with the count scaled to them."""
        return wilson(self.estimate * self.independent, self.independent)

    def to_json(self) -> dict:
        low, high = self.interval()
        low_independent, high_independent = self.independent_interval()
        return {
            "count": self.count,
            "of": self.of,
            "estimate": self.estimate,
            "interval_95": [low, high],
            "independent_replays": round(self.independent, 2),
            "interval_95_independent": [low_independent, high_independent],
        }


@dataclass(frozen=True)
class ItemSummary:
    item: Item
    paused: int
    rolled_back: int
    worst: ReplayOutcome | None
    """The replay stopped by this item that saw the worst value of it (the first, without values)."""

    @property
    def stopped(self) -> int:
        return self.paused + self.rolled_back

    @property
    def worst_value(self) -> float | None:
        return None if self.worst is None else judged_value(self.item, self.worst)

    def worst_shown(self) -> str:
        value = self.worst_value
        return "" if value is None or not self.item.metric else format_metric_value(self.item.metric, value, bool(self.item.check and self.item.check.percent))


def judged_value(item: Item, outcome: ReplayOutcome) -> float | None:
    """What the item was judged on in the replay (outcomes.py): a criterion's window, a trigger's worst sample; for
    the judge and missing data, the decision's metric at the last sample before it."""
    if item.key in outcome.observed:
        return outcome.observed[item.key]
    return outcome.decision.value if outcome.decision is not None else None


@dataclass(frozen=True)
class Suggestion:
    item: Item
    current: str
    suggested: str
    value: float
    """The suggested limit, in the metric's unit (a fraction, milliseconds)."""
    quantile: float
    """The (1 - target) quantile of the values the item was judged on, that the suggestion clears."""
    would_stop: int
    """Replays whose judged value the suggested limit would still not accept."""
    judged: int
    """Replays in which the item was judged."""
    snippet: str


@dataclass(frozen=True)
class Calibration:
    plan: RolloutPlan
    from_wall: float
    to_wall: float
    every_s: float
    target: float
    outcomes: tuple[ReplayOutcome, ...]
    items: tuple[ItemSummary, ...]
    false_rollbacks: Rate
    false_pauses: Rate
    """Replays whose first decision was a pause (a person called; headless, a rollback after pause_timeout)."""
    suggestions: tuple[Suggestion, ...]
    a_a: str
    """How both tracks were drawn from stable: shifted by an interval, or two selectors."""
    cost: dict = field(default_factory=dict)
    """Wall and CPU time, workers, range queries: how the replays were run."""

    @property
    def finished(self) -> tuple[ReplayOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.finished)

    @property
    def exceeds_target(self) -> bool:
        return self.false_rollbacks.estimate > self.target

    def to_json(self) -> dict:
        finished = self.finished
        return {
            "plan": self.plan.name,
            "source": self.plan.source,
            "from": format_wall(self.from_wall),
            "to": format_wall(self.to_wall),
            "every_s": self.every_s,
            "a_a": self.a_a,
            "replays": {
                "started": len(self.outcomes),
                "finished": len(finished),
                "not_finished": len(self.outcomes) - len(finished),
                "promoted": sum(1 for outcome in finished if outcome.outcome == "promoted"),
                "rolled_back": self.false_rollbacks.count,
                "paused": self.false_pauses.count,
            },
            "false_rollback_rate": self.false_rollbacks.to_json(),
            "false_pause_rate": self.false_pauses.to_json(),
            "target": self.target,
            "exceeds_target": self.exceeds_target,
            "items": [_item_json(summary, self.target, len(finished)) for summary in self.items],
            "suggestions": [_suggestion_json(suggestion) for suggestion in self.suggestions],
            "cost": self.cost,
        }


def summarize(
    plan: RolloutPlan,
    items: Sequence[Item],
    outcomes: Sequence[ReplayOutcome],
    from_wall: float,
    to_wall: float,
    every_s: float,
    target: float = DEFAULT_TARGET,
    a_a: str = "",
    cost: dict | None = None,
) -> Calibration:
    finished = [outcome for outcome in outcomes if outcome.finished]
    replay_s = max(plan.planned_duration, every_s)
    independent = min(len(finished), len(finished) * every_s / replay_s) if finished else 0.0
    rolled_back = sum(1 for outcome in finished if outcome.outcome == "rolled back")
    paused = sum(1 for outcome in finished if outcome.decision is not None and outcome.decision.action == "pause")
    by_key = {item.key: item for item in items}
    for outcome in finished:  # items the plan does not list (drift, an error): shown as they came
        for key in outcome.decision.items if outcome.decision else ():
            if key not in by_key:
                by_key[key] = Item(key, f"other: {outcome.decision.reason}", "other")
    summaries = tuple(_item_summary(item, finished) for item in by_key.values())
    suggestions = tuple(
        suggestion
        for summary in summaries
        if summary.item.absolute and summary.stopped > target * len(finished)
        if (suggestion := suggest(plan, summary.item, finished, target)) is not None
    )
    return Calibration(
        plan,
        from_wall,
        to_wall,
        every_s,
        target,
        tuple(outcomes),
        summaries,
        Rate(rolled_back, len(finished), independent),
        Rate(paused, len(finished), independent),
        suggestions,
        a_a,
        cost or {},
    )


def _item_summary(item: Item, finished: Sequence[ReplayOutcome]) -> ItemSummary:
    stopped = [outcome for outcome in finished if outcome.decision is not None and item.key in outcome.decision.items]
    paused = sum(1 for outcome in stopped if outcome.decision.action == "pause")
    worst = None
    if stopped:

        def badness(outcome: ReplayOutcome) -> float:
            value = judged_value(item, outcome)
            if value is None:
                return -math.inf
            return value if item.worse_is_higher else -value

        worst = max(stopped, key=badness)
    return ItemSummary(item, paused, len(stopped) - paused, worst)


def _quantile(values: Sequence[float], q: float) -> float:
    """The q quantile of `values` by the nearest rank at or above it (never below: a limit must clear it)."""
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def suggest(plan: RolloutPlan, item: Item, finished: Sequence[ReplayOutcome], target: float) -> Suggestion | None:
    """The limit that the (1 - target) quantile of the item's judged values stays within; None without values."""
    check = item.check
    judged = [outcome.observed[item.key] for outcome in finished if item.key in outcome.observed]
    if check is None or not judged:
        return None
    upper = item.worse_is_higher
    quantile = _quantile(judged, 1 - target) if upper else -_quantile([-value for value in judged], 1 - target)
    value = _rounded_out(item.metric, quantile, upper, plan)
    if (value <= check.value) if upper else (value >= check.value):
        return None  # the limit already clears what stable showed: what stopped the replays was not its value alone
    moved = replace(check, value=value)
    breached = [moved.holds(observed, None) is (item.kind != "criterion") for observed in judged]  # a trigger holds to breach
    would_stop = sum(breached)
    suggested = f"{check.op} {written_value(plan, item.metric, value)}"
    current = f"{check.op} {written_value(plan, item.metric, check.value)}"
    return Suggestion(item, current, suggested, value, quantile, would_stop, len(judged), yaml_snippet(plan, item, suggested, current))


def _rounded_out(metric: str, quantile: float, upper: bool, plan: RolloutPlan) -> float:
    """A value past `quantile` by the margin, rounded out to a nice number: up where higher is worse, down otherwise
    (a share that must stay high, success_rate, rounded on its shortfall from 100%)."""
    shortfall = not upper and (metric in FRACTION_METRICS or limit_unit(metric, plan.metrics.units) == "percent")
    if shortfall:
        return 1 - _nice_up((1 - quantile) * (1 + SUGGESTION_MARGIN))
    if upper:
        return _nice_up(quantile * (1 + SUGGESTION_MARGIN))
    return _nice_down(quantile * (1 - SUGGESTION_MARGIN))


def _nice_up(value: float) -> float:
    if value <= 0:
        return value
    scale = 10 ** math.floor(math.log10(value))
    return next(round(step * scale, 12) for step in NICE_STEPS if step * scale >= value * (1 - 1e-12))


def _nice_down(value: float) -> float:
    if value <= 0:
        return value
    scale = 10 ** math.floor(math.log10(value))
    return max(round(step * scale, 12) for step in NICE_STEPS if step * scale <= value * (1 + 1e-12))


def written_value(plan: RolloutPlan, metric: str, value: float) -> str:
    """A limit's number as the plan writes it: "0.15%" (a percentage), "450ms" (latency), "0.05" (a fraction)."""
    if limit_unit(metric, plan.metrics.units) == "percent":
        return f"{round(value * 100, 10):g}%"
    if metric in LATENCY_METRICS:
        return f"{round(value, 6):g}ms"
    return f"{round(value, 10):g}"


def yaml_snippet(plan: RolloutPlan, item: Item, suggested: str, current: str) -> str:
    """The lines to paste into the plan, with a comment saying what they replace."""
    metric = item.metric
    if item.kind == "criterion":
        stage = plan.stages[item.stage]
        siblings = [check for check in stage.criteria if check.metric == metric]
        written = [suggested if check is item.check else f"{check.op} {written_value(plan, metric, check.value)}" for check in siblings]
        shown = f'"{written[0]}"' if len(written) == 1 else "[" + ", ".join(f'"{text}"' for text in written) + "]"
        named = f"    name: {stage.name}\n" if not stage.name.startswith("stage ") else ""
        return (
            f'# {stage.name} (weight {stage.weight}): {metric} "{current}" fired on stable itself\n'
            "# (a plan that takes the default stages writes them all out, as `brahma validate` lists them, with this one's criteria)\n"
            f"stages:\n  - weight: {stage.weight}\n{named}    criteria:\n      {metric}: {shown}\n"
        )
    consecutive = item.check.consecutive
    default_consecutive = 1 if item.kind == "critical" else 2
    when = f'"{suggested}"' if consecutive == default_consecutive else f'{{when: "{suggested}", consecutive: {consecutive}}}'
    return f'# {item.kind} trigger {metric} "{current}" fired on stable itself\ntriggers:\n  {item.kind}:\n    {metric}: {when}\n'


def _item_json(summary: ItemSummary, target: float, finished: int) -> dict:
    item = summary.item
    worst = summary.worst
    shown = None
    if worst is not None and worst.decision is not None:
        decision = worst.decision
        shown = {
            "at": format_wall(decision.at_wall),
            "replay_start": format_wall(worst.start_wall),
            "action": decision.action,
            "value": summary.worst_shown() or None,
            "reason": decision.reason,
        }
    return {
        "key": item.key,
        "item": item.label,
        "kind": item.kind,
        "paused": summary.paused,
        "rolled_back": summary.rolled_back,
        "share": summary.stopped / finished if finished else 0.0,
        "over_target": summary.stopped > target * finished,
        "worst": shown,
    }


def _suggestion_json(suggestion: Suggestion) -> dict:
    return {
        "key": suggestion.item.key,
        "item": suggestion.item.label,
        "current": suggestion.current,
        "suggested": suggestion.suggested,
        "quantile": suggestion.quantile,
        "would_stop": suggestion.would_stop,
        "judged": suggestion.judged,
        "yaml": suggestion.snippet,
    }


def _percent(value: float) -> str:
    return f"{value * 100:.2g}%" if value < 0.1 else f"{value * 100:.0f}%"


def render(calibration: Calibration) -> str:
    """The summary as a person reads it."""
    plan, finished = calibration.plan, calibration.finished
    rate = calibration.false_rollbacks
    low, high = rate.interval()
    low_i, high_i = rate.independent_interval()
    lines = [
        f"calibration of {plan.name} ({format_duration(plan.planned_duration)} planned): A/A over {format_wall(calibration.from_wall)} .. "
        f"{format_wall(calibration.to_wall)}, a replay every {format_duration(calibration.every_s)} ({calibration.a_a})",
        f"replays: {len(calibration.outcomes)} started, {len(finished)} finished "
        f"({sum(1 for o in finished if o.outcome == 'promoted')} promoted, {rate.count} rolled back, {calibration.false_pauses.count} paused first)",
        f"false rollbacks: {_percent(rate.estimate)} of the finished replays, 95% interval {_percent(low)}–{_percent(high)} "
        f"({_percent(low_i)}–{_percent(high_i)} counting only the {rate.independent:.1f} replays that do not overlap; overlapping replays are not independent)",
        f"target: under {_percent(calibration.target)}: " + ("EXCEEDED" if calibration.exceeds_target else "met"),
    ]
    stopping = [summary for summary in calibration.items if summary.stopped]
    if stopping:
        lines.append("what stopped them:")
    for summary in stopping:
        share = summary.stopped / len(finished) if finished else 0.0
        line = f"  {summary.item.label}: {summary.stopped} ({_percent(share)}; {summary.paused} by a pause, {summary.rolled_back} by an immediate rollback)"
        decision = summary.worst.decision if summary.worst else None
        if decision is not None:
            value = summary.worst_shown()
            line += f"; worst: the replay stopped at {format_wall(decision.at_wall)}" + (f" ({value})" if value else "")
        lines.append(line)
    if not stopping and finished:
        lines.append("nothing stopped a replay: every finished replay promoted")
    for suggestion in calibration.suggestions:
        lines.append(
            f"suggested: {suggestion.item.label} → {suggestion.suggested} "
            f"(stops {suggestion.would_stop} of the {suggestion.judged} replays that judged it, on what stable showed):"
        )
        lines.extend(f"    {line}" for line in suggestion.snippet.rstrip("\n").split("\n"))
    return "\n".join(lines)
