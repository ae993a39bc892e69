"""The simulator's traffic: what one track serves over a sample's span, drawn as counts.

Requests are Poisson, errors binomial among them, and latencies fall into cumulative Prometheus-style
buckets drawn from a distribution fitted to a scenario's p50/p95/p99 (and an optional slow mode), so the
values shown and judged are derived from counts as Prometheus would derive them from a real service.

The samplers are exact (not approximations) and cost the same for any mean: Hörmann's transformed
rejection with squeeze, PTRS for the Poisson and BTRS for the binomial (W. Hörmann, "The transformed
rejection method for generating Poisson random variables", Insurance: Mathematics and Economics 12, 1993,
and "The generation of binomial random variates", J. Statist. Comput. Simul. 46, 1993), and inversion by
sequential search for small means, where it is the faster.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

from console.samples import TrackCounts


def _latency_bounds(low_s: float, high_s: float, count: int) -> tuple[float, ...]:
    """`count` bounds spaced evenly in log from `low_s` to `high_s`, to three significant digits."""
    ratio = (high_s / low_s) ** (1 / (count - 1))
    return tuple(float(f"{low_s * ratio**i:.3g}") for i in range(count))


LATENCY_BUCKETS_S = _latency_bounds(0.005, 10.0, 32)
"""The latency histogram's upper bounds in seconds (besides +Inf), for the simulator and the demo service:
5 ms to 10 s, each about 28% above the one before, so that histogram_quantile's linear interpolation in
a bucket puts a quantile within a few percent of the true one (tests/test_sim_traffic.py measures it)."""

SMALL_MEAN = 10.0
"""Below this mean, inversion by sequential search; from it, transformed rejection (whose constants
Hörmann fitted for means of 10 and more)."""


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count of the given mean."""
    if mean <= 0:
        return 0
    if mean < SMALL_MEAN:
        return _poisson_inversion(rng, mean)
    return _poisson_ptrs(rng, mean)


def _poisson_inversion(rng: random.Random, mean: float) -> int:
    count, probability = 0, math.exp(-mean)
    u = rng.random()
    while u > probability:
        u -= probability
        count += 1
        probability *= mean / count
        if probability <= 0:  # the rounding left u beyond the whole mass: the tail is empty
            return count
    return count


def _poisson_ptrs(rng: random.Random, mean: float) -> int:
    root, log_mean = math.sqrt(mean), math.log(mean)
    b = 0.931 + 2.53 * root
    a = -0.059 + 0.02483 * b
    log_inverse_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    v_r = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_inverse_alpha - math.log(a / (us * us) + b) <= -mean + k * log_mean - math.lgamma(k + 1):
            return k


def binomial(rng: random.Random, trials: int, p: float) -> int:
    """How many of `trials` independent trials succeed, each with probability `p`."""
    if trials <= 0 or p <= 0:
        return 0
    if p >= 1:
        return trials
    if p > 0.5:
        return trials - binomial(rng, trials, 1 - p)
    if trials * p < SMALL_MEAN:
        return _binomial_inversion(rng, trials, p)
    return _binomial_btrs(rng, trials, p)


def _binomial_inversion(rng: random.Random, trials: int, p: float) -> int:
    q = 1 - p
    first = math.exp(trials * math.log1p(-p))
    ratio = p / q
    count, probability = 0, first
    u = rng.random()
    while u > probability:
        u -= probability
        count += 1
        probability *= (trials - count + 1) * ratio / count
        if count >= trials or probability <= 0:  # the rounding left u beyond the whole mass
            return count
    return count


def _binomial_btrs(rng: random.Random, trials: int, p: float) -> int:
    spread = math.sqrt(trials * p * (1 - p))
    b = 1.15 + 2.53 * spread
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = trials * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spread
    log_odds = math.log(p / (1 - p))
    log_mode_mass = None  # most draws are taken by the quick test, which needs none of the mode's mass
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + c)
        if k < 0 or k > trials:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        if log_mode_mass is None:
            mode = math.floor((trials + 1) * p)
            log_mode_mass = math.lgamma(mode + 1) + math.lgamma(trials - mode + 1)
        log_ratio = log_mode_mass - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + (k - mode) * log_odds
        if math.log(v * alpha / (a / (us * us) + b)) <= log_ratio:
            return k


_QUANTILE_Z = (0.0, 1.6448536269514722, 2.3263478740408408)
"""The standard normal's quantiles at 0.5, 0.95 and 0.99."""

SLOW_SPREAD = 0.2
"""The slow mode's spread: its latencies are lognormal about its median with this sigma (of the log)."""

FLOOR_MS = 0.001
"""A latency given as 0 ms is taken as this, since the fitted shape lives on the log scale."""


