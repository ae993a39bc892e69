"""Judgement of samples and windows: pure functions, table-tested, no I/O and no clock.

A sample is judged against the stage's criteria and the plan's triggers; the streaks of
breaches and of inconclusive samples carry from one sample to the next; the window is judged
once, when it ends, on its summed counts or its means.

Rates derived from the request counts (error_rate, success_rate) are judged on the counts where the
source gives them: 2 errors in 100 requests are evidence, not "2%". A rate is over its limit only when
the limit lies beyond its confidence interval (console/judge/rate_bound.py) at the plan's alpha.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from console.journal.window import WindowStats
from console.judge.rate_bound import countable, rate_bounds, rate_excluded
from console.judge.rate_ratio import RateRatioTest
from console.metric_catalogue import CATALOGUE, FRACTION_METRICS, TRAFFIC_METRICS
from console.plan.checks import Check
from console.samples import Sample, TrackCounts, TrackValues
from console.units import format_duration, format_metric_value

if TYPE_CHECKING:
    from console.plan.model import Stage, Trigger

INCONCLUSIVE_STREAK = "inconclusive"
COUNTED_RATES = frozenset(name for name in FRACTION_METRICS if CATALOGUE[name].source == "requests")
"""The rates derived from the request counts: error_rate, and success_rate (1 − error_rate, as console/derived.py has it)."""

MetricVerdict = Literal["pass", "inconclusive", "unmet", "warning", "critical"]
"""How one sample judged one metric: every check of it held; no usable value (missing, or set aside on
too little traffic); a stage criterion not met (the window decides the stage), or a trigger's condition
held on a rate's estimate but not beyond doubt (no breach); a warning or critical trigger's breach
condition held (whether or not its streak acts yet)."""
VERDICT_RANK: dict[str, int] = {"pass": 0, "inconclusive": 1, "unmet": 2, "warning": 3, "critical": 4}
"""A metric judged by several checks takes the worst of their verdicts."""


def trigger_key(trigger: Trigger) -> str:
    check = trigger.check
    return f"{trigger.severity}:{check.metric}{check.op}{check.value:g}{'x' if check.relative else ''}"


@dataclass(frozen=True)
class CountedRate:
    """A rate from one track's counts: its estimate, and its confidence interval when it is asked for."""

    metric: str
    estimate: float
    errors: float
    requests: float
    alpha: float

    @classmethod
    def of(cls, metric: str, counts: TrackCounts | None, alpha: float) -> CountedRate | None:
        """None when `metric` is not a counted rate or the counts are no evidence (none, not numbers, no requests).

        The interval is rate_bound's confidence sequence at `alpha`: a confidence interval that stays valid
        however often it is looked at, so a limit checked on every sample, or on a window summed from them,
        calls a rate at its limit "over" with probability at most alpha at each look."""
        if metric not in COUNTED_RATES or counts is None or not counts.finite or counts.errors < 0 or not countable(counts.requests):
            return None
        error_rate = min(1.0, counts.errors / counts.requests)
        estimate = 1.0 - error_rate if metric == "success_rate" else error_rate
        return cls(metric, estimate, counts.errors, counts.requests, alpha)

    @cached_property
    def error_bounds(self) -> tuple[float, float]:
        """The interval of the errors' share, whichever rate this is (a bisection: only for what is shown)."""
        return rate_bounds(self.errors, self.requests, self.alpha)  # type: ignore[return-value]  # requests > 0

    @property
    def low(self) -> float:
        low, high = self.error_bounds
        return 1.0 - high if self.metric == "success_rate" else low

    @property
    def high(self) -> float:
        low, high = self.error_bounds
        return 1.0 - low if self.metric == "success_rate" else high

    def beyond_doubt(self, check: Check) -> bool | None:
        """True when `check` holds over the whole interval, False when it fails over all of it, None in doubt.
        A comparison with a number is monotone, so it is decided where the interval excludes the limit: one
        e-value at the limit, on every sample, where the interval's ends need a bisection each."""
        edge = 1.0 - check.value if self.metric == "success_rate" else check.value
        return check.holds(self.estimate, None) if rate_excluded(edge, self.errors, self.requests, self.alpha) else None

    def shown(self, percent: bool = False) -> str:
        return format_metric_value(self.metric, self.estimate, percent)

    def describe(self) -> str:
        """ "2 errors in 100 requests, 0.021%–12.2% of them": the interval of the errors' share, whichever rate this
        is (a success rate's interval rounded to two decimals could read as its limit: 99.95% for 99.945%)."""
        low, high = (format_metric_value("error_rate", bound) for bound in self.error_bounds)
        return f"{self.errors:,.0f} errors in {self.requests:,.0f} requests, {low}–{high} of them"


