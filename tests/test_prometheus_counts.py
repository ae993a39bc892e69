"""The Prometheus source's counts without a Prometheus: reading counters, their increase series by
series, the tally of one track, and whole samples against a stand-in that answers instant queries
of counters growing at known rates, at whatever instant it is asked for."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest

from console.metric_catalogue import REQUEST_METRICS
from console.metrics.counters import CounterTally, counts_from, increase, summed
from console.metrics.pod_health import WithPodHealth
from console.metrics.prometheus import CounterRead, PrometheusSource, read_counter_result
from console.plan.model import CountQueries, PrometheusSpec
from console.samples import Sample, TrackCounts, TrackValues
from testbed.json_http import json_server

NOW = 1_700_000_000.0
STALE_AFTER_S = 3.0
CANARY = {"app": "checkout", "track": "canary"}


def series(value: str, at: float = NOW, **labels: str) -> dict:
    return {"metric": {"__name__": "http_requests_total", **labels}, "value": [at, value]}


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# Reading an answer of counters.


def test_each_series_is_read_under_its_labels() -> None:
    read = read_counter_result([series("12", code="200"), series("3", code="500")], NOW, STALE_AFTER_S, CANARY, "requests")
    assert read == CounterRead({key(__name__="http_requests_total", code="200"): 12.0, key(__name__="http_requests_total", code="500"): 3.0})


def test_no_series_is_no_data_for_requests_but_zero_errors_and_no_histogram() -> None:
    assert read_counter_result([], NOW, STALE_AFTER_S, CANARY, "requests") == CounterRead(None, "no data")
    assert read_counter_result([], NOW, STALE_AFTER_S, CANARY, "errors") == CounterRead({})
    assert read_counter_result([], NOW, STALE_AFTER_S, CANARY, "latency_buckets") == CounterRead({})


@pytest.mark.parametrize(
    ("answer", "kind", "problem"),
    [
        ([series("NaN")], "requests", "NaN is no counter's value: select the counters themselves, not rate() or a ratio of them"),
        ([series("-1")], "errors", "-1 is no counter's value"),
        ([series("+Inf")], "requests", "+Inf is no counter's value"),
        ([series("5", code="200")], "latency_buckets", "a series has no le label: select the histogram's _bucket series, not summed away from le"),
        ([series("5", le="fast")], "latency_buckets", "a series has no le label"),
        ([series("5", at=NOW - 42)], "requests", "stale: the newest sample is 42s old"),
        ([{"metric": {}, "values": [[NOW, "1"]]}], "requests", "the query returns a range vector: select the counters themselves, with no [range]"),
        ([NOW, "5"], "requests", "a count query must return the counters' series (an instant vector), not a scalar"),
        ([series("5", track="stable")], "requests", 'the series is labelled track="stable", not track="canary"'),
    ],
)
def test_what_is_no_counter_is_refused_with_a_reason(answer, kind, problem) -> None:
    read = read_counter_result(answer, NOW, STALE_AFTER_S, CANARY, kind)
    assert read.series is None
    assert read.problem.startswith(problem)


# Increases, as increase() takes them.


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    previous = {key(code="200"): 100.0, key(code="500"): 50.0}
    current = {key(code="200"): 120.0, key(code="500"): 5.0, key(code="503"): 3.0}
    # 200 grew by 20; 500 was reset and counted 5 since; 503 is new: it started from zero.
    assert increase(previous, current) == {key(code="200"): 20.0, key(code="500"): 5.0, key(code="503"): 3.0}


def test_counts_sum_the_series_and_the_buckets_by_le() -> None:
    increases = {
        "requests": {key(pod="a"): 10.0, key(pod="b"): 30.0},
        "errors": {key(pod="b"): 2.0},
        "latency_buckets": {key(pod="a", le="0.1"): 8.0, key(pod="b", le="0.1"): 20.0, key(pod="a", le="+Inf"): 10.0, key(pod="b", le="+Inf"): 30.0},
    }
    assert counts_from(increases) == TrackCounts(40.0, 2.0, ((0.1, 28.0), (math.inf, 40.0)))


def test_summed_counts_add_bound_by_bound() -> None:
    parts = [TrackCounts(10, 1, ((0.1, 8), (math.inf, 10))), TrackCounts(5, 0, ((0.1, 5), (math.inf, 5)))]
    assert summed(parts) == TrackCounts(15, 1, ((0.1, 13), (math.inf, 15)))


@pytest.mark.parametrize("other_bounds", [(0.1, 0.25, math.inf), (0.25, 0.1, math.inf), (0.1, math.inf)])
def test_summed_counts_are_the_same_floats_whether_the_bounds_are_alike_or_not(other_bounds: tuple[float, ...]) -> None:
    """Counts whose buckets all have one histogram's bounds are added position by position; the sum must be the one
    bound by bound gives, float for float (0.1 + 0.2 + 0.3 is not 0.3 + 0.2 + 0.1), whatever the last part's bounds."""
    bounds = (0.1, 0.25, math.inf)
    alike = [TrackCounts(0.1 * k, 0.0, tuple((bound, 0.1 * k + i / 3) for i, bound in enumerate(bounds))) for k in (1, 2, 3)]
    last = TrackCounts(0.7, 1.0, tuple((bound, 0.3 + i / 7) for i, bound in enumerate(other_bounds)))
    for parts in (alike, [*alike, last]):
        by_bound: dict[float, float] = {}
        for part in parts:
            for bound, count in part.latency_buckets:
                by_bound[bound] = by_bound.get(bound, 0.0) + count
        requests = errors = 0.0
        for part in parts:
            requests, errors = requests + part.requests, errors + part.errors
        assert summed(parts) == TrackCounts(requests, errors, tuple(sorted(by_bound.items())))


