"""Prometheus history fetched ahead: the answers of a replay's instant queries, read from range queries.

A replay samples at instants on a grid, origin + k × step (the plan's interval). Prometheus evaluates
a range query at each of its steps exactly as an instant query at that time, so one query_range per
query over the replay's span, at the plan's interval and aligned to the sample instants, answers
every sample's instant query of it; it is asked in chunks of fewer than Prometheus' 11,000 points
per series. `History.custom_query` then answers PrometheusSource as PrometheusConnect would: the
vector at that instant, each series stamped with the time asked. An instant off the grid, or a query
not fetched, goes to the server as an instant query (counted in `fallbacks`).

One History serves many replays (brahma calibrate: a week of them sharing one fetch), each with its
own start on the grid. `shifted(by_s)` is a view of it whose answers at t are the history's at
t + by_s, stamped t: calibrate's A/A replays read the canary as stable's series one interval back.
"""

from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from console.metrics.prometheus import MAX_POINTS_PER_SERIES

_GRID_TOLERANCE_S = 0.0005
"""An instant within half a millisecond of a grid point is that point (instant queries send milliseconds)."""
_PARALLEL_FETCHES = 8


class RangeClient(Protocol):
    """PrometheusConnect's two queries."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any: ...

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str, params: dict | None = None) -> Any: ...


class _Series:
    """One series of a range answer: the grid indexes it has a value at, and the values."""

    __slots__ = ("labels", "steps", "values")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.steps = array("q")
        self.values = array("d")

    def at(self, index: int) -> float | None:
        position = bisect_left(self.steps, index)
        return self.values[position] if position < len(self.steps) and self.steps[position] == index else None


class _Answers:
    """One query's history: its series, and the span of grid indexes fetched."""

    def __init__(self) -> None:
        self.series: dict[tuple[tuple[str, str], ...], _Series] = {}
        self.spans: list[tuple[int, int]] = []

    def covers(self, index: int) -> bool:
        return any(first <= index <= last for first, last in self.spans)

    def add(self, result: list[dict[str, Any]], origin_wall: float, step_s: float) -> None:
        for entry in result:
            labels = entry.get("metric") or {}
            key = tuple(sorted(labels.items()))
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series(labels)
            for timestamp, text in entry["values"]:
                series.steps.append(round((float(timestamp) - origin_wall) / step_s))
                series.values.append(float(text))