@dataclass(frozen=True)
class SampleJudgement:
    """How one sample measured up to the stage's criteria and the plan's triggers."""

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
    counted: dict[str, CountedRate] = field(default_factory=dict)
    """The rates whose triggers were judged on the canary's counts, with their intervals."""


def thin_traffic(sample: Sample, min_requests: int) -> bool:
    """Too few canary requests (or an unknown number) for its rates and latencies to mean anything."""
    return sample.canary_requests is None or sample.canary_requests < min_requests


def usable_values(sample: Sample, min_requests: int) -> dict[str, TrackValues]:
    """The sample's values, with rates and latencies dropped when the canary saw too little traffic."""
    thin = thin_traffic(sample, min_requests)
    return {metric: TrackValues(None, values.stable) if thin and metric in TRAFFIC_METRICS else values for metric, values in sample.values.items()}


def judge_sample(sample: Sample, stage: Stage, triggers: tuple[Trigger, ...], min_requests: int, alpha: float) -> SampleJudgement:
    """How the sample judges each criterion and trigger.

    A trigger on a counted rate, on a sample with the canary's counts, breaches only beyond doubt: when its
    limit lies outside the rate's interval at `alpha`. Over its limit on the estimate but not beyond doubt,
    it neither counts towards the trigger's streak nor clears it (like missing data, but no data is missing).
    A trigger acting on one such breach (critical) then calls a canary at its limit "over" with probability
    at most alpha on each sample; the interval, valid at every sample size, is wider than one made for a
    single look, so the chance is far smaller (tests/test_analysis.py measures it)."""
    values = usable_values(sample, min_requests)
    thin = thin_traffic(sample, min_requests)
    missing = TrackValues(None, None)
    inconclusive: list[str] = []
    verdicts: dict[str, MetricVerdict] = {}
    counted: dict[str, CountedRate] = {}

    def judged(metric: str, verdict: MetricVerdict) -> None:
        if VERDICT_RANK[verdict] >= VERDICT_RANK[verdicts.get(metric, "pass")]:
            verdicts[metric] = verdict

    def outcome(check: Check, breach: bool, breached: MetricVerdict) -> bool | None:
        """Whether `check` holds; `breach`: the result that is a breach, said of the metric as `breached`."""
        track = values.get(check.metric, missing)
        result = check.holds(track.canary, track.stable)
        if result is None and check.metric not in inconclusive:
            inconclusive.append(check.metric)
        judged(check.metric, "inconclusive" if result is None else breached if result is breach else "pass")
        return result

    def trigger_holds(trigger: Trigger) -> bool | None:
        check = trigger.check
        rate = None if thin or check.relative else counted.get(check.metric) or CountedRate.of(check.metric, sample.canary_counts, alpha)
        if rate is None:
            return outcome(check, True, trigger.severity)
        counted[check.metric] = rate
        if rate.beyond_doubt(check):
            judged(check.metric, trigger.severity)
            return True
        if check.holds(rate.estimate, None):
            judged(check.metric, "unmet")
            return None
        judged(check.metric, "pass")
        return False

    failed = tuple(check for check in stage.criteria if outcome(check, False, "unmet") is False)
    held, clear = [], []
    for trigger in triggers:
        result = trigger_holds(trigger)
        if result is True:
            held.append(trigger)
        elif result is False:
            clear.append(trigger)
    verdict = "breach" if failed or held else ("inconclusive" if inconclusive else "pass")
    thin_reason = ""
    if sample.canary_requests is not None and sample.canary_requests < min_requests:
        thin_reason = f"the canary served {sample.canary_requests:.0f} requests, fewer than min_requests {min_requests}"
    return SampleJudgement(verdict, failed, tuple(held), tuple(clear), tuple(inconclusive), thin_reason, verdicts, counted)


