"""testbed/history.py: generated history is what a real Prometheus serves back from promtool's blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.metrics.prometheus import PrometheusSource
from console.plan.model import PrometheusSpec
from testbed.history import Change, Gap, History, Restart, TrackRates, generate, nightly, recent_range, require_history_tools, serving_history
from testbed.prometheus_server import PrometheusServer

APP = "checkout"
START, END = recent_range(3 * 3600)
INCIDENT = Change("canary", START + 3600, START + 4200, error_rate=0.05, p99_ms=900.0)
GAP = Gap(START + 5400, START + 6000)
RESTART = Restart(START + 7200, down_s=120)
HISTORY = History(
    START,
    END,
    stable=TrackRates(rps=200.0, error_rate=0.001),
    canary=TrackRates(rps=20.0, error_rate=0.001),
    changes=(INCIDENT,),
    gaps=(GAP,),
    restarts=(RESTART,),
    seed=3,
)
GENERATED = generate(HISTORY)


def series(track: str, code: str) -> str:
    return f'http_requests_total{{app="{APP}",track="{track}",code="{code}"}}'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_history_tools()
    with serving_history(HISTORY, tmp_path_factory.mktemp("history")) as (server, _):
        yield server


def value_at(server: PrometheusServer, promql: str, at: float) -> float | None:
    result = server.query(promql, at)
    return float(result[0]["value"][1]) if result else None


def test_the_same_seed_draws_the_same_history_and_another_seed_another() -> None:
    again = generate(HISTORY).tracks[APP, "stable"]
    other = generate(History(START, END, seed=4)).tracks[APP, "stable"]
    assert again.ok == GENERATED.tracks[APP, "stable"].ok
    assert other.ok != again.ok


def test_counters_only_drop_where_the_service_restarted() -> None:
    stable = GENERATED.tracks[APP, "stable"]
    drops = [stable.times[i] for i in range(1, len(stable.times)) if stable.ok[i] < stable.ok[i - 1]]
    assert drops == [RESTART.at + RESTART.down_s]


def test_nightly_changes_cover_each_night_within_the_range() -> None:
    day = 20_000 * 86400.0
    changes = nightly("stable", day + 3 * 3600, day + 2 * 86400, 0, 6, error_rate=0.0012)
    assert [(c.start - day, c.end - day) for c in changes] == [(3 * 3600, 6 * 3600), (86400, 86400 + 6 * 3600)]
    history = History(day, day + 86400, changes=changes)
    assert history.rates("stable", day + 4 * 3600).error_rate == 0.0012
    assert history.rates("stable", day + 7 * 3600).error_rate == TrackRates().error_rate


def test_the_served_counters_are_the_generated_ones(served: PrometheusServer) -> None:
    stable = GENERATED.tracks[APP, "stable"]
    at = START + 1800
    assert value_at(served, series("stable", "200"), at) == stable.ok[stable.index_at(at)]
    assert value_at(served, series("stable", "500"), at) == stable.errors_at(at)
    total = f'http_request_duration_seconds_count{{app="{APP}",track="stable"}}'
    assert value_at(served, total, at) == stable.requests_at(at)


def test_the_incident_is_served_at_its_time_and_only_then(served: PrometheusServer) -> None:
    def error_ratio(start: float, end: float) -> float:
        errors = value_at(served, series("canary", "500"), end) - value_at(served, series("canary", "500"), start)
        ok = value_at(served, series("canary", "200"), end) - value_at(served, series("canary", "200"), start)
        return errors / (errors + ok)

    # 12,000 canary requests in the incident: 5% of them fail, give or take 0.2% (one standard deviation).
    assert error_ratio(INCIDENT.start, INCIDENT.end) == pytest.approx(0.05, abs=0.01)
    assert error_ratio(START + 600, INCIDENT.start) < 0.005
    p99 = f'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{app="{APP}",track="canary"}}[5m])))'
    assert value_at(served, p99, INCIDENT.end) > 0.6
    assert value_at(served, p99, INCIDENT.start) < 0.3


def test_the_gap_and_the_restart_have_no_samples(served: PrometheusServer) -> None:
    gap_s = GAP.end - GAP.start
    inside = f"count_over_time({series('stable', '200')}[{gap_s - 30:g}s])"
    assert value_at(served, inside, GAP.end - 15) is None
    assert value_at(served, inside, GAP.start - 15) == pytest.approx((gap_s - 30) / HISTORY.scrape_interval_s, abs=1)
    resets = f"resets({series('stable', '200')}[10m])"
    assert value_at(served, resets, RESTART.at + 300) == 1


def test_the_source_reads_the_generated_counts_and_the_history_scrape_interval(served: PrometheusServer) -> None:
    """PrometheusSource at a past instant: the sample's counts are the generated counters' increase over its
    30 s, and its error rate covers a rate window of four of the history's 15 s scrapes (60 s), which the
    source read from the server's configuration."""
    at = START + 2400.0
    source = PrometheusSource(APP, PrometheusSpec(url=served.url, timeout=5.0), {}, wall_clock=lambda: at)
    sample = asyncio.run(source.sample(["error_rate"], t=0.0, window_s=30.0))
    stable = GENERATED.tracks[APP, "stable"]
    assert sample.stable_counts.requests == stable.requests_at(at) - stable.requests_at(at - 30)
    assert sample.stable_counts.errors == stable.errors_at(at) - stable.errors_at(at - 30)
    window_errors = stable.errors_at(at) - stable.errors_at(at - 60)
    window_requests = stable.requests_at(at) - stable.requests_at(at - 60)
    assert sample.values["error_rate"].stable == pytest.approx(window_errors / window_requests)


def test_a_cached_history_is_served_the_same(tmp_path: Path) -> None:
    require_history_tools()
    short = History(START, START + 1800, seed=9)
    cache = tmp_path / "cache"
    with serving_history(short, tmp_path / "first", cache) as (first, generated):
        built = value_at(first, series("stable", "200"), START + 1800)
    with serving_history(short, tmp_path / "second", cache) as (second, cached):
        assert value_at(second, series("stable", "200"), START + 1800) == built
    assert generated is not None and cached is None
    assert built == generated.tracks[APP, "stable"].ok[-1]
