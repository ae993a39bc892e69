"""How the Metrics Summary judges a metric: against the limits and the stable baseline, never on
relative change alone. Pure functions over running moments, table-tested."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from console import metric_catalogue
from console.plan.checks import Check

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
SEVERITY_RANK = {"critical": 0, "warning": 1, "criterion": 2}


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
    return own[0].bounds_above if own else metric_catalogue.higher_is_worse(metric)


def nearest_bound(metric: str, limits: list[Limit], stable: float | None) -> tuple[float, Limit] | None:
    """The limit the new version would reach first going the worse way, and its value."""
    worse_up = higher_is_worse(metric, limits)
    bounds = [
        (value, limit)
        for limit in limits
        if limit.check.metric == metric and limit.bounds_above == worse_up and (value := limit.check.limit(stable)) is not None
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