@dataclass(frozen=True)
class Decision:
    """What the controller does after a sample: continue, pause or roll back, and why."""

    action: Literal["continue", "pause", "rollback"]
    reason: str = ""
    trigger: str = ""


def describe_breach(trigger: Trigger, values: Mapping[str, TrackValues], counted: Mapping[str, CountedRate]) -> str:
    check = trigger.check
    rate = counted.get(check.metric)
    track = values.get(check.metric, TrackValues(None, None))
    shown = rate.shown(check.percent) if rate is not None else format_metric_value(check.metric, track.canary, check.percent)
    streak = f", {check.consecutive} samples in a row" if check.consecutive > 1 else ""
    evidence = f": {rate.describe()}" if rate is not None else ""
    return f"{check.metric} {shown} {check.describe()} ({trigger.severity}{streak}){evidence}"


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
            reason = "; ".join(describe_breach(t, sample.values, judgement.counted) for t in firing)
            return updated, Decision(action, reason, firing[0].check.metric)
    if pause_on_warning and updated.get(INCONCLUSIVE_STREAK, 0) >= inconclusive_limit:
        detail = "; ".join(filter(None, (*sample.errors, judgement.thin_traffic))) or "no usable data"
        metrics = ", ".join(judgement.inconclusive)
        reason = f"inconclusive for {updated[INCONCLUSIVE_STREAK]} samples in a row ({metrics}): {detail}"
        return updated, Decision("pause", reason, "inconclusive")
    return updated, Decision("continue")


@dataclass(frozen=True)
class WindowJudgement:
    """How a stage's observation window ended: passed, failed, or without enough data to say."""

    outcome: Literal["pass", "fail", "inconclusive"]
    reason: str
    means: dict[str, TrackValues]
    metric: str = ""
    """The first metric that failed or had no data."""
    the_service: bool = False
    """The window failed, and every criterion it failed stable fails too, with no significant difference
    between them: the service fails, not the canary, and a person decides rather than a rollback."""


@dataclass(frozen=True)
class Confidence:
    """How sure a window's judgement must be."""

    alpha: float
    """The level of every rate's interval, and of the window's own test of the canary against stable."""
    tolerance: float
    """How much worse than stable the canary may be and still count as no different (the judge's tolerance)."""
    judged_worse: Mapping[str, bool] = field(default_factory=dict)
    """The metrics the sequential judge tests, each with whether it has shown the canary worse than stable
    beyond the tolerance; the window compares the others itself."""


