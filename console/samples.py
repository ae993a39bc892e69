"""The vocabulary of a sample: one metric's value on both tracks, and a sample of every judged metric.

Metric sources give samples; targets give some of their values too (a cluster's pod health); the
analysis judges them. Each reads them here, so none of them imports another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter

TRACKS = ("canary", "stable")
"""The two tracks a sample compares: the new version and the one it replaces."""


@dataclass(frozen=True)
class TrackValues:
    """One metric on both tracks; None where the source returned nothing (never a pass)."""

    canary: float | None
    stable: float | None


@dataclass(frozen=True)
class TrackCounts:
    """What one track served over a sample's interval: the counts its rates and quantiles are derived from,
    and the evidence the judge weighs (counters are floats: a count may be a fraction)."""

    requests: float
    errors: float
    latency_buckets: tuple[tuple[float, float], ...] = ()
    """(upper bound in seconds, requests that took at most that long): cumulative, bounds ascending, the
    last one inf (so its count is `requests`); empty when the source has no latency histogram."""

    @cached_property
    def finite(self) -> bool:
        """Every count a finite number and every bound one or inf: counts a source gave as NaN are no evidence
        (asked of each sample by every check and the judge, so worked out once)."""
        counts = (self.requests, self.errors, *map(itemgetter(1), self.latency_buckets))
        # -inf < bound holds for every finite bound and inf, and fails for NaN and -inf
        return all(map(math.isfinite, counts)) and all(map((-math.inf).__lt__, map(itemgetter(0), self.latency_buckets)))

    @cached_property
    def derived(self) -> dict[object, object]:
        """What readers worked out from these counts, kept with them: counts many replays share (brahma calibrate,
        console/backtest/shared.py) are weighed by the judge once, not once a replay. Each key names all it depends on."""
        return {}

    def to_dict(self) -> dict[str, object]:
        """As journaled: the inf bound written as null, since JSON has no infinity."""
        buckets = [[None if math.isinf(bound) else bound, count] for bound, count in self.latency_buckets]
        return {"requests": self.requests, "errors": self.errors, "latency_buckets": buckets}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrackCounts:
        buckets = tuple((math.inf if bound is None else float(bound), float(count)) for bound, count in data.get("latency_buckets") or ())  # type: ignore[union-attr]
        return cls(float(data["requests"]), float(data["errors"]), buckets)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Sample:
    """One reading of a metric source: every metric's canary and stable values."""

    values: dict[str, TrackValues]
    canary_requests: float | None
    """Requests the canary served over the window the values cover (Prometheus: max(interval, 4 scrapes)),
    the requests behind the judged rates; None when unknown."""
    errors: tuple[str, ...] = field(default=())
    """What went wrong fetching (timeouts, HTTP errors, several series where one was expected)."""
    canary_counts: TrackCounts | None = None
    """The canary's counts over the sample's interval; None when the source gives none."""
    stable_counts: TrackCounts | None = None
    derived: dict[object, object] = field(default_factory=dict, init=False, compare=False, repr=False)
    """What readers worked out from this sample, kept with it: a sample many replays share (brahma calibrate,
    console/backtest/shared.py) is judged and written out once, not once a replay. Not an init field, so a
    sample `replace`d from this one starts with none."""


@dataclass(frozen=True)
class HistoryPoint:
    """A metric's canary and stable values at `t` on the rollout's clock (the chart's points)."""

    t: float
    canary: float | None
    stable: float | None
