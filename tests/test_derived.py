"""Rates and quantiles derived from counts, as Prometheus derives them from the same increases."""

from __future__ import annotations

import math

import pytest

from console.derived import histogram_quantile, track_values
from console.samples import TrackCounts

BUCKETS = ((0.1, 50.0), (0.25, 90.0), (0.5, 99.0), (1.0, 100.0), (math.inf, 100.0))


def test_a_quantile_is_interpolated_linearly_in_the_bucket_its_rank_falls_in():
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.1)
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(0.05), "the first bucket starts at 0"
    assert histogram_quantile(0.7, BUCKETS) == pytest.approx(0.175)
    assert histogram_quantile(0.995, BUCKETS) == pytest.approx(0.75)


def test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound_and_no_observations_give_none():
    assert histogram_quantile(0.99, ((0.1, 10.0), (0.2, 10.0), (math.inf, 20.0))) == 0.2
    assert histogram_quantile(0.5, ((0.1, 0.0), (math.inf, 0.0))) is None
    assert histogram_quantile(0.5, ((0.1, 5.0), (1.0, 5.0))) is None, "without +Inf Prometheus gives NaN"
    assert histogram_quantile(0.5, ((math.inf, 5.0),)) is None


def test_track_values_are_ratios_of_the_counts_and_quantiles_in_milliseconds():
    values = track_values(TrackCounts(100.0, 2.0, BUCKETS), span_s=10.0)
    assert values["error_rate"] == pytest.approx(0.02) and values["success_rate"] == pytest.approx(0.98)
    assert values["throughput"] == pytest.approx(10.0) and values["latency_p50"] == pytest.approx(100.0)
    silent = track_values(TrackCounts(0.0, 0.0), span_s=10.0)
    assert silent["error_rate"] is None and silent["latency_p99"] is None and silent["throughput"] == 0.0
