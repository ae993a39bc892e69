"""Is the canary's error rate worse than stable's beyond a tolerance? An e-process on the counts.

Errors on each track are Poisson with rate λ × requests. Given an interval's k = e_c + e_s errors, each
one is the canary's with probability π(ρ) = ρ n_c / (ρ n_c + n_s), ρ = λ_c / λ_s. The log-likelihood of
ρ is kept on a log-spaced grid and summed over intervals; the request counts of each interval weigh it,
so evidence from 5%, 25% and 50% of traffic adds up on the same ρ.

- Test of "ρ ≤ 1 + τ" against "ρ > 1 + τ": the mixture over the grid points above ρ0 = 1 + τ of their
  likelihood ratios to ρ0, each point weighted RATIO_PRIOR times the one below it. It is a martingale at
  ρ0 and a supermartingale below (each error's ratio has mean 1 − (π0 − π)(…) ≤ 1 when π ≤ π0), so by
  Ville's inequality it ever reaches 1/α with probability at most α, however often it is looked at
  (Lindon, Sanden and Shirikian, KDD 2022).
- Test of "ρ ≤ 1" (no worse than stable at all), for the promotion gate: the same mixture (the points above
  1 + τ, the same weights) of likelihood ratios to the grid's first point at or above 1 (under 1.06), not
  to 1 + τ. Each is a supermartingale while ρ is at most that point, so its rejection shows ρ above it, and
  above 1, at least as surely. It never rolls back (a canary a little worse than stable is within the
  tolerance); it only keeps a stage from being promoted while the evidence is ambiguous.
- Interval for ρ: every grid point whose own mixture e-value (uniform over the whole grid) stays
  under 1/α; it holds the true ρ at all times with probability at least 1 − α (a confidence sequence).

Counts may be fractions (a counter is a float, and a source may extrapolate); errors are rounded to whole ones (the likelihood is
of whole events), requests stay as given (they only weigh π).

The log-likelihood of ρ over the intervals so far is E_c log ρ − Σ k log(1 + ρ n_c/n_s) plus a term
that is the same at every ρ (Σ e_c log(n_c/n_s)) and cancels in every ratio the test takes; only the
canary's errors E_c and the sum are kept, the sum updated in C-level maps (a sample judges several
metrics, each its own test). Both are sums over intervals, so the test of the intervals since a moment is
the test's sums now less those at that moment (a `Mark`): a test from a stage's start costs no update of
its own, and its e-value needs only the grid from the null up.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import repeat
from operator import add, mul, neg, sub
from typing import Any

from console.judge.rate_bound import rate_bounds

GRID_TOP = 20.0
"""The largest rate ratio the mixture weighs; a canary worse than that is caught by the one at 20."""
GRID_POINTS_ABOVE = 50
GRID_BOTTOM = 1 / 20
RATIO_PRIOR = 0.9
"""The mixture's weight on a grid point above the null, against the point below it: most of it on the ratios
just past the tolerance, where the evidence is slowest to gather (a ×5 canary is caught in a few samples
whatever the weights). In bench/bench_judgement.py's corpus it catches more ×1.5 canaries sooner than
uniform weights, with no more false rollbacks."""


@dataclass(frozen=True)
class RatioEvidence:
    """What the test has seen and concludes so far."""

    log_e_value: float
    """log of the e-value against "no worse than 1 + tolerance"; rejected at log(1/alpha)."""
    estimate: float | None
    """The grid's most likely ρ; None before any error was seen."""
    low: float | None
    high: float | None
    """The confidence sequence for ρ at the test's alpha (None where it is unbounded on the grid)."""
    canary_requests: float
    canary_errors: int
    stable_requests: float
    stable_errors: int

    def rejects(self, alpha: float) -> bool:
        return self.log_e_value >= math.log(1 / alpha)

    def regressed(self, alpha: float, floor: float) -> bool:
        """Rejected, and the canary's own error rate is beyond doubt above `floor`: 0.002% against 0.001% is
        twice the errors but no regression. Both must hold, so false regressions stay under alpha."""
        return self.rejects(alpha) and self.above_floor(alpha, floor)

    def above_floor(self, alpha: float, floor: float) -> bool:
        """The canary's own error rate is beyond doubt above `floor`."""
        bounds = rate_bounds(self.canary_errors, self.canary_requests, alpha)
        return bounds is not None and bounds[0] > floor


