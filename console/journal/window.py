"""A window's running totals, as the state fold keeps them: constant memory however long the window."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from console.samples import TrackValues


@dataclass
class RunningMean:
    """A mean updated one value at a time, in constant memory and without overflowing."""

    mean: float = 0.0
    count: int = 0

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.count += 1
        self.mean += value / self.count - self.mean / self.count

    @property
    def value(self) -> float | None:
        return self.mean if self.count else None


@dataclass
class MetricTotals:
    canary: RunningMean = field(default_factory=RunningMean)
    stable: RunningMean = field(default_factory=RunningMean)

    def add(self, canary: float | None, stable: float | None) -> None:
        self.canary.add(canary)
        self.stable.add(stable)

    def means(self) -> TrackValues:
        return TrackValues(self.canary.value, self.stable.value)


@dataclass
class WindowStats:
    """Running totals of one observation window: constant memory however long the window."""

    samples: int = 0
    conclusive: int = 0
    covered_s: float = 0.0
    """Window time that conclusive samples measured: what coverage is judged on."""
    metrics: dict[str, MetricTotals] = field(default_factory=dict)

    def add(self, metrics: Mapping[str, Mapping[str, float | None]], conclusive: bool, covered_s: float) -> None:
        """A sample's values; `covered_s`, the part of the window it measured (counted only when conclusive)."""
        self.samples += 1
        self.conclusive += conclusive
        self.covered_s += covered_s if conclusive else 0.0
        for name, values in metrics.items():
            self.metrics.setdefault(name, MetricTotals()).add(values.get("canary"), values.get("stable"))

    def means(self) -> dict[str, TrackValues]:
        return {name: totals.means() for name, totals in self.metrics.items()}
