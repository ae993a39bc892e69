"""PrometheusSource against a real Prometheus scraping the demo service every second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from console.metric_catalogue import REQUEST_METRICS
from console.metrics.prometheus import PrometheusSource
from console.plan.model import PrometheusSpec
from console.samples import Sample
from console.sim.traffic import LATENCY_BUCKETS_S
from testbed.prometheus_server import DemoStack, free_port, wait_for_canary_errors_to_clear, wait_for_demo_rates, wait_until

APP = "checkout"
SAMPLE_WINDOW_S = 1.0
POLL_STEP_S = 0.25
CANARY_RPS_TOLERANCE = 0.4
STABLE_RPS_TOLERANCE = 0.25
"""The demo's arrivals are Poisson: the canary's ~100 requests in a 4 s window vary by 10% (one standard
deviation), stable's ~400 by 5%; rate() extrapolating from the window's scrapes adds to that. About 4 sigma."""
DETECTION_TIMEOUT_S = 15.0
"""A fault fills the 4 s rate window within about 6 s (first scrape, then the window); the rest is slack."""


def make_source(url: str, queries: dict[str, str] | None = None, **kwargs) -> PrometheusSource:
    return PrometheusSource(APP, PrometheusSpec(url=url, timeout=2.0), queries or {}, **kwargs)


async def sample_until(source: PrometheusSource, metrics: list[str], done: Callable[[Sample], bool], what: str) -> Sample:
    """Sample every 250 ms until `done` holds; fail with the last sample after the deadline."""
    deadline = time.monotonic() + DETECTION_TIMEOUT_S
    while True:
        sample = await source.sample(metrics, t=0.0, window_s=SAMPLE_WINDOW_S)
        if done(sample):
            return sample
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {DETECTION_TIMEOUT_S:g}s; last sample: {sample}")
        await asyncio.sleep(POLL_STEP_S)


async def test_a_sample_has_both_tracks_of_every_default_metric_in_canonical_units(demo_stack: DemoStack) -> None:
    source = make_source(demo_stack.prometheus.url)
    try:
        sample = await source.sample(list(REQUEST_METRICS), t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert sample.errors == ()
    values = sample.values
    for track in ("canary", "stable"):
        # The demo answers 2% 404s and no 5xx: client errors are not failures.
        assert getattr(values["error_rate"], track) == 0.0
        assert getattr(values["success_rate"], track) == 1.0
        # Milliseconds: a 40 ms median, p95 ≈ 2.3x and p99 ≈ 3.2x, read through histogram buckets.
        p50, p95, p99 = (getattr(values[f"latency_p{q}"], track) for q in (50, 95, 99))
        assert 25 < p50 < 60
        assert p50 < p95 <= p99 < 300
    # Requests per second: 25 on the canary, 100 on stable.
    assert values["throughput"].canary == pytest.approx(25, rel=CANARY_RPS_TOLERANCE)
    assert values["throughput"].stable == pytest.approx(100, rel=STABLE_RPS_TOLERANCE)
    # The canary's requests over the 4 s window (four 1 s scrapes).
    assert sample.canary_requests == pytest.approx(100, rel=CANARY_RPS_TOLERANCE)


async def test_the_rate_window_follows_the_servers_scrape_interval(demo_stack: DemoStack) -> None:
    # The source reads the 1 s scrape interval from the server: a 1 s sample gets a 4 s window, about four points.
    points = 'count_over_time(http_requests_total{{matchers},code="200"}[{window}])'
    source = make_source(demo_stack.prometheus.url, {"points": points})
    try:
        sample = await source.sample(["points"], t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert 3 <= sample.values["points"].canary <= 6


async def test_a_canary_error_rate_of_5_percent_shows_up_within_seconds(demo_stack: DemoStack) -> None:
    source = make_source(demo_stack.prometheus.url)
    metrics = ["error_rate", "success_rate"]

    def canary_error_rate_near(expected: float) -> Callable[[Sample], bool]:
        def check(sample: Sample) -> bool:
            error_rate = sample.values["error_rate"].canary
            return error_rate is not None and abs(error_rate - expected) <= 0.01

        return check

    try:
        demo_stack.demo.fault("canary", error_rate=0.05)
        started = time.monotonic()
        faulty = await sample_until(source, metrics, canary_error_rate_near(0.05), "a 5% canary error rate")
        assert time.monotonic() - started < 10
        assert faulty.values["success_rate"].canary == pytest.approx(1 - faulty.values["error_rate"].canary)
        assert faulty.values["error_rate"].stable == 0.0
    finally:
        demo_stack.demo.reset()
        await sample_until(source, metrics, canary_error_rate_near(0.0), "the canary's recovery")
        await source.close()
        # Near 0 is not 0: the window may still hold the fault's last errors, which the next test would see.
        wait_for_canary_errors_to_clear(demo_stack.prometheus, APP)


async def test_nan_and_empty_results_are_none_with_a_reason(demo_stack: DemoStack) -> None:
    queries = {
        # No observations at all: histogram_quantile over zero rates is NaN.
        "idle_p99": "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{matchers}}[{window}]) * 0))",
        "missing": "sum(no_such_series{{matchers}})",
    }
    source = make_source(demo_stack.prometheus.url, queries)
    try:
        sample = await source.sample(list(queries), t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert sample.values["idle_p99"].canary is None and sample.values["idle_p99"].stable is None
    assert sample.values["missing"].canary is None and sample.values["missing"].stable is None
    assert "idle_p99 (canary, stable): NaN (0/0: no requests in the window?)" in sample.errors
    assert "missing (canary, stable): no data" in sample.errors


async def test_a_query_returning_several_series_is_none_with_a_plain_error(demo_stack: DemoStack) -> None:
    by_code = 'sum by (code) (rate(http_requests_total{{matchers},code=~"200|404"}[{window}]))'
    source = make_source(demo_stack.prometheus.url, {"by_code": by_code})
    try:
        sample = await source.sample(["by_code", "error_rate"], t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert sample.values["by_code"].canary is None
    assert sample.values["error_rate"].canary == 0.0
    assert sample.errors == ("by_code (canary, stable): the query returns 2 series where one was expected: fix the plan's query, e.g. wrap it in sum()",)


REFUSED = "select the plan's series with {matchers} (or {app} and {track})"


async def test_the_stable_series_in_the_canarys_answer_is_refused(demo_stack: DemoStack) -> None:
    # A plan's query that pins the track instead of using {track}: the canary would be judged on stable.
    pinned = 'sum by (app, track) (rate(http_requests_total{app="{app}",track="stable"}[{window}]))'
    source = make_source(demo_stack.prometheus.url, {"pinned": pinned})
    try:
        sample = await source.sample(["pinned"], t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert sample.values["pinned"].canary is None
    assert sample.values["pinned"].stable == pytest.approx(100, rel=STABLE_RPS_TOLERANCE)
    assert sample.errors == (f'pinned (canary): the series is labelled track="stable", not track="canary": {REFUSED}',)


async def test_another_apps_series_are_refused_unless_summed_without_their_labels(demo_stack: DemoStack) -> None:
    # The plan is for payments; the server only has checkout's series, which these queries do not filter out.
    queries = {
        "by_app": 'sum by (app) (rate(http_requests_total{track="{track}"}[{window}]))',
        "summed": 'sum(rate(http_requests_total{track="{track}"}[{window}]))',
    }
    source = PrometheusSource("payments", PrometheusSpec(url=demo_stack.prometheus.url, timeout=2.0), queries)
    try:
        sample = await source.sample(list(queries), t=0.0, window_s=SAMPLE_WINDOW_S)
    finally:
        await source.close()
    assert sample.values["by_app"].canary is None and sample.values["by_app"].stable is None
    assert f'by_app (canary, stable): the series is labelled app="checkout", not app="payments": {REFUSED}' in sample.errors
    # A result that carries no labels cannot be checked: it is accepted (the plan's query answers for it).
    assert sample.values["summed"].canary == pytest.approx(25, rel=CANARY_RPS_TOLERANCE)


async def test_history_returns_points_for_both_tracks(demo_stack: DemoStack) -> None:
    # The range asked for must lie within what the server has scraped (the stack may have just started).
    first_rates = f'sum by (track) (rate(http_requests_total{{app="{APP}"}}[4s]))'
    wait_until(lambda: len(demo_stack.prometheus.query(first_rates, at=time.time() - 10)) == 2, 30, "ten seconds of scraped rates")
    rollout_started = time.time() - 10
    source = make_source(demo_stack.prometheus.url, clock_to_wall=lambda t: rollout_started + t)
    try:
        points = await source.history("throughput", start_t=0.0, end_t=10.0, step_s=1.0)
    finally:
        await source.close()
    assert len(points) >= 8
    assert all(0 <= point.t <= 10 for point in points)
    assert points[-1].canary == pytest.approx(25, rel=CANARY_RPS_TOLERANCE)
    assert points[-1].stable == pytest.approx(100, rel=STABLE_RPS_TOLERANCE)


async def test_a_killed_prometheus_gives_none_and_an_error_then_values_again(prometheus_server, demo_service) -> None:
    demo_port = free_port()
    prometheus = prometheus_server([f"127.0.0.1:{demo_port}"])
    demo_service(APP, demo_port)
    wait_for_demo_rates(prometheus, APP)
    # Told the interval: its first sample comes after the kill, when the server cannot be asked.
    source = make_source(prometheus.url, scrape_interval_s=1.0)
    metrics = list(REQUEST_METRICS)
    try:
        prometheus.kill()
        down = await source.sample(metrics, t=0.0, window_s=SAMPLE_WINDOW_S)
        assert all(values.canary is None and values.stable is None for values in down.values.values())
        assert down.canary_requests is None
        assert down.errors == (f"all queries: cannot reach Prometheus at {prometheus.url} (connection refused)",)

        prometheus.start()
        back = await sample_until(source, metrics, lambda sample: sample.errors == () and sample.canary_requests, "values after the restart")
        assert back.values["throughput"].stable > 0
    finally:
        await source.close()


# Counts: the source's against Prometheus' own arithmetic on the same counters at the same instants.

HISTORY_NEEDED_S = 20
"""Past the stack's start: the samples below replay instants up to 15 s back (a rate window before the first)."""
SETTLED_S = 3.0
"""How far back an instant is replayed: every scrape up to it has landed (1 s scrapes)."""


