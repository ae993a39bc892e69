"""Samples shared by replays of one history (brahma calibrate: thousands of them, a start every few minutes).

Replays whose starts are on the history's grid read the same counters at the same wall instants, so past
their first samples they take the same samples: a sample is a function of the counters read at its instant
and of the source's counter tallies before it (console/metrics/counters.py TallyState: the values last seen
of every series, the last read's time, the intervals in the rate window). `SharedSamples` is one sweep of
PrometheusSource over the grid, every instant in turn, advanced as far as the replays ask; it keeps each
instant's sample and the tallies after it. A replay's `SharingSource` samples with its own source until, after
one of its samples, its tallies are the sweep's at the same instant; from then on each next instant's sample
is the sweep's, taken from the same tallies and the same reads, so it is the one its own source would take.

"The same tallies" allows one difference: the sweep, having started earlier, may remember series the replay
never saw (a pod gone before the replay began). Such a series changes nothing as long as no later read has
it, which the history tells: the replay follows the sweep only when every such series has no value past
the instant (History.last_step). A replay leaves the sweep at a sample that is not the sweep's next (not
on the grid, not the next instant, another window, a sweep sample that asked the server, or one of a newer
sweep): its own source then goes on from the sweep's tallies, without the series it never saw, as it would
have had them, and may follow the sweep again later.

Samples are derived in PrometheusSource only: the sweep is one, as each replay's own is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from console.backtest.replay import FetchedHistory, history_source
from console.metrics.counters import SeriesKey, TallyState
from console.metrics.prometheus import PrometheusSource, Selector
from console.plan.model import RolloutPlan
from console.samples import TRACKS, HistoryPoint, Sample

Unseen = dict[str, dict[str, frozenset[SeriesKey]]]
"""Per track and count kind: the series the sweep remembers and a replay never read."""


@dataclass(frozen=True)
class _Taken:
    """The sweep's sample at one grid instant, and its tallies after it."""

    sweep: int
    """Which sweep took it: a sweep starts again where replays ask past its end (its first sample reads the lead)."""
    sample: Sample | None
    """None when the sample asked the server (off the history): the server is not asked to agree with itself."""
    tallies: dict[str, TallyState]


@dataclass
class _Following:
    """A replay taking the sweep's samples: which sweep, the index of the last one it took, and what the sweep
    remembers that the replay never read."""

    sweep: int
    index: int
    unseen: Unseen = field(default_factory=dict)


