"""The sequential judge's cost on one sample, as the controller pays it: the counts added, the evidence
journaled and a regression looked for.

Prints `judge_sample_us` (median of repeats) for a plan judging errors and latency_p50, p95 and p99 (four
e-processes, the most a plan has), and `judge_metric_us`, one metric's e-process alone (update and evidence)."""

from __future__ import annotations

import math
import random
import statistics
import time

from console.controller.sequential import SequentialJudge
from console.judge.rate_ratio import RateRatioTest
from console.samples import TrackCounts

SAMPLES = 630
"""The default canary: 1 h 45 min of 10 s samples."""
BOUNDS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
SLOWER = (0.7, 0.4, 0.05, 0.008, 0.002, 0.0005, 0.0001, 0.0)
"""The share of requests slower than each bound."""


def track(rng: random.Random, requests: float, error_rate: float) -> TrackCounts:
    """Roughly the counts of an interval (a bench needs their sizes, not their distribution)."""
    buckets = tuple(
        (bound, round(requests * (1 - share) + rng.gauss(0, math.sqrt(requests * share + 1)) * (share > 0)))
        for bound, share in zip(BOUNDS_S, SLOWER, strict=True)
    )
    served = float(buckets[-1][1])
    return TrackCounts(
        served, float(rng.randrange(round(2 * requests * error_rate) + 1)), tuple((bound, min(float(count), served)) for bound, count in buckets)
    )


def one_rollout(seed: int) -> float:
    rng = random.Random(seed)
    judge = SequentialJudge(0.01, 0.2, 0.0001, ("error_rate", "latency_p99", "latency_p50", "latency_p95"))
    counts = [(track(rng, 1000.0, 0.002), track(rng, 19000.0, 0.002)) for _ in range(SAMPLES)]
    started = time.perf_counter()
    for canary, stable in counts:
        judge.add(canary, stable)
        judge.journaled()
        judge.regression()
    return (time.perf_counter() - started) / SAMPLES


def one_metric(seed: int) -> float:
    rng = random.Random(seed)
    test = RateRatioTest(0.2)
    counts = [(1000.0, rng.randrange(4), 19000.0, rng.randrange(30)) for _ in range(SAMPLES)]
    started = time.perf_counter()
    for canary, canary_errors, stable, stable_errors in counts:
        test.update(canary, canary_errors, stable, stable_errors)
        test.evidence(0.01 / 4)
    return (time.perf_counter() - started) / SAMPLES


def main() -> None:
    print(f"BENCH judge_sample_us {statistics.median(one_rollout(seed) for seed in range(15)) * 1e6:.1f} us")
    print(f"BENCH judge_metric_us {statistics.median(one_metric(seed) for seed in range(15)) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
