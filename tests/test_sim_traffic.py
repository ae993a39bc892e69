"""The simulator's traffic model, tested statistically: the samplers' means, variances and frequencies
over many seeded draws, each bound allowing four standard errors of the draws counted; the bucketed
latencies reproduce the quantiles they were fitted to when derived as Prometheus derives them; and the
simulator's samples, derived from the counts they carry, deterministic for a seed and a clock reading."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from console.derived import histogram_quantile, track_values
from console.plan.problems import PlanError
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.traffic import LATENCY_BUCKETS_S, LatencyShape, binomial, bucket_probabilities, draw_latency_buckets, draw_track_counts, poisson
from tests.conftest import ROOT, SAMPLES
from tests.test_sim_business_metrics import source

SEEDS = range(20)
DRAWS_PER_SEED = 1000
DRAWS = len(SEEDS) * DRAWS_PER_SEED


def draws(sampler) -> list[int]:
    """DRAWS values of `sampler(rng)`, DRAWS_PER_SEED from each seed of SEEDS."""
    values = []
    for seed in SEEDS:
        rng = random.Random(seed)
        values += [sampler(rng) for _ in range(DRAWS_PER_SEED)]
    return values


def assert_moments(values: list[int], mean: float, variance: float, fourth_central: float) -> None:
    """The sample mean within four standard errors of `mean`, and the sample variance within four of
    `variance` (its standard error from the fourth central moment: sqrt((mu4 - sigma^4) / n))."""
    n = len(values)
    sample_mean = sum(values) / n
    sample_variance = sum((v - sample_mean) ** 2 for v in values) / (n - 1)
    assert abs(sample_mean - mean) <= 4 * math.sqrt(variance / n) + 1e-12, (sample_mean, mean)
    assert abs(sample_variance - variance) <= 4 * math.sqrt((fourth_central - variance**2) / n) + 1e-12, (sample_variance, variance)


def assert_frequencies(values: list[int], pmf) -> None:
    """Each count's frequency within four binomial standard errors (plus one draw) of its probability."""
    n = len(values)
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    for k in range(min(seen), max(seen) + 1):
        p = pmf(k)
        assert abs(seen.get(k, 0) / n - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1 / n, (k, seen.get(k, 0) / n, p)


def poisson_pmf(mean: float):
    return lambda k: math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))


def binomial_pmf(trials: int, p: float):
    def pmf(k: int) -> float:
        log_choose = math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
        return math.exp(log_choose + k * math.log(p) + (trials - k) * math.log1p(-p))

    return pmf


@pytest.mark.parametrize("mean", [0.2, 3.0, 9.99, 10.0, 47.5, 2000.0, 20000.0])
def test_poisson_draws_have_the_mean_the_variance_and_the_frequencies_of_a_poisson(mean):
    """Both methods (inversion under a mean of 10, PTRS from it), at the simulator's means (a 5% canary's
    errors, a 2000 rps service over 10 s)."""
    values = draws(lambda rng: poisson(rng, mean))
    assert_moments(values, mean, mean, mean * (1 + 3 * mean))
    assert_frequencies(values, poisson_pmf(mean))


@pytest.mark.parametrize("trials, p", [(1000, 0.0002), (20000, 0.0003), (40, 0.2), (100, 0.3), (1000, 0.7), (20000, 0.01), (50000, 0.5), (7, 0.999)])
def test_binomial_draws_have_the_mean_the_variance_and_the_frequencies_of_a_binomial(trials, p):
    """Inversion where trials x p is under 10, BTRS from it, and p over 1/2 by symmetry."""
    values = draws(lambda rng: binomial(rng, trials, p))
    q = 1 - p
    variance = trials * p * q
    fourth_central = trials * p * q * (1 + 3 * (trials - 2) * p * q)
    assert_moments(values, trials * p, variance, fourth_central)
    assert_frequencies(values, binomial_pmf(trials, p))


def test_the_samplers_take_their_edges_as_they_are():
    rng = random.Random(1)
    assert poisson(rng, 0.0) == 0 and binomial(rng, 0, 0.5) == 0
    assert binomial(rng, 10, 0.0) == 0 and binomial(rng, 10, 1.0) == 10


