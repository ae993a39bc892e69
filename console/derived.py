"""A track's rates and latency quantiles, derived from the counts it served over a sample's interval.

Both metric sources derive them here, so the values shown and judged by the absolute limits are the
ones Prometheus itself would give for the same counts: rates as ratios of increases, and quantiles by
histogram_quantile's linear interpolation within the bucket the rank falls in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate
from operator import itemgetter

from console.samples import TrackCounts

QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
"""The latency metrics and the quantile each one is."""


def histogram_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The `quantile` of cumulative (upper bound, count) buckets, as PromQL's histogram_quantile computes it
    (promql/quantile.go, bucketQuantile); None where it gives NaN: no +Inf bucket, fewer than two buckets,
    or no observations. A rank in the +Inf bucket gives the highest finite bound, as Prometheus does."""
    return _quantile(quantile, _histogram(buckets))


Histogram = tuple[list[float], list[float]]
"""Bounds ascending, one per bucket, and their cumulative counts, never decreasing."""


def _histogram(buckets: Sequence[tuple[float, float]]) -> Histogram | None:
    """The buckets as histogram_quantile reads them; None where it would give NaN whatever the quantile."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    # A count below the one before is taken as it (monotonic); equal bounds are one bucket, with the last
    # (the largest) of their counts: a dict keeps each bound once, in order, with the value given last.
    merged = dict(zip(map(itemgetter(0), ordered), accumulate(map(itemgetter(1), ordered), max), strict=True))
    if len(merged) < 2 or merged[math.inf] <= 0:
        return None
    return list(merged), list(merged.values())


def _quantile(quantile: float, histogram: Histogram | None) -> float | None:
    if not 0 <= quantile <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {quantile}")
    if histogram is None:
        return None
    bounds, counts = histogram
    rank = quantile * counts[-1]
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, in_bucket = 0.0, counts[index]
    if index > 0:
        start = bounds[index - 1]
        in_bucket -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (bounds[index] - start) * (rank / in_bucket)


def track_values(counts: TrackCounts, span_s: float) -> dict[str, float | None]:
    """error_rate, success_rate and throughput over `span_s`, and each latency quantile in milliseconds
    (None without a histogram); rates are None on a track that served no request."""
    served = counts.requests > 0
    error_rate = min(1.0, counts.errors / counts.requests) if served else None
    values: dict[str, float | None] = {
        "error_rate": error_rate,
        "success_rate": None if error_rate is None else 1.0 - error_rate,
        "throughput": counts.requests / span_s if span_s > 0 else None,
    }
    histogram = _histogram(counts.latency_buckets)  # once for every quantile
    for metric, quantile in QUANTILES.items():
        seconds = _quantile(quantile, histogram)
        values[metric] = None if seconds is None else seconds * 1000
    return values