def scalar(prometheus, promql: str) -> float:
    result = prometheus.query(promql)
    assert len(result) == 1, f"{promql} → {result}"
    return float(result[0]["value"][1])


def at(promql_selector: str, instant: float) -> str:
    return f"({promql_selector} @ {instant:.3f})"


async def replay(url: str, instants: list[float], window_s: float = SAMPLE_WINDOW_S) -> list[Sample]:
    """One sample at each past instant (in order), as a controller sampling then would have taken them."""
    clock = iter(instants)
    source = make_source(url, wall_clock=lambda: next(clock))
    try:
        return [await source.sample(list(REQUEST_METRICS), t=float(index), window_s=window_s) for index in range(len(instants))]
    finally:
        await source.close()


def wait_for_history(demo_stack: DemoStack) -> None:
    series = f'http_requests_total{{app="{APP}",track="canary",code="200"}}'
    demo_stack.prometheus.wait_for(f"count_over_time({series}[{HISTORY_NEEDED_S}s]) >= {HISTORY_NEEDED_S - 1}", timeout_s=HISTORY_NEEDED_S + 10)


async def test_the_derived_quantiles_are_prometheus_histogram_quantile_over_the_same_increases(demo_stack: DemoStack) -> None:
    wait_for_history(demo_stack)
    instant = round(time.time() - SETTLED_S, 3)
    (sample,) = await replay(demo_stack.prometheus.url, [instant])
    window_start = instant - 4 * 1.0  # the rate window: four 1 s scrapes
    for track in ("canary", "stable"):
        buckets = f'sum by (le) (http_request_duration_seconds_bucket{{app="{APP}",track="{track}"}}'
        increases = f"{buckets} @ {instant:.3f}) - {buckets} @ {window_start:.3f})"
        for quantile in (50, 95, 99):
            theirs_ms = scalar(demo_stack.prometheus, f"histogram_quantile({quantile / 100}, {increases}) * 1000")
            ours_ms = getattr(sample.values[f"latency_p{quantile}"], track)
            assert ours_ms == pytest.approx(theirs_ms, rel=1e-9), f"{track} p{quantile}"
        requests = f'sum(http_requests_total{{app="{APP}",track="{track}"}}'
        served = scalar(demo_stack.prometheus, f"{requests} @ {instant:.3f}) - {requests} @ {window_start:.3f})")
        assert served > 0
        if track == "canary":
            assert sample.canary_requests == served, "min_requests judges the window's requests"