SHAPES = [
    LatencyShape(40, 120, 240),  # the scenarios' baseline
    LatencyShape(40, 120, 650),  # latency-creep at its end: p99 far out on its own
    LatencyShape(20, 60, 120),  # a fast service
    LatencyShape(100, 300, 600),
    LatencyShape(300, 1200, 2000),  # a slow one, up to the simulator's ~2 s
]
QUANTILE_TOLERANCE = 0.04
"""histogram_quantile's interpolation within a bucket about 28% wide (up to 3.5% off for these shapes),
plus the draw's own spread over 200 000 requests: within 4% of the fitted quantile. A shape narrower
than a bucket (p50 20 ms, p99 30 ms) is off by up to 8%, as a real histogram with these bounds would be."""


def test_the_fitted_shape_passes_through_its_quantiles():
    for shape in SHAPES:
        for ms, quantile in ((shape.p50_ms, 0.5), (shape.p95_ms, 0.95), (shape.p99_ms, 0.99)):
            assert shape.cdf(ms / 1000) == pytest.approx(quantile, abs=1e-9)
        assert sum(bucket_probabilities(shape)) == pytest.approx(1.0)
    flat = LatencyShape(40, 40, 240)
    assert flat.cdf(0.0399) == pytest.approx(0.5, abs=1e-3) and flat.cdf(0.040) == pytest.approx(0.95), "half to 95% of requests take 40 ms"
    single = LatencyShape(40, 40, 40)
    assert (single.cdf(0.0399), single.cdf(0.040)) == (0.0, 1.0), "every request takes 40 ms"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.p50_ms:g}-{s.p95_ms:g}-{s.p99_ms:g}")
def test_bucketed_latencies_give_back_the_fitted_quantiles_through_histogram_quantile(shape):
    for seed in range(10):
        buckets = draw_latency_buckets(random.Random(seed), 200_000, shape)
        for ms, quantile in ((shape.p50_ms, 0.5), (shape.p95_ms, 0.95), (shape.p99_ms, 0.99)):
            derived = histogram_quantile(quantile, buckets) * 1000
            assert derived == pytest.approx(ms, rel=QUANTILE_TOLERANCE), (seed, quantile)


def test_the_buckets_are_cumulative_prometheus_buckets_ending_in_inf():
    buckets = draw_latency_buckets(random.Random(3), 5000, SHAPES[0])
    assert [bound for bound, _ in buckets] == [*LATENCY_BUCKETS_S, math.inf]
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and counts[-1] == 5000
    assert LATENCY_BUCKETS_S[0] == 0.005 and LATENCY_BUCKETS_S[-1] == 10.0


def test_a_slow_tail_shows_in_p99_and_not_in_p50():
    """3% of requests at about 2 s: p99 lies among them; p50 moves by the 3% it lost (under 5%)."""
    shape = LatencyShape(40, 120, 240, slow_share=0.03, slow_ms=2000)
    for seed in range(10):
        buckets = draw_latency_buckets(random.Random(seed), 200_000, shape)
        assert histogram_quantile(0.5, buckets) * 1000 == pytest.approx(40, rel=0.05)
        assert histogram_quantile(0.99, buckets) * 1000 == pytest.approx(2000, rel=0.15)


def test_a_bimodal_latency_has_its_median_in_the_mode_most_requests_take():
    """Six requests in ten at ~800 ms and four at the fast mode: p50 lies in the slow mode, well above the fast."""
    shape = LatencyShape(30, 60, 90, slow_share=0.6, slow_ms=800)
    buckets = draw_latency_buckets(random.Random(1), 200_000, shape)
    assert histogram_quantile(0.3, buckets) * 1000 < 100
    assert histogram_quantile(0.5, buckets) * 1000 > 500


def test_a_shape_refuses_quantiles_that_decrease_and_a_slow_share_without_its_latency():
    with pytest.raises(ValueError, match="must not decrease"):
        LatencyShape(40, 30, 240)
    with pytest.raises(ValueError, match="slow_latency_ms"):
        LatencyShape(40, 120, 240, slow_share=0.1)


def test_a_track_draw_is_its_rng_s_and_its_counts_agree():
    shape = SHAPES[0]
    first = draw_track_counts(random.Random(42), 2000, 10, 0.001, shape)
    again = draw_track_counts(random.Random(42), 2000, 10, 0.001, shape)
    assert first == again
    assert first.latency_buckets[-1] == (math.inf, first.requests)
    assert 0 <= first.errors <= first.requests
    assert abs(first.requests - 20000) < 4 * math.sqrt(20000)


def sim_source(scenario_text: str, tmp_path, weight: int = 25) -> SimMetricSource:
    """The simulator on the scenario `scenario_text`, its canary deployed at `weight`."""
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario_text)
    return source(load_scenario(str(path)), tmp_path, weight)


