"""The sequential judge's evidence on a metric, as a sample event journals it (its `judge` field), read
back for the console and the runbook; and its history, the interval narrowing over the rollout."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

JUDGE_TRIGGER_PREFIX = "judge:"
"""A rollback's trigger when the sequential judge decided it: "judge:error_rate"."""


def trigger_metric(trigger: str) -> str:
    """The metric a rollback or pause trigger names: "judge:error_rate" and "error_rate" name error_rate;
    a trigger that names none ("operator", "drift") comes back as it is, matching no metric."""
    return trigger.removeprefix(JUDGE_TRIGGER_PREFIX)


def trigger_said(trigger: str) -> str:
    """A trigger as a person says it: "judge:error_rate" is "the sequential judge (error rate vs stable)";
    a metric's own limits and the rest ("operator", "drift") are said by their name."""
    if not trigger.startswith(JUDGE_TRIGGER_PREFIX):
        return trigger
    return f"the sequential judge ({trigger_metric(trigger).replace('_', ' ')} vs stable)"


def by_trigger(trigger: str) -> str:
    """A trigger after the words it qualifies: "rollback started (error_rate)", "rollback started by the
    sequential judge (error rate vs stable)"."""
    return f" by {trigger_said(trigger)}" if trigger.startswith(JUDGE_TRIGGER_PREFIX) else f" ({trigger})"


def _number(value: Any) -> float | None:
    """A journaled number; None for what is none (missing, null, a string, NaN): unknown, never zero."""
    if type(value) is float:  # nearly every one: spares the checks below
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _ratio(value: float) -> str:
    return f"{value:.2g}"


def _e_value(log_value: float) -> str:
    """exp(log_value) to two significant digits in plain figures ("140", "12,000", "0.03"); an overwhelming one is not computed."""
    if log_value >= 700:
        return "over 10^300"
    value = math.exp(log_value)
    return f"{value:.2g}" if value < 10 else f"{float(f'{value:.2g}'):,.0f}"


@dataclass(frozen=True)
class JudgeEvidence:
    """The rate ratio canary/stable the judge estimates over the whole rollout so far, with its
    confidence interval, and the counts behind it. For a latency metric the "errors" are requests slower
    than `bound_ms`."""

    ratio: float | None
    """None before any error (on either track) was seen."""
    low: float | None
    high: float | None
    """The interval's ends; None where it is unbounded (below or above every ratio the judge weighs)."""
    log_e: float | None = None
    log_threshold: float | None = None
    """The log e-value against "no worse than 1 + tolerance", and the one at which the judge rolls back."""
    canary_requests: float | None = None
    canary_errors: float | None = None
    stable_requests: float | None = None
    stable_errors: float | None = None
    bound_ms: float | None = None

    @classmethod
    def from_journal(cls, entry: Mapping[str, Any]) -> JudgeEvidence:
        """A `judge` entry of a sample event; a key missing or not a number reads as unknown."""
        return cls(**{name: _number(entry.get(name)) for name in _JOURNALED})

    def said(self) -> str:
        """ "×2.8 [1.1–5.8]"; an end the interval does not have is 0 or ∞, a ratio not estimated yet ×?."""
        ratio = f"×{_ratio(self.ratio)}" if self.ratio is not None else "×?"
        return f"{ratio} [{self.interval_said().removeprefix('×')}]"

    def interval_said(self) -> str:
        """The interval alone: "×1.1–5.8"."""
        low = _ratio(self.low) if self.low is not None else "0"
        high = _ratio(self.high) if self.high is not None else "∞"
        return f"×{low}–{high}"

    @property
    def counted(self) -> str:
        """What the ratio is of: "errors", or for a latency "requests slower than 500ms"."""
        return f"requests slower than {self.bound_ms:g}ms" if self.bound_ms is not None else "errors"

    @property
    def e_value_said(self) -> str:
        """How far the evidence got against the e-value that rolls back (1/alpha): "e-value 140 of the 100 that rolls back"."""
        if self.log_e is None or self.log_threshold is None:
            return ""
        return f"e-value {_e_value(self.log_e)} of the {_e_value(self.log_threshold)} that rolls back"

    def forms(self) -> tuple[str, ...]:
        """The evidence in less and less room: "×2.8 [1.1–5.8]", its interval "×1.1–5.8", the ratio "×2.8"."""
        return (self.said(), self.interval_said()) + ((f"×{_ratio(self.ratio)}",) if self.ratio is not None else ())


_JOURNALED = tuple(field.name for field in fields(JudgeEvidence))
"""The keys of a journaled entry, read for every metric of every sample."""


@dataclass(frozen=True)
class BandPoint:
    """The judge's rate ratio canary/stable at a sample, with its interval (None where it had no counts)."""

    t: float
    ratio: float | None
    low: float | None
    high: float | None


class BandHistory:
    """The judge's interval at each sample over the whole rollout, in at most `capacity` points: when full,
    every other point is dropped and only every other sample kept from then on, so the narrowing since
    the first stage stays in view, evenly spaced, however long the rollout. The latest point is always kept."""

    def __init__(self, capacity: int):
        self.capacity = max(2, capacity)
        self._kept: list[BandPoint] = []
        self._stride = 1
        self._seen = 0
        self._latest: BandPoint | None = None

    def add(self, point: BandPoint) -> None:
        self._latest = point
        if self._seen % self._stride == 0:
            if len(self._kept) == self.capacity:
                self._kept = self._kept[::2]
                self._stride *= 2
            if self._seen % self._stride == 0:  # on the coarser spacing too (it is, for an even capacity)
                self._kept.append(point)
        self._seen += 1

    def to_plain(self) -> dict[str, Any]:
        """What a snapshot keeps of it (snapshot.py): enough to go on adding exactly as this one would."""
        latest = self._latest
        return {
            "capacity": self.capacity,
            "kept": [[p.t, p.ratio, p.low, p.high] for p in self._kept],
            "stride": self._stride,
            "seen": self._seen,
            "latest": None if latest is None else [latest.t, latest.ratio, latest.low, latest.high],
            "latest_kept": bool(self._kept) and self._kept[-1] is latest,
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> BandHistory:
        history = cls(plain["capacity"])
        history._kept = [BandPoint(*point) for point in plain["kept"]]
        history._stride, history._seen = plain["stride"], plain["seen"]
        if plain["latest_kept"]:
            history._latest = history._kept[-1]
        elif plain["latest"] is not None:
            history._latest = BandPoint(*plain["latest"])
        return history

    def __iter__(self) -> Iterator[BandPoint]:
        yield from self._kept
        if self._latest is not None and (not self._kept or self._kept[-1] is not self._latest):
            yield self._latest
