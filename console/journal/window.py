"""A window's running totals, as the state fold keeps them: constant memory however long the window."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from console.samples import TRACKS, TrackCounts, TrackValues


@dataclass
class RunningMean:
    """A mean updated one value at a time, in constant memory and without overflowing."""

    mean: float = 0.0
    count: int = 0

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        count = self.count = self.count + 1
        self.mean += value / count - self.mean / count

    @property
    def value(self) -> float | None:
        return self.mean if self.count else None


@dataclass
class MetricTotals:
    """One metric's running means over a window, canary and stable."""

    canary: RunningMean = field(default_factory=RunningMean)
    stable: RunningMean = field(default_factory=RunningMean)

    def add(self, canary: float | None, stable: float | None) -> None:
        self.canary.add(canary)
        self.stable.add(stable)

    def means(self) -> TrackValues:
        return TrackValues(self.canary.value, self.stable.value)


@dataclass
class CountTotals:
    """Requests and errors one track served over a window: the evidence its rates are judged on."""

    requests: float = 0.0
    errors: float = 0.0

    def add(self, counts: object) -> None:
        """A sample's journaled counts (samples.TrackCounts.to_dict()); anything else is no evidence and is skipped."""
        if not isinstance(counts, Mapping):
            return
        requests, errors = counts.get("requests"), counts.get("errors")
        if _is_count(requests) and _is_count(errors):
            self.requests += requests  # type: ignore[operator]
            self.errors += errors  # type: ignore[operator]


def _is_count(number: object) -> bool:
    return isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number) and number >= 0


@dataclass
class WindowStats:
    """Running totals of one observation window: constant memory however long the window."""

    samples: int = 0
    conclusive: int = 0
    covered_s: float = 0.0
    """Window time that conclusive samples measured: what coverage is judged on."""
    metrics: dict[str, MetricTotals] = field(default_factory=dict)
    counts: dict[str, CountTotals] = field(default_factory=lambda: {track: CountTotals() for track in TRACKS})
    """Each track's requests and errors summed over the window's samples."""

    def add(
        self,
        metrics: Mapping[str, Mapping[str, float | None]],
        conclusive: bool,
        covered_s: float,
        counts: Mapping[str, object] | None = None,
    ) -> None:
        """A sample's values and its counts as journaled (track → counts); `covered_s`, the part of the window
        it measured (counted only when conclusive).

        Counts are summed from every sample, conclusive or not: a sample set aside for a missing metric or
        thin traffic still counted what its requests did, and the sum's interval weighs how many there were."""
        self.samples += 1
        self.conclusive += conclusive
        self.covered_s += covered_s if conclusive else 0.0
        totals = self.metrics
        for name, values in metrics.items():
            means = totals.get(name)
            if means is None:
                means = totals[name] = MetricTotals()
            means.add(values.get("canary"), values.get("stable"))
        counts = counts or {}
        for track, track_totals in self.counts.items():
            track_totals.add(counts.get(track))

    def track_counts(self, track: str) -> TrackCounts | None:
        """What `track` served over the window; None when it was never counted (a source without counts)."""
        totals = self.counts[track]
        return TrackCounts(totals.requests, totals.errors) if totals.requests > 0 else None

    def means(self) -> dict[str, TrackValues]:
        return {name: totals.means() for name, totals in self.metrics.items()}