JUDGED = ["error_rate", "success_rate", "throughput", "latency_p50", "latency_p95", "latency_p99", "cpu"]


def test_a_sample_s_values_are_derived_from_the_counts_it_carries(tmp_path):
    metrics = sim_source("name: s\nstable: {error_rate: 0.01, rps: 2000}\n", tmp_path, weight=25)
    sample = metrics.values_at(JUDGED, 60, 10)
    for track, counts in (("canary", sample.canary_counts), ("stable", sample.stable_counts)):
        derived = track_values(counts, 10)
        for metric in ("error_rate", "success_rate", "throughput", "latency_p50", "latency_p95", "latency_p99"):
            assert getattr(sample.values[metric], track) == derived[metric], (track, metric)
    assert sample.canary_requests == sample.canary_counts.requests
    assert abs(sample.canary_counts.requests - 5000) < 4 * math.sqrt(5000), "25% of 2000 rps over 10 s"
    assert abs(sample.stable_counts.requests - 15000) < 4 * math.sqrt(15000)
    assert sample.values["error_rate"].canary != 0.01, "a rate of counted errors, not the scenario's figure"


def test_the_span_a_sample_measures_scales_its_counts(tmp_path):
    metrics = sim_source("name: s\n", tmp_path, weight=50)
    short, long = metrics.values_at(JUDGED, 60, 10), metrics.values_at(JUDGED, 60, 40)
    assert long.canary_counts.requests == pytest.approx(4 * short.canary_counts.requests, rel=0.1)
    assert long.values["throughput"].canary == pytest.approx(1000, rel=0.05), "requests per second, whatever the span"


def test_the_same_seed_and_clock_reading_give_the_same_sample_and_another_reading_another(tmp_path):
    text = "name: s\nseed: 9\nstable: {error_rate: 0.002}\n"
    first = sim_source(text, tmp_path).values_at(JUDGED, 130, 10)
    again = sim_source(text, tmp_path).values_at(JUDGED, 130, 10)
    later = sim_source(text, tmp_path).values_at(JUDGED, 140, 10)
    assert first == again, "a resumed run sees what the killed one would have"
    assert later.canary_counts != first.canary_counts


def test_a_scenario_s_slow_tail_shows_in_the_canary_s_p99_and_not_its_p50(tmp_path):
    metrics = sim_source("name: s\ncanary: {slow_share: 0.03, slow_latency_ms: 2000}\n", tmp_path, weight=50)
    for t in range(60, 660, 60):
        values = metrics.values_at(JUDGED, t, 10).values
        assert values["latency_p99"].canary > 1000 > 300 > values["latency_p99"].stable, t
        assert values["latency_p50"].canary == pytest.approx(values["latency_p50"].stable, rel=0.1), t


@pytest.mark.parametrize(
    "text, problem",
    [
        ("name: s\nstable:\n  latency_p99_ms: 30\n", "3: stable.latency_p99_ms: stable: latency quantiles must not decrease: p50 40 ms, p95 120 ms, p99 30 ms"),
        ("name: s\ncanary:\n  slow_share: 0.1\n", "3: canary.slow_share: canary: a slow share needs the slow requests' latency (slow_latency_ms)"),
        (
            "name: s\nevents:\n  - {at: 1m, set: {latency_p50_ms: 900}, over: 1m}\n",
            "3: events[0].set.latency_p50_ms: canary at 120s: latency quantiles must not decrease: p50 900 ms, p95 120 ms, p99 240 ms",
        ),
        ("name: s\ncanary:\n  slow_share: 1.5\n", "3: canary.slow_share: Input should be less than or equal to 1"),
        ("name: s\ncanary:\n  slow_latency_ms: 0\n", "3: canary.slow_latency_ms: Input should be greater than 0"),
    ],
)
def test_latencies_that_are_no_spread_are_refused_at_their_line(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as caught:
        load_scenario(str(path))
    assert [str(p) for p in caught.value.problems] == [f"{path}:{problem}"]


def test_a_run_on_such_a_scenario_exits_2_naming_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: s\nstable:\n  latency_p99_ms: 30\n")
    command = [
        sys.executable,
        "-m",
        "console.app",
        "run",
        str(SAMPLES / "canary.yaml"),
        "--headless",
        "--fast",
        "--scenario",
        str(path),
        "--state-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and f"{path}:3: stable.latency_p99_ms: stable: latency quantiles must not decrease" in result.stderr
    assert "Traceback" not in result.stderr
