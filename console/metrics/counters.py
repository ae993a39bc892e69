"""A track's counts from its cumulative counters, read from Prometheus at every sample.

Each sample reads the counters themselves (requests by code, errors, the latency histogram's buckets
by `le`), series by series, and takes their increase since the track's previous read here, as
increase() would between those two instants: a value below the one before is a counter reset,
after which the counter counted from zero; a series never seen before started from zero. The
values last seen are kept for every series, so a series that misses one read (a failed scrape)
is not counted from zero again when it comes back.

The increase of one read over the last is a function; a `CounterTally` keeps one track's last
values and its recent intervals. Reading Prometheus' answers is console/metrics/prometheus.py's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import add, itemgetter, lt
from typing import Any

from console.samples import TrackCounts

SeriesKey = tuple[tuple[str, str], ...]
"""A series' labels, sorted: how one read's series is matched with the same series in the next."""
Snapshot = dict[str, dict[SeriesKey, float]]
"""Count kind → each series' value at one instant."""

COUNT_KINDS = ("requests", "errors", "latency_buckets")
LATENCY_BUCKETS = "latency_buckets"


def bucket_bound(text: Any) -> float | None:
    try:
        bound = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(bound) else bound


def increase(previous: Mapping[SeriesKey, float], current: Mapping[SeriesKey, float]) -> dict[SeriesKey, float]:
    """Each series' increase from `previous` to `current`, as increase() counts it: a drop is a reset, after
    which the counter counted from zero; a series not in `previous` started from zero."""
    return {key: value - previous[key] if key in previous and value >= previous[key] else value for key, value in current.items()}


@lru_cache(maxsize=4096)
def _series_bound(labels: SeriesKey) -> float | None:
    """A bucket series' `le` bound: the same few series are summed at every sample, so their bounds are parsed once."""
    return bucket_bound(dict(labels).get("le"))


def counts_from(increases: Snapshot) -> TrackCounts:
    """The track's counts from each series' increase: requests and errors summed, buckets summed by `le`."""
    by_bound: dict[float, float] = {}
    for labels, count in increases.get(LATENCY_BUCKETS, {}).items():
        bound = _series_bound(labels)
        if bound is not None:
            by_bound[bound] = by_bound.get(bound, 0.0) + count
    return TrackCounts(
        requests=sum(increases.get("requests", {}).values()),
        errors=sum(increases.get("errors", {}).values()),
        latency_buckets=tuple(sorted(by_bound.items())),
    )


def summed(counts: Iterable[TrackCounts]) -> TrackCounts:
    """Counts of consecutive intervals as one: requests and errors added, buckets added bound by bound."""
    counts = list(counts)
    bounds = list(map(itemgetter(0), counts[0].latency_buckets)) if counts else []
    if all(map(lt, bounds, bounds[1:])) and all(list(map(itemgetter(0), part.latency_buckets)) == bounds for part in counts):
        return _summed_alike(counts, bounds)
    requests = errors = 0.0
    by_bound: dict[float, float] = {}
    for part in counts:
        requests += part.requests
        errors += part.errors
        for bound, count in part.latency_buckets:
            by_bound[bound] = by_bound.get(bound, 0.0) + count
    return TrackCounts(requests, errors, tuple(sorted(by_bound.items())))


def _summed_alike(counts: list[TrackCounts], bounds: list[float]) -> TrackCounts:
    """summed() of counts whose buckets have the same bounds (as a histogram's do, interval after interval): added
    position by position, in the same order, so to the same floats."""
    requests = errors = 0.0
    totals: Iterable[float] = [0.0] * len(bounds)
    for part in counts:
        requests += part.requests
        errors += part.errors
        totals = list(map(add, totals, map(itemgetter(1), part.latency_buckets)))
    return TrackCounts(requests, errors, tuple(zip(bounds, totals)))


@dataclass(frozen=True)
class Interval:
    """What a track served between two reads (wall times, epoch seconds)."""

    start: float
    end: float
    counts: TrackCounts


@dataclass(frozen=True)
class TallyState:
    """All a CounterTally holds, copied: the same state and the same reads give the same counts (shared replays
    compare it: console/backtest/shared.py)."""

    read_at: float | None
    last: Snapshot
    intervals: tuple[Interval, ...]


class CounterTally:
    """One track's counters: the values last seen of every series, and the intervals of recent reads."""

    def __init__(self) -> None:
        self._last: Snapshot = {kind: {} for kind in COUNT_KINDS}
        self.read_at: float | None = None
        """When the counters were last read; None before the first read."""
        self._intervals: deque[Interval] = deque()

    def add(self, at: float, snapshot: Snapshot) -> Interval | None:
        """The counters read at `at`: the interval since the previous read, or None for the first read (no baseline)."""
        interval = None
        if self.read_at is not None:
            increases = {kind: increase(self._last[kind], snapshot.get(kind, {})) for kind in COUNT_KINDS}
            interval = Interval(self.read_at, at, counts_from(increases))
            self._intervals.append(interval)
        for kind in COUNT_KINDS:
            self._last[kind].update(snapshot.get(kind, {}))
        self.read_at = at
        return interval

    def state(self) -> TallyState:
        return TallyState(self.read_at, {kind: dict(values) for kind, values in self._last.items()}, tuple(self._intervals))

    def restore(self, state: TallyState) -> None:
        """Holds `state` (copied) from now on, as if it had read what made it."""
        self.read_at = state.read_at
        self._last = {kind: dict(state.last.get(kind, {})) for kind in COUNT_KINDS}
        self._intervals = deque(state.intervals)

    def window(self, now: float, window_s: float, sample_s: float) -> tuple[TrackCounts, float] | None:
        """The counts of the intervals that make up the last `window_s` before `now`, and the time they span;
        None without any. An interval counts when it ends within the window by more than half a sample,
        so 1 s samples make a 4 s window of four intervals, not five."""
        while self._intervals and self._intervals[0].end <= now - window_s + sample_s / 2:
            self._intervals.popleft()
        if not self._intervals:
            return None
        return summed(interval.counts for interval in self._intervals), now - self._intervals[0].start