async def test_counts_over_consecutive_samples_add_up_to_the_counters_increase(demo_stack: DemoStack) -> None:
    wait_for_history(demo_stack)
    last = round(time.time() - SETTLED_S, 3)
    # 0.4 s apart with 1 s scrapes: some samples see no new scrape and count nothing; the next counts it whole.
    instants = [round(last - 0.4 * step, 3) for step in reversed(range(25))]
    samples = await replay(demo_stack.prometheus.url, instants)
    first_start = instants[0] - SAMPLE_WINDOW_S  # the first sample counts its own span, back from its instant
    bound = LATENCY_BUCKETS_S[12]
    counters = {
        "requests": ('http_requests_total{{app="{app}",track="{track}"}}', lambda counts: counts.requests),
        "errors": ('http_requests_total{{app="{app}",track="{track}",code=~"5.."}}', lambda counts: counts.errors),
        f"at most {bound * 1000:g} ms": (
            f'http_request_duration_seconds_bucket{{{{app="{{app}}",track="{{track}}",le="{bound:g}"}}}}',
            lambda counts: dict(counts.latency_buckets)[bound],
        ),
    }
    for track in ("canary", "stable"):
        counted = [getattr(sample, f"{track}_counts") for sample in samples]
        assert all(counts is not None for counts in counted), "both tracks read at every sample"
        assert any(counts.requests == 0 for counts in counted) and any(counts.requests > 0 for counts in counted)
        for name, (template, count) in counters.items():
            series = template.format(app=APP, track=track)
            # `or vector(0)`: a service that never failed has no 5xx series.
            increase = f"(sum({series} @ {last:.3f}) or vector(0)) - (sum({series} @ {first_start:.3f}) or vector(0))"
            assert sum(count(counts) for counts in counted) == pytest.approx(scalar(demo_stack.prometheus, increase), abs=1e-6), f"{track} {name}"