@dataclass(frozen=True)
class LatencyShape:
    """How a track's request latencies are spread: lognormal between its quantiles, with an optional slow mode.

    The main mode passes exactly through p50, p95 and p99: the log of the latency is piecewise linear in
    the normal quantile between them (one lognormal when the three agree), and the tails go on with the
    slope of the nearest piece. A share `slow_share` of requests instead takes about `slow_ms` (a slow
    dependency, a cache miss: a tail or a second mode); the main mode's quantiles are then those of the
    other requests, so a 2% share at 2 s shows in p99 and not in p50."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    slow_share: float = 0.0
    slow_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.p50_ms <= self.p95_ms <= self.p99_ms:
            raise ValueError(f"latency quantiles must not decrease: p50 {self.p50_ms:g} ms, p95 {self.p95_ms:g} ms, p99 {self.p99_ms:g} ms")
        if not 0 <= self.slow_share <= 1:
            raise ValueError(f"slow_share is a fraction between 0 and 1, not {self.slow_share:g}")
        if self.slow_share > 0 and self.slow_ms <= 0:
            raise ValueError("a slow share needs the slow requests' latency (slow_latency_ms)")

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float) -> LatencyShape:
        """One lognormal: its median, and the spread of the latency's log."""
        p50, p95, p99 = (median_ms * math.exp(z * sigma) for z in _QUANTILE_Z)
        return cls(p50, p95, p99)

    def cdf(self, seconds: float) -> float:
        """The share of requests that take at most `seconds`."""
        if seconds == math.inf:
            return 1.0
        if seconds <= 0:
            return 0.0
        log_ms = math.log(seconds * 1000)
        main = _normal_cdf(self._main_z(log_ms))
        if self.slow_share <= 0:
            return main
        slow = _normal_cdf((log_ms - math.log(self.slow_ms)) / SLOW_SPREAD)
        return (1 - self.slow_share) * main + self.slow_share * slow

    def _main_z(self, log_ms: float) -> float:
        """The normal quantile of a latency (its log in ms) under the main mode; ±inf beyond a flat tail."""
        logs = tuple(math.log(max(ms, FLOOR_MS)) for ms in (self.p50_ms, self.p95_ms, self.p99_ms))
        if log_ms < logs[0]:  # under p50: on down along the nearest rising piece
            return _along(logs, 0, ((0, 1), (1, 2)), log_ms, -math.inf)
        if log_ms >= logs[2]:  # at or over p99: on up along the nearest rising piece
            return _along(logs, 2, ((1, 2), (0, 1)), log_ms, math.inf)
        i = 1 if log_ms >= logs[1] else 0  # logs[i] <= log_ms < logs[i + 1]
        return _along(logs, i, ((i, i + 1),), log_ms, math.inf)


def _along(logs: tuple[float, ...], anchor: int, pieces: tuple[tuple[int, int], ...], log_ms: float, flat: float) -> float:
    """The normal quantile of `log_ms` on a line through knot `anchor` with the slope of the first rising
    piece of `pieces`; `flat` (±inf: no request there) when every piece is flat."""
    for i, j in pieces:
        if logs[j] > logs[i]:
            slope = (_QUANTILE_Z[j] - _QUANTILE_Z[i]) / (logs[j] - logs[i])
            return _QUANTILE_Z[anchor] + (log_ms - logs[anchor]) * slope
    return flat


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


@lru_cache(maxsize=256)
def bucket_probabilities(shape: LatencyShape) -> tuple[float, ...]:
    """The probability of each bucket (LATENCY_BUCKETS_S, then +Inf) on its own, not cumulative."""
    cumulative = [shape.cdf(bound) for bound in LATENCY_BUCKETS_S] + [1.0]
    return tuple(b - a for a, b in zip([0.0, *cumulative], cumulative, strict=False))


def draw_latency_buckets(rng: random.Random, requests: int, shape: LatencyShape) -> tuple[tuple[float, float], ...]:
    """Cumulative (upper bound s, count) buckets of `requests` latencies drawn from `shape`: each bucket's
    count a binomial of the requests not yet placed, at its share of the probability left (a multinomial
    draw whose cost follows the buckets, not the requests)."""
    left, mass, placed = requests, 1.0, 0
    buckets = []
    for bound, probability in zip((*LATENCY_BUCKETS_S, math.inf), bucket_probabilities(shape), strict=True):
        if left > 0 and probability > 0:
            count = left if probability >= mass else binomial(rng, left, probability / mass)
            left -= count
            placed += count
        mass -= probability
        buckets.append((bound, float(placed)))
    buckets[-1] = (math.inf, float(requests))  # whatever rounding left of the mass is in +Inf
    return tuple(buckets)


def draw_track_counts(rng: random.Random, rps: float, span_s: float, error_rate: float, shape: LatencyShape) -> TrackCounts:
    """What a track taking `rps` requests per second serves over `span_s`: Poisson requests, binomial
    errors at `error_rate`, and their latencies bucketed."""
    requests = poisson(rng, rps * span_s)
    errors = binomial(rng, requests, error_rate)
    return TrackCounts(float(requests), float(errors), draw_latency_buckets(rng, requests, shape))