def judge_window(stage: Stage, window: WindowStats, elapsed_s: float, min_coverage: float, confidence: Confidence) -> WindowJudgement:
    """Whether the whole window held the stage's criteria, judged on its counts or its means and its coverage.

    Coverage is the share of the window's time (`elapsed_s`, from its start to its last sample, at least
    the stage's observe) that conclusive samples measured: samples landing late cost nothing while they
    measure the time since the one before, and a hole or an inconclusive sample costs its time.

    A criterion on a counted rate, where the window has the canary's counts, fails when its limit lies
    beyond the rate's interval (over beyond doubt) and holds when the estimate meets it; in between it is
    inconclusive, as missing data is. Other criteria are judged on the window's means.
    """
    means = window.means()
    length = max(stage.observe, elapsed_s)
    coverage = window.covered_s / length if length > 0 else 1.0
    if coverage < min_coverage - 1e-9:
        covered = format_duration(window.covered_s)
        reason = f"usable data covered only {covered} of the {format_duration(length)} window ({coverage:.0%} < {min_coverage:.0%})"
        return WindowJudgement("inconclusive", reason, means, "coverage")
    failed: list[tuple[str, str, bool]] = []
    unknown: list[tuple[str, str]] = []
    for check in stage.criteria:
        track = means.get(check.metric, TrackValues(None, None))
        rate = None if check.relative else CountedRate.of(check.metric, window.track_counts("canary"), confidence.alpha)
        held = _window_holds(check, rate, track)
        if held is None and rate is not None:
            unknown.append((check.metric, f"{check.metric} {rate.shown(check.percent)} not {check.describe()}, but not beyond doubt ({rate.describe()})"))
        elif held is None:
            unknown.append((check.metric, f"no window data for {check.metric}"))
        elif not held:
            shown = (
                f"{rate.shown(check.percent)} ({rate.describe()})"
                if rate is not None
                else f"mean {format_metric_value(check.metric, track.canary, check.percent)}"
            )
            text = f"{check.metric} {shown} not {check.describe()}"
            stable = _stable_fails_too(check, window, track, confidence)
            if stable is not None:
                text += f" — stable {stable} fails it too: the service, not the canary"
            failed.append((check.metric, text, stable is not None))
    if failed:
        reason = f"{stage.name} window failed: " + "; ".join(text for _, text, _ in failed)
        return WindowJudgement("fail", reason, means, failed[0][0], the_service=all(service for _, _, service in failed))
    if unknown:
        return WindowJudgement("inconclusive", "; ".join(text for _, text in unknown), means, unknown[0][0])
    return WindowJudgement("pass", "", means)


def _window_holds(check: Check, rate: CountedRate | None, track: TrackValues) -> bool | None:
    """On a rate's counts: False when the criterion fails beyond doubt, True when the estimate meets it, None
    in between. Without counts, on the means; None where data is missing (never a pass)."""
    if rate is None:
        return check.holds(track.canary, track.stable)
    if rate.beyond_doubt(check) is False:
        return False
    return True if check.holds(rate.estimate, None) else None


def _stable_fails_too(check: Check, window: WindowStats, track: TrackValues, confidence: Confidence) -> str | None:
    """Stable's value, shown, when stable fails the criterion the canary failed, as the canary is judged, and
    the canary is not worse than stable as far as the evidence tells; None otherwise (the canary's failure)."""
    if check.relative:  # a relative criterion failed: the canary is worse than stable by its own measure
        return None
    rate = CountedRate.of(check.metric, window.track_counts("stable"), confidence.alpha)
    if _window_holds(check, rate, TrackValues(track.stable, None)) is not False or _worse_than_stable(check, window, track, confidence):
        return None
    return rate.shown(check.percent) if rate is not None else format_metric_value(check.metric, track.stable, check.percent)


def _worse_than_stable(check: Check, window: WindowStats, track: TrackValues, confidence: Confidence) -> bool:
    """Whether the canary is worse than stable beyond the tolerance: the sequential judge's word where it tests
    the metric; on a counted rate otherwise, the judge's test run once on the window's counts (valid at any
    look, at the same alpha and tolerance); on the means, whether the canary is more than the tolerance worse."""
    if check.metric in confidence.judged_worse:
        return confidence.judged_worse[check.metric]
    canary, stable = window.track_counts("canary"), window.track_counts("stable")
    if check.metric in COUNTED_RATES and canary is not None and stable is not None:
        test = RateRatioTest(confidence.tolerance)
        test.update(canary.requests, canary.errors, stable.requests, stable.errors)
        return test.evidence(confidence.alpha).rejects(confidence.alpha)
    if track.canary is None or track.stable is None:
        return True  # nothing to compare with: not shown to be the service's
    allowed = 1 + confidence.tolerance
    if check.op in ("<", "<="):  # the criterion says higher is worse
        return track.canary > track.stable * allowed
    if check.metric in FRACTION_METRICS or check.percent:  # a share where lower is worse: its shortfall from 100%
        return 1 - track.canary > (1 - track.stable) * allowed
    return track.canary * allowed < track.stable