def test_a_series_missing_from_one_read_is_not_counted_from_zero_when_it_is_back() -> None:
    tally = CounterTally()
    assert tally.add(0.0, {"requests": {key(pod="a"): 100.0, key(pod="b"): 100.0}}) is None, "a first read has no baseline"
    assert tally.add(1.0, {"requests": {key(pod="a"): 110.0}}).counts.requests == 10  # pod b's scrape failed
    back = tally.add(2.0, {"requests": {key(pod="a"): 120.0, key(pod="b"): 130.0}})
    assert (back.start, back.end, back.counts.requests) == (1.0, 2.0, 40.0), "b's 30 since it was last seen, not its 130"


def test_the_window_is_the_intervals_ending_within_it() -> None:
    tally = CounterTally()
    for second in range(8):
        tally.add(float(second), {"requests": {key(): 10.0 * second}})
    # 1 s samples, a 4 s window: the four intervals ending at 4.0 (just outside) is not one of them.
    assert tally.window(7.0, window_s=4.0, sample_s=1.0) == (TrackCounts(40.0, 0.0), 4.0)
    tally.add(37.0, {"requests": {key(): 370.0}})  # a read after 30 s without one: its interval is the window
    assert tally.window(37.0, window_s=4.0, sample_s=1.0) == (TrackCounts(300.0, 0.0), 30.0)


# Whole samples against a stand-in.

STARTED = time.time() - 1000
"""When the stand-in's counters started from zero."""
RATES = {"canary": (10.0, 0.5), "stable": (100.0, 0.5)}
"""Requests and 5xx errors a second per track."""
SHARES = ((0.05, 0.5), (0.1, 0.9), (0.25, 0.99), (math.inf, 1.0))
"""The latency histogram: the share of requests at or under each bound (seconds)."""


def counters(query: str, at: float) -> list[dict] | None:
    """Counters growing at RATES since STARTED, as a Prometheus scraping them continuously would answer."""
    track = re.search(r'track="(\w+)"', query).group(1)
    requests, errors = RATES[track]
    elapsed = at - STARTED
    if "_bucket" in query:
        return [series(repr(requests * share * elapsed), at, le="+Inf" if math.isinf(bound) else str(bound)) for bound, share in SHARES]
    failed = series(repr(errors * elapsed), at, code="500")
    return [failed] if "5.." in query else [series(repr((requests - errors) * elapsed), at, code="200"), failed]


class CountersPrometheus:
    """Answers instant queries with `answer(query, time)`; None is a 503. It keeps what it was asked."""

    def __init__(self, answer: Callable[[str, float], list | None]) -> None:
        self.answer, self.url = answer, ""
        self.asked: list[tuple[str, float]] = []

    def respond(self, path: str, headers: object) -> tuple[int, dict]:
        params = {name: values[-1] for name, values in parse_qs(urlsplit(path).query).items()}
        self.asked.append((params["query"], float(params.get("time", "nan"))))
        result = self.answer(params["query"], float(params["time"])) if "time" in params else None  # no range queries
        if result is None:
            return 503, {"status": "error", "error": "busy"}
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    def times_asked(self, query: str) -> list[float]:
        return sorted({at for asked, at in self.asked if asked == query})


@contextmanager
def stand_in(answer: Callable[[str, float], list | None] = counters) -> Iterator[CountersPrometheus]:
    prometheus = CountersPrometheus(answer)
    with json_server(prometheus.respond) as url:
        prometheus.url = url
        yield prometheus


def source_for(url: str, counts: CountQueries | None = None) -> PrometheusSource:
    return PrometheusSource("checkout", PrometheusSpec(url=url), {}, clock_to_wall=lambda t: STARTED + t, counts=counts, scrape_interval_s=1.0)


CANARY_REQUESTS = 'http_requests_total{app="checkout",track="canary"}'


