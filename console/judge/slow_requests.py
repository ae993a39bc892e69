"""Latency as counts: requests slower than one bucket bound of the histogram, chosen once from stable's own tail.

"Slower than b among all requests" is the error-rate problem again (a slow request plays the error), so
the same rate-ratio e-process tests it, one per latency quantile the plan judges. The test is valid for
a bound fixed before the counts it weighs, never re-chosen from them: a bound picked at each sample
where the canary looks worst would find a difference in any two identical tracks.

The bound: the smallest bucket bound at or above stable's quantile (p99: 99% of stable's requests at
most that slow), from stable's counts over its first samples only, until stable has served enough
requests to expect CALIBRATION_TAIL of them beyond the quantile (p99: 5,000). Those samples choose the
bound and are not tested; the test starts with the next sample. The intervals' counts are independent
(Poisson), so given the bound the later counts are as if it had been fixed beforehand, and Ville's
bound holds for each bound it could have chosen. Stable's own quantile keeps the test about "the
canary's tail against stable's", which a bound at the plan's absolute limit would not be: a canary
three times as slow in its tail while under every limit has few requests beyond a 500ms limit when
stable's p99 is 150ms, and a plan's limits differ stage by stage, where the test must not.

Where stable's quantile lies beyond the highest finite bound, that bound is the one tested (the tail
past it is still compared); a histogram with no finite bound gives no test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

CALIBRATION_TAIL = 50
"""Requests stable is expected to serve beyond its quantile before the bound is chosen."""
FLOOR_SHARE_OF_TAIL = 0.1
"""A share of requests slower than the bound too small to matter, as a part of the quantile's own tail
(p99: 0.1%, p95: 0.5%, p50: 5%): with so few, no quantile near the one judged moves past the bound."""

Buckets = Sequence[tuple[float, float]]


def slow_requests(buckets: Buckets, bound: float) -> tuple[float, float] | None:
    """(requests, requests slower than `bound`) from a track's cumulative buckets; None when they are no
    evidence: no +Inf bucket, no bucket at `bound` (another layout), no requests, or counts that contradict
    each other (more at `bound` than in all, or fewer than none)."""
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    at_bound = next((count for upper, count in buckets if upper == bound), None)
    if at_bound is None or total <= 0 or at_bound < 0 or round(total - at_bound) < 0:
        return None
    return total, total - at_bound


class TailBound:
    """The bound one latency quantile is tested at, chosen once from stable's first samples."""

    def __init__(self, quantile: float):
        self.quantile = quantile
        self.settled = False
        self.bound: float | None = None
        """Seconds; None before it is settled, or after when the histogram has no finite bound."""
        self._needed = CALIBRATION_TAIL / (1 - quantile)
        self._counts: dict[float, float] | None = None
        """Stable's requests at most as slow as each bound, summed over the calibration (bounds every sample had)."""

    def observe(self, stable: Buckets) -> None:
        """One of stable's samples during the calibration; the bound is settled once enough were seen."""
        if self.settled or not stable or stable[-1][0] != math.inf or stable[-1][1] <= 0:
            return
        if self._counts is None:
            self._counts = dict(stable)
        else:
            sample = dict(stable)
            self._counts = {upper: count + sample[upper] for upper, count in self._counts.items() if upper in sample}
        total = self._counts[math.inf]
        if total < self._needed:
            return
        finite = sorted(upper for upper in self._counts if upper != math.inf)
        at_or_above = [upper for upper in finite if self._counts[upper] >= self.quantile * total]
        self.bound = at_or_above[0] if at_or_above else (finite[-1] if finite else None)
        self.settled, self._counts = True, None

    def to_plain(self) -> dict[str, Any]:
        """Where the calibration stands, as a snapshot keeps it (`restore` takes it up); JSON's null for the inf bound."""
        counts = None if self._counts is None else [[None if math.isinf(upper) else upper, count] for upper, count in self._counts.items()]
        return {"settled": self.settled, "bound": self.bound, "counts": counts}

    def restore(self, plain: dict[str, Any]) -> None:
        """The calibration as `to_plain` kept it; ValueError, TypeError or KeyError when it is not one."""
        counts = plain["counts"]
        bound = plain["bound"]
        self._counts = None if counts is None else {math.inf if upper is None else float(upper): float(count) for upper, count in counts}
        self.settled, self.bound = bool(plain["settled"]), None if bound is None else float(bound)

    @property
    def floor(self) -> float:
        return FLOOR_SHARE_OF_TAIL * (1 - self.quantile)