class History:
    """Prometheus' answers at origin_wall + k × step_s, fetched with range queries (`fetch`), for replays."""

    in_memory = True
    """PrometheusSource reads it in its event loop, not in threads (QueryClient)."""

    def __init__(self, server: RangeClient, origin_wall: float, step_s: float, scrape_interval_s: float | None = None) -> None:
        self._server = server
        self.origin_wall = origin_wall
        self.step_s = step_s
        self.scrape_interval_s = scrape_interval_s
        """The server's scrape interval, as the replays' sources size their rate windows by (read once, for all)."""
        self._answers: dict[str, _Answers] = {}
        self.fallbacks = 0
        """Instant queries sent to the server: off the grid, or of a query not fetched."""
        self.range_queries = 0
        """Range queries sent by fetch (every query's chunks): what calibrate reports its history cost."""
        self._lock = threading.Lock()
        self._last_steps: dict[tuple[tuple[str, str], ...], int] | None = None

    def index(self, wall: float) -> int | None:
        """The grid index of `wall`, or None off the grid."""
        position = (wall - self.origin_wall) / self.step_s
        index = round(position)
        return index if abs(position - index) * self.step_s <= _GRID_TOLERANCE_S else None

    def wall(self, index: int) -> float:
        return self.origin_wall + index * self.step_s

    def fetch(self, queries: Iterable[str], start_wall: float, end_wall: float) -> None:
        """Every query over the grid instants from start_wall to end_wall, chunked under Prometheus' points limit.

        A query the server rejects is left out (its samples ask the server, and say what it said, as a live
        run's would); a server that cannot be reached raises (requests' ConnectionError)."""
        first = math.ceil((start_wall - self.origin_wall) / self.step_s - 1e-9)
        last = math.floor((end_wall - self.origin_wall) / self.step_s + 1e-9)
        chunk = MAX_POINTS_PER_SERIES - 1
        calls = [(query, low, min(low + chunk - 1, last)) for query in dict.fromkeys(queries) for low in range(first, last + 1, chunk)]
        self.range_queries += len(calls)
        self._last_steps = None
        with ThreadPoolExecutor(_PARALLEL_FETCHES, thread_name_prefix="history-fetch") as pool:
            for query, low, high, result in pool.map(lambda call: (*call, self._fetch_range(*call)), calls):
                if result is None:
                    continue
                with self._lock:
                    answers = self._answers.setdefault(query, _Answers())
                    answers.add(result, self.origin_wall, self.step_s)
                    answers.spans.append((low, high))

    def _fetch_range(self, query: str, low: int, high: int) -> list[dict[str, Any]] | None:
        from prometheus_api_client import PrometheusApiClientException

        start, end = self.wall(low), self.wall(high)
        try:
            return self._server.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{self.step_s:g}",
                # The client rounds its ends to whole seconds: the grid's own instants, to the millisecond.
                params={"start": f"{start:.3f}", "end": f"{end:.3f}"},
            )
        except PrometheusApiClientException:
            return None

    def fetched(self, query: str) -> bool:
        return query in self._answers

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """PrometheusConnect's instant query: from the history on the grid, else from the server."""
        return self.answer(query, params or {}, 0.0)

    def instant_key(self, query: str, params: Mapping[str, Any], shift_s: float = 0.0) -> tuple[str, int] | None:
        """The query and grid index its answer at params["time"] + shift_s is read from (RecordedClient); None when it
        is not in the history and the server is asked."""
        recorded = self._recorded(query, float(params["time"]) + shift_s)
        return (query, recorded[1]) if recorded is not None else None

    def answer(self, query: str, params: Mapping[str, Any], shift_s: float) -> list[dict[str, Any]]:
        """The instant vector of `query` at params["time"] + shift_s, its series stamped params["time"]."""
        asked = float(params["time"])
        read_at = asked + shift_s
        recorded = self._recorded(query, read_at)
        if recorded is None:
            with self._lock:
                self.fallbacks += 1
            result = self._server.custom_query(query, params={**params, "time": f"{read_at:.3f}"})
            return _restamped(result, asked) if shift_s else result
        answers, index = recorded
        vector = []
        for series in answers.series.values():
            value = series.at(index)
            if value is not None:
                vector.append({"metric": series.labels, "value": [asked, repr(value)]})
        return vector

    def _recorded(self, query: str, read_at: float) -> tuple[_Answers, int] | None:
        """The query's answers and the grid index of `read_at`, when the history holds the answer there."""
        answers = self._answers.get(query)
        index = self.index(read_at)
        return (answers, index) if answers is not None and index is not None and answers.covers(index) else None

    def last_step(self, labels: tuple[tuple[str, str], ...]) -> int | None:
        """The last grid index at which a series labelled `labels` (sorted) has a value, in any query fetched; None when
        none has: a counter the samples read past it is read no more (console/backtest/shared.py)."""
        if self._last_steps is None:
            last_steps: dict[tuple[tuple[str, str], ...], int] = {}
            for answers in self._answers.values():
                for key, series in answers.series.items():
                    if series.steps:
                        last_steps[key] = max(last_steps.get(key, series.steps[-1]), series.steps[-1])
            self._last_steps = last_steps
        return self._last_steps.get(labels)

    def shifted(self, by_s: float) -> ShiftedHistory:
        """This history read `by_s` seconds later than asked (earlier when negative), stamped as asked."""
        return ShiftedHistory(self, by_s)

    def data_span(self, query: str) -> tuple[float, float] | None:
        """Of a `max(timestamp(...))` query fetched: the first step it has a value at (the data began by then) and its
        newest value (the server's last sample); None when it has none."""
        answers = self._answers.get(query)
        if answers is None:
            return None
        steps = [series.steps[0] for series in answers.series.values() if series.steps]
        if not steps:
            return None
        return self.wall(min(steps)), max(value for series in answers.series.values() for value in series.values)


class ShiftedHistory:
    """A History read `by_s` seconds off the time asked (History.shifted)."""

    in_memory = True

    def __init__(self, history: History, by_s: float) -> None:
        self._history, self._by_s = history, by_s

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._history.answer(query, params or {}, self._by_s)

    def instant_key(self, query: str, params: Mapping[str, Any]) -> tuple[str, int] | None:
        return self._history.instant_key(query, params, self._by_s)


def _restamped(result: Any, at: float) -> Any:
    if isinstance(result, list) and result and isinstance(result[0], dict):
        return [{**entry, "value": [at, entry["value"][1]]} if "value" in entry else entry for entry in result]
    return result