async def test_a_first_sample_counts_its_own_span_and_shows_values_over_the_rate_window() -> None:
    with stand_in() as prometheus:
        source = source_for(prometheus.url)
        try:
            sample = await source.sample(list(REQUEST_METRICS), t=1.0, window_s=1.0)
        finally:
            await source.close()
    assert sample.errors == ()
    earliest, before, now = prometheus.times_asked(CANARY_REQUESTS)
    assert (now - before, now - earliest) == pytest.approx((1.0, 4.0)), "a sample and a rate window (4 scrapes) before"
    canary = sample.canary_counts
    assert canary.requests == pytest.approx(10.0) and canary.errors == pytest.approx(0.5)
    assert [bound for bound, _ in canary.latency_buckets] == [bound for bound, _ in SHARES]
    assert [count for _, count in canary.latency_buckets] == pytest.approx([10 * share for _, share in SHARES])
    assert sample.stable_counts.requests == pytest.approx(100.0)
    # The values and the request count min_requests judges: over the 4 s window, as histogram_quantile interpolates.
    assert sample.canary_requests == pytest.approx(40.0)
    values = sample.values
    assert values["error_rate"].canary == pytest.approx(0.05) and values["error_rate"].stable == pytest.approx(0.005)
    assert values["success_rate"].canary == pytest.approx(0.95)
    assert values["throughput"].canary == pytest.approx(10.0) and values["throughput"].stable == pytest.approx(100.0)
    assert values["latency_p50"].canary == pytest.approx(50.0), "rank 20 of 40 at the top of the 0-50 ms bucket"
    assert values["latency_p95"].canary == pytest.approx(100 + 150 * (38 - 36) / (39.6 - 36)), "rank 38 inside 100-250 ms"
    assert values["latency_p99"].canary == pytest.approx(250.0)


async def test_consecutive_samples_add_up_to_the_counters_increase() -> None:
    with stand_in() as prometheus:
        source = source_for(prometheus.url)
        try:
            samples = [await source.sample(["error_rate"], t=float(second), window_s=1.0) for second in range(1, 6)]
        finally:
            await source.close()
    _, first_before, *reads = prometheus.times_asked(CANARY_REQUESTS)
    span = reads[-1] - first_before
    for track, (requests, errors) in RATES.items():
        counted = [getattr(sample, f"{track}_counts") for sample in samples]
        assert sum(counts.requests for counts in counted) == pytest.approx(requests * span, rel=1e-9)
        assert sum(counts.errors for counts in counted) == pytest.approx(errors * span, rel=1e-9)


async def test_a_track_that_cannot_be_read_gives_neither_tracks_counts_until_both_cover_one_span() -> None:
    failing = {"now": False}

    def canary_fails(query: str, at: float) -> list[dict] | None:
        return None if failing["now"] and 'track="canary"' in query else counters(query, at)

    with stand_in(canary_fails) as prometheus:
        source = source_for(prometheus.url)
        try:
            first = await source.sample(["error_rate"], t=1.0, window_s=1.0)
            failing["now"] = True
            down = await source.sample(["error_rate"], t=2.0, window_s=1.0)
            failing["now"] = False
            back = await source.sample(["error_rate"], t=3.0, window_s=1.0)
            again = await source.sample(["error_rate"], t=4.0, window_s=1.0)
        finally:
            await source.close()
    assert first.canary_counts and first.stable_counts
    assert down.canary_counts is None and down.stable_counts is None, "no evidence, never zeros"
    assert down.values["error_rate"].canary is None and down.values["error_rate"].stable == pytest.approx(0.005)
    assert f"counts.requests (canary): Prometheus at {prometheus.url} answered HTTP 503: busy" in down.errors
    # The canary's next interval starts at the first sample, stable's at the second: not the same span.
    assert back.canary_counts is None and back.stable_counts is None
    assert again.canary_counts.requests > 0 and again.stable_counts.requests > 0


async def test_the_plans_count_queries_are_the_ones_read() -> None:
    plan_counts = CountQueries(requests="grpc_server_handled_total{{matchers}}")
    with stand_in(lambda query, at: counters(query.replace("grpc_server_handled_total", "http_requests_total"), at)) as prometheus:
        source = source_for(prometheus.url, plan_counts)
        try:
            sample = await source.sample(["error_rate"], t=1.0, window_s=1.0)
            charted = await source.history("error_rate", 0.0, 10.0, 1.0)
        finally:
            await source.close()
    asked = {query for query, _ in prometheus.asked}
    assert 'grpc_server_handled_total{app="checkout",track="canary"}' in asked
    assert CANARY_REQUESTS not in asked
    assert 'http_requests_total{app="checkout",track="canary",code=~"5.."}' in asked, "errors left out: the built-in query"
    assert sample.canary_counts.requests == pytest.approx(10.0)
    assert charted == [] and not any("rate(" in query for query in asked), "the charts' rate() queries read the built-in series, not these counters"


async def test_pod_health_beside_the_source_keeps_the_sources_counts() -> None:
    counted = TrackCounts(100.0, 1.0, ((0.1, 90.0), (math.inf, 100.0)))

    class Source:
        async def sample(self, metrics, t, window_s) -> Sample:
            return Sample({"error_rate": TrackValues(0.01, 0.01)}, 100.0, (), counted, counted)

    async def pod_health() -> dict[str, TrackValues]:
        return {"health_check_failures": TrackValues(0.0, 1.0)}

    sample = await WithPodHealth(Source(), pod_health).sample(["error_rate", "health_check_failures"], t=1.0, window_s=1.0)
    assert sample.values["health_check_failures"] == TrackValues(0.0, 1.0)
    assert sample.canary_counts == counted and sample.stable_counts == counted, "the judge's evidence goes through"