class SharedSamples:
    """One process's sweep of the grid with `plan`'s source over `fetched` (the selectors and canary lag of the
    replays that share it), keeping what replays from `forget_before`'s start on can still ask."""

    def __init__(self, plan: RolloutPlan, fetched: FetchedHistory, selectors: dict[str, Selector], canary_lag_s: float) -> None:
        self._plan, self._history = plan, fetched.history
        self._selectors, self._lag_s = selectors, canary_lag_s
        self._lag_steps = math.ceil(canary_lag_s / self._history.step_s - 1e-9)
        self._taken: dict[int, _Taken] = {}
        self._source: PrometheusSource | None = None
        self._head = -1
        self._sweeps = 0
        self._wall = 0.0
        self.shared = 0
        """Samples replays took from the sweep."""
        self.swept = 0
        """Samples the sweep took."""

    def source_for_replay(self, own: PrometheusSource, wall_clock: Callable[[], float]) -> SharingSource:
        return SharingSource(own, self, wall_clock)

    def forget_before(self, start_wall: float) -> None:
        """Replays to come start at start_wall or later: what the sweep took before it is no longer asked."""
        first = math.floor((start_wall - self._history.origin_wall) / self._history.step_s)
        for index in [index for index in self._taken if index < first]:
            del self._taken[index]

    def grid_index(self, wall: float, metrics: Sequence[str], window_s: float) -> int | None:
        """The grid index of a sample at `wall` the sweep takes alike (its very instant, the plan's metrics and window)."""
        index = self._history.index(wall)
        if index is None or self._history.wall(index) != wall or window_s != self._plan.interval or tuple(metrics) != self._plan.metric_names:
            return None
        return index

    def taken(self, index: int) -> _Taken | None:
        return self._taken.get(index)

    async def take(self, index: int) -> _Taken | None:
        """The sweep's sample at `index`, the sweep advanced to it (or started there, past its end); None once forgotten."""
        if index <= self._head:
            return self._taken.get(index)
        if self._source is None or index > self._head + 1:
            await self.close()
            self._source = history_source(self._plan, self._history, self._selectors, self._lag_s, lambda: self._wall)
            self._sweeps += 1
            self._head = index - 1
        while self._head < index:
            self._head += 1
            self._wall = self._history.wall(self._head)
            fallbacks = self._history.fallbacks
            sample = await self._source.sample(self._plan.metric_names, self._wall, self._plan.interval)
            off_history = self._history.fallbacks != fallbacks
            self._taken[self._head] = _Taken(self._sweeps, None if off_history else sample, self._source.counter_states())
            self.swept += 1
        return self._taken[index]

    def unseen(self, own: dict[str, TallyState], taken: _Taken, index: int) -> Unseen | None:
        """What the sweep's tallies after `index` hold that `own` (a replay's, after its sample there) does not, when
        that is all that differs and none of it is read again; else None."""
        unseen: Unseen = {}
        for track in TRACKS:
            mine, sweeps = own[track], taken.tallies[track]
            if mine.read_at != sweeps.read_at or mine.intervals != sweeps.intervals:
                return None
            unseen[track] = {}
            for kind, values in sweeps.last.items():
                my_values = mine.last.get(kind, {})
                if not my_values.items() <= values.items():
                    return None
                extra = frozenset(values.keys() - my_values.keys())
                # A later sample reads the history at a later index (the canary lag_steps earlier than the stable).
                if any((last := self._history.last_step(key)) is None or last > index - self._lag_steps for key in extra):
                    return None
                if extra:
                    unseen[track][kind] = extra
        return unseen

    async def close(self) -> None:
        if self._source is not None:
            await self._source.close()
            self._source = None


def _without(tallies: dict[str, TallyState], unseen: Unseen) -> dict[str, TallyState]:
    return {
        track: replace(
            state,
            last={kind: {key: value for key, value in values.items() if key not in unseen.get(track, {}).get(kind, ())} for kind, values in state.last.items()},
        )
        for track, state in tallies.items()
    }


class SharingSource:
    """A replay's MetricSource: its own PrometheusSource, or the sweep's samples while they are provably its own's."""

    def __init__(self, own: PrometheusSource, shared: SharedSamples, wall_clock: Callable[[], float]) -> None:
        self._own, self._shared, self._wall_clock = own, shared, wall_clock
        self._following: _Following | None = None

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        shared = self._shared
        index = shared.grid_index(self._wall_clock(), metrics, window_s)
        following = self._following
        if following is not None:
            taken = await shared.take(index) if index == following.index + 1 else None
            if taken is not None and taken.sweep == following.sweep and taken.sample is not None:
                following.index = index
                shared.shared += 1
                return taken.sample
            # Its own source goes on from the tallies it would have now: the sweep's after the last sample it shared.
            last = shared.taken(following.index)
            assert last is not None, "a sample shared is kept while its replay runs"
            self._own.restore_counters(_without(last.tallies, following.unseen))
            self._following = None
        sample = await self._own.sample(metrics, t, window_s)
        if index is not None:
            taken = await shared.take(index)
            unseen = shared.unseen(self._own.counter_states(), taken, index) if taken is not None else None
            if unseen is not None:
                self._following = _Following(taken.sweep, index, unseen)
        return sample

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        return await self._own.history(metric, start_t, end_t, step_s)

    async def close(self) -> None:
        await self._own.close()