@dataclass(frozen=True)
class Mark:
    """The sums of a test at one moment: the test of the intervals after it subtracts them."""

    penalty: tuple[float, ...]
    canary_requests: float
    canary_errors: int
    stable_requests: float
    stable_errors: int

    def to_plain(self) -> dict[str, Any]:
        return {"penalty": list(self.penalty), "counts": [self.canary_requests, self.canary_errors, self.stable_requests, self.stable_errors]}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Mark:
        """A mark `to_plain` wrote; ValueError or TypeError when it is not one."""
        penalty = tuple(float(value) for value in plain["penalty"])
        canary_requests, canary_errors, stable_requests, stable_errors = plain["counts"]
        return cls(penalty, float(canary_requests), int(canary_errors), float(stable_requests), int(stable_errors))


class RateRatioTest:
    """The e-process for one metric of one rollout: constant memory, an update per sample."""

    def __init__(self, tolerance: float):
        if tolerance <= 0:
            raise ValueError("the tolerance must be above 0: every real canary differs a little from stable")
        self.null_ratio = 1 + tolerance
        step = (GRID_TOP / self.null_ratio) ** (1 / GRID_POINTS_ABOVE)
        below = math.ceil(math.log(self.null_ratio / GRID_BOTTOM) / math.log(step))
        self.grid = [self.null_ratio * step**k for k in range(-below, GRID_POINTS_ABOVE + 1)]
        self._log_grid = [math.log(rho) for rho in self.grid]
        self._null_index = below
        prior = [RATIO_PRIOR**k for k in range(GRID_POINTS_ABOVE)]
        self._prior = [weight / sum(prior) for weight in prior]
        """The mixture's weights on the points above the null, summing to 1."""
        self._log_prior = [math.log(weight) for weight in self._prior]
        self._equal_index = bisect_left(self.grid, 1.0)
        """The grid's first point at or above 1: the null of the test of "no worse than stable"."""
        self._penalty = [0.0] * len(self.grid)
        """Σ over intervals of k log(1 + ρ n_c/n_s), at each grid point."""
        self.canary_requests = self.stable_requests = 0.0
        self.canary_errors = self.stable_errors = 0
        self._evidence: tuple[float, RatioEvidence] | None = None
        """The last evidence read and its alpha, until the next update (the journal and the verdict both read it)."""
        self._log_e: float | None = None
        """The last log e-value read, until an update moves the likelihood."""

    def update(
        self, canary_requests: float, canary_errors: float, stable_requests: float, stable_errors: float, memo: dict[object, object] | None = None
    ) -> bool:
        """One interval's counts; an interval with no requests on a track, or no errors, says nothing of ρ.
        Whether the likelihood moved: the log e-values, of the whole test and since any mark, move only with it.
        `memo` keeps the interval's term at each grid point for another test given the same counts (TrackCounts.derived)."""
        errors_c, errors_s = round(canary_errors), round(stable_errors)
        if canary_requests <= 0 or stable_requests <= 0:
            return False
        self._evidence = None
        self.canary_requests += canary_requests
        self.stable_requests += stable_requests
        self.canary_errors += errors_c
        self.stable_errors += errors_s
        if errors_c + errors_s == 0:
            return False
        self._log_e = None
        share, errors = canary_requests / stable_requests, float(errors_c + errors_s)
        key = ("rate-ratio penalty", self.null_ratio, share, errors)
        term = memo.get(key) if memo is not None else None
        if term is None:
            term = list(map(errors.__mul__, map(math.log1p, map(share.__mul__, self.grid))))
            if memo is not None:
                memo[key] = term
        self._penalty = list(map(add, self._penalty, term))  # type: ignore[call-overload]
        return True

    def mark(self) -> Mark:
        """Where the test stands now: `since` it, the test of the intervals that follow."""
        return Mark(tuple(self._penalty), self.canary_requests, self.canary_errors, self.stable_requests, self.stable_errors)

    def restore(self, mark: Mark) -> None:
        """The test as it stood at `mark` (a snapshot's): the intervals after it are added on as if it had seen those before."""
        if len(mark.penalty) != len(self.grid):
            raise ValueError("the mark is of another grid's test")
        self._penalty = list(mark.penalty)
        self.canary_requests, self.canary_errors = mark.canary_requests, mark.canary_errors
        self.stable_requests, self.stable_errors = mark.stable_requests, mark.stable_errors
        self._evidence = self._log_e = None

    def log_e_value(self, since: Mark | None = None) -> float:
        """log of the e-value against "no worse than 1 + tolerance" (cheaper than the whole evidence), of the
        intervals since `since` when it is given."""
        if since is None and self._log_e is not None:
            return self._log_e
        likelihood = self._log_likelihood(since, self._null_index)
        log_e = self._log_mixture(likelihood[1:], self._log_prior) - likelihood[0]
        if since is None:
            self._log_e = log_e
        return log_e

    def at_most_one(self, since: Mark | None = None) -> bool:
        """Whether the e-value against "no worse than 1 + tolerance" is surely at most 1, of the intervals since
        `since` when it is given, read from two grid points: the log-likelihood is concave in log ρ, so once it falls
        from the null to the next point up it falls on beyond, every likelihood ratio the mixture weighs is at most 1,
        and so is their weighted mean (the weights sum to 1). Most samples of a canary as good as stable: no
        mixture to compute."""
        null, above = self._null_index, self._null_index + 1
        errors, rise = float(self.canary_errors), self._penalty[above] - self._penalty[null]
        if since is not None:
            errors -= since.canary_errors
            rise -= since.penalty[above] - since.penalty[null]
        return errors * (self._log_grid[above] - self._log_grid[null]) <= rise

    def worse_log_e_value(self, since: Mark | None = None) -> float:
        """log of the e-value against "no worse than stable" (ρ at most the grid's first point at or above 1),
        of the intervals since `since` when it is given."""
        likelihood = self._log_likelihood(since, self._equal_index)
        return self._log_mixture(likelihood[self._null_index - self._equal_index + 1 :], self._log_prior) - likelihood[0]

    def evidence(self, alpha: float, since: Mark | None = None) -> RatioEvidence:
        """What the test concludes, of the intervals since `since` when it is given."""
        if since is None and self._evidence is not None and self._evidence[0] == alpha:
            return self._evidence[1]
        likelihood = self._log_likelihood(since)
        null = self._null_index
        top = max(likelihood)
        # One pass of exp serves both mixtures, unless the points above the null are so much less likely than
        # the best that theirs underflow: then they are summed on their own scale.
        scaled = list(map(math.exp, map(sub, likelihood, repeat(top))))
        above = sum(map(mul, scaled[null + 1 :], self._prior))
        if above > 1e-200:
            log_e = top + math.log(above) - likelihood[null]
        else:
            log_e = self._log_mixture(likelihood[null + 1 :], self._log_prior) - likelihood[null]
        canary_requests, canary_errors, stable_requests, stable_errors = self._counts(since)
        estimate = low = high = None
        if canary_errors + stable_errors > 0:
            best = likelihood.index(top)
            estimate = self.grid[best]
            # The mixture over the whole grid against each point: points it has not rejected form the interval.
            # They are contiguous about the most likely point (the log-likelihood is concave in log ρ: it rises
            # to it and falls after, so each edge is a bisection); the interval's true edges lie between them
            # and their rejected neighbours, so the neighbours bound it.
            cut = top + math.log(sum(scaled) / len(scaled)) - math.log(1 / alpha)
            first = bisect_right(likelihood, cut, 0, best)
            last = bisect_left(likelihood, -cut, best, len(likelihood), key=neg) - 1
            low = self.grid[first - 1] if first > 0 else None
            high = self.grid[last + 1] if last < len(self.grid) - 1 else None
        evidence = RatioEvidence(log_e, estimate, low, high, canary_requests, canary_errors, stable_requests, stable_errors)
        if since is None:
            self._evidence, self._log_e = (alpha, evidence), log_e
        return evidence

    def _counts(self, since: Mark | None) -> tuple[float, int, float, int]:
        if since is None:
            return self.canary_requests, self.canary_errors, self.stable_requests, self.stable_errors
        return (
            self.canary_requests - since.canary_requests,
            self.canary_errors - since.canary_errors,
            self.stable_requests - since.stable_requests,
            self.stable_errors - since.stable_errors,
        )

    def _log_mixture(self, above_null: list[float], log_prior: list[float]) -> float:
        """log of the prior's mixture of the likelihoods above a null."""
        weighted = list(map(add, above_null, log_prior))
        top = max(weighted)
        return top + math.log(sum(map(math.exp, map(sub, weighted, repeat(top)))))

    def _log_likelihood(self, since: Mark | None = None, first: int = 0) -> list[float]:
        """log-likelihood at each grid point from `first` up, of the intervals since `since`, up to a term the
        same at all of them."""
        if since is None:
            errors, penalty = float(self.canary_errors), self._penalty[first:]
        else:
            errors = float(self.canary_errors - since.canary_errors)
            penalty = list(map(sub, self._penalty[first:], since.penalty[first:]))
        return list(map(sub, map(errors.__mul__, self._log_grid[first:]), penalty))
