"""The sequential judge's cost on one sample: one metric's e-process updated and its evidence read.

Prints `judge_sample_us` (median of repeats), the time one metric adds to a sample's judgement; a
sample judges a few of them (errors, and latency above two or three bucket bounds)."""

from __future__ import annotations

import random
import statistics
import time

from console.judge.rate_ratio import RateRatioTest

SAMPLES = 630
"""The default canary: 1 h 45 min of 10 s samples."""


def one_rollout(seed: int) -> float:
    rng = random.Random(seed)
    test = RateRatioTest(0.2)
    counts = [(1000.0, rng.randrange(4), 19000.0, rng.randrange(30)) for _ in range(SAMPLES)]
    started = time.perf_counter()
    for canary, canary_errors, stable, stable_errors in counts:
        test.update(canary, canary_errors, stable, stable_errors)
        test.evidence(0.01 / 4)
    return (time.perf_counter() - started) / SAMPLES


def main() -> None:
    per_sample = [one_rollout(seed) for seed in range(15)]
    print(f"BENCH judge_sample_us {statistics.median(per_sample) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
