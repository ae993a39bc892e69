"""Bounds on one track's rate from its counts, valid at every look: 2 errors in 100 requests are evidence, not "2%".

A beta-binomial mixture martingale (Robbins' method of mixtures; Howard, Ramdas, McAuliffe and Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021): against a point rate p0,

    M(p0) = B(a + e, b + n − e) / B(a, b) / (p0^e (1 − p0)^(n − e))

over n requests with e errors. The rates whose M stays under 1/α form a confidence sequence, which holds
the true rate at every time with probability at least 1 − α. A rate is over a limit only when the whole
sequence lies above it, so the chance of calling a rate at or under its limit "over" is at most α.
"""

from __future__ import annotations

import math
from collections.abc import Callable

PRIOR = (0.5, 0.5)
"""Jeffreys' Beta(½, ½): mass near 0 and 1, where error and success rates sit."""
_BISECTIONS = 60
MOST_REQUESTS = 1e15
"""More requests than a service serves in a rollout: counts beyond it are a source's mistake, and no evidence
(the beta function of them overflows)."""


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


class _ConfidenceSequence:
    """The rates one track's counts leave in doubt at alpha: the mixture's part of log M, which does not
    depend on the rate, is computed once for every rate asked about."""

    def __init__(self, errors: float, requests: float, alpha: float):
        self.errors = min(max(round(errors), 0), requests)
        self.requests = requests
        a, b = PRIOR
        self._mixture = _log_beta(a + self.errors, b + (requests - self.errors)) - _log_beta(a, b)  # the successes first: 0.5 + 2**52 is 2**52
        self._threshold = math.log(1 / alpha)

    def excludes(self, rate: float) -> bool:
        errors, successes = self.errors, self.requests - self.errors
        if rate <= 0.0 or rate >= 1.0:  # M is infinite at 0 with errors seen, at 1 with successes seen
            return errors > 0 if rate <= 0.0 else successes > 0
        likelihood = (errors * math.log(rate) if errors else 0.0) + (successes * math.log1p(-rate) if successes > 0 else 0.0)
        return self._mixture - likelihood >= self._threshold


def countable(requests: float) -> bool:
    """Counts a bound can be had from: some requests, and no more than MOST_REQUESTS."""
    return 0 < requests <= MOST_REQUESTS


def rate_bounds(errors: float, requests: float, alpha: float) -> tuple[float, float] | None:
    """The confidence sequence's (low, high) for the rate of `errors` among `requests`; None with no requests."""
    if not countable(requests):
        return None
    sequence = _ConfidenceSequence(errors, requests, alpha)
    estimate = sequence.errors / requests
    # With errors seen, a rate of 0 is impossible (M is infinite there); likewise 1 with successes seen.
    low = 0.0 if sequence.errors == 0 else _bisect(sequence.excludes, 0.0, estimate)
    high = 1.0 if sequence.errors == requests else _bisect(sequence.excludes, 1.0, estimate)
    return low, high


def rate_excluded(rate: float, errors: float, requests: float, alpha: float) -> bool:
    """Whether `rate` lies outside the confidence sequence rate_bounds gives: one e-value, no bisection. Counts
    that are no evidence exclude nothing."""
    return countable(requests) and _ConfidenceSequence(errors, requests, alpha).excludes(rate)


def _bisect(rejected: Callable[[float], bool], outside: float, inside: float) -> float:
    """The edge between a rejected rate `outside` and a kept one `inside` (M is monotone on each side of the estimate)."""
    for _ in range(_BISECTIONS):
        middle = (outside + inside) / 2
        if middle in (0.0, 1.0):
            break
        if rejected(middle):
            outside = middle
        else:
            inside = middle
    return inside
