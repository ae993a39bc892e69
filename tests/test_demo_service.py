"""The demo service's traffic without Prometheus: drawn, seeded, and exported consistently."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from console.derived import histogram_quantile
from testbed.demo_service import CLIENT_ERROR_SHARE, TICK_S, DemoService, TrackProfile

TICKS = 1000
"""100 s of traffic: 200,000 canary requests at 2000 a second."""


def service(seed: int, canary_error_rate: float = 0.015) -> DemoService:
    profiles = {
        "canary": TrackProfile(rps=2000, error_rate=canary_error_rate, latency_ms=40),
        "stable": TrackProfile(rps=100, error_rate=0.0, latency_ms=40),
    }
    return DemoService("checkout", profiles, spike_error_rate=0.05, seed=seed)


def exported(demo: DemoService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition: (name, labels) → value."""
    text = generate_latest(demo.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def served(demo: DemoService, ticks: int = TICKS) -> dict:
    for _ in range(ticks):
        demo.serve(TICK_S)
    return exported(demo)


def by_code(series: dict, track: str) -> dict[str, float]:
    return {dict(labels)["code"]: value for (name, labels), value in series.items() if name == "http_requests_total" and dict(labels)["track"] == track}


def buckets(series: dict, track: str) -> list[tuple[float, float]]:
    return sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in series.items()
        if name == "http_request_duration_seconds_bucket" and dict(labels)["track"] == track
    )


def test_one_seed_serves_the_same_traffic_and_another_seed_other_traffic() -> None:
    assert served(service(3), 50) == served(service(3), 50)
    assert served(service(3), 50) != served(service(4), 50)


def test_errors_are_binomial_at_the_configured_rate_and_404s_are_not_among_them() -> None:
    counts = by_code(served(service(5)), "canary")
    requests = sum(counts.values())
    assert requests == pytest.approx(2000 * TICKS * TICK_S, rel=0.01), "Poisson arrivals at the rate"
    failed = counts["500"] + counts["503"]
    # Four standard deviations of a binomial share over 200,000 requests: about 0.0011 at 1.5%.
    assert failed / requests == pytest.approx(0.015, abs=4 * math.sqrt(0.015 * 0.985 / requests))
    assert counts["404"] / (requests - failed) == pytest.approx(CLIENT_ERROR_SHARE, abs=0.002)


def test_a_healthy_track_never_fails() -> None:
    counts = by_code(served(service(6), 100), "stable")
    assert "500" not in counts and "503" not in counts


def test_the_histogram_holds_every_request_and_its_quantiles_are_the_profiles() -> None:
    series = served(service(7))
    histogram = buckets(series, "canary")
    assert histogram[-1] == (math.inf, sum(by_code(series, "canary").values())), "+Inf counts every request, in the same scrape"
    assert series[("http_request_duration_seconds_count", (("app", "checkout"), ("track", "canary")))] == histogram[-1][1]
    # A 40 ms median with p95 ≈ 2.3x and p99 ≈ 3.2x, read back through the buckets as histogram_quantile reads them.
    assert histogram_quantile(0.5, histogram) * 1000 == pytest.approx(40, rel=0.05)
    assert histogram_quantile(0.95, histogram) * 1000 == pytest.approx(40 * math.exp(1.645 * 0.5), rel=0.05)
    assert histogram_quantile(0.99, histogram) * 1000 == pytest.approx(40 * math.exp(2.326 * 0.5), rel=0.05)


def test_a_fault_changes_the_track_and_a_reset_undoes_it() -> None:
    demo = service(8, canary_error_rate=0.0)
    demo.set_profile("canary", error_rate=0.5)
    counts = by_code(served(demo, 20), "canary")
    assert counts["500"] + counts["503"] > 0.4 * sum(counts.values())
    demo.reset()
    assert demo.state()["tracks"]["canary"]["error_rate"] == 0.0
    with pytest.raises(ValueError, match="error_rate out of range"):
        demo.set_profile("canary", error_rate=1.5)
