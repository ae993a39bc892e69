"""Is the canary's error rate worse than stable's beyond a tolerance? An e-process on the counts.

Errors on each track are Poisson with rate λ × requests. Given an interval's k = e_c + e_s errors, each
one is the canary's with probability π(ρ) = ρ n_c / (ρ n_c + n_s), ρ = λ_c / λ_s. The log-likelihood of
ρ is kept on a log-spaced grid and summed over intervals; the request counts of each interval weigh it,
so evidence from 5%, 25% and 50% of traffic adds up on the same ρ.

- Test of "ρ ≤ 1 + τ" against "ρ > 1 + τ": the mixture, uniform over the grid points above ρ0 = 1 + τ,
  of their likelihood ratios to ρ0. It is a martingale at ρ0 and a supermartingale below (each error's
  ratio has mean 1 − (π0 − π)(…) ≤ 1 when π ≤ π0), so by Ville's inequality it ever reaches 1/α with
  probability at most α, however often it is looked at (Lindon, Sanden and Shirikian, KDD 2022).
- Interval for ρ: every grid point whose own mixture e-value (uniform over the whole grid) stays
  under 1/α; it holds the true ρ at all times with probability at least 1 − α (a confidence sequence).

Prometheus' increase() gives fractional counts; errors are rounded to whole ones (the likelihood is
of whole events), requests stay as given (they only weigh π).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from console.judge.rate_bound import rate_bounds

GRID_TOP = 20.0
"""The largest rate ratio the mixture weighs; a canary worse than that is caught by the one at 20."""
GRID_POINTS_ABOVE = 50
GRID_BOTTOM = 1 / 20


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
        if not self.rejects(alpha):
            return False
        bounds = rate_bounds(self.canary_errors, self.canary_requests, alpha)
        return bounds is not None and bounds[0] > floor


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
        self._log_likelihood = [0.0] * len(self.grid)
        self.canary_requests = self.stable_requests = 0.0
        self.canary_errors = self.stable_errors = 0

    def update(self, canary_requests: float, canary_errors: float, stable_requests: float, stable_errors: float) -> None:
        """One interval's counts; an interval with no requests on a track, or no errors, says nothing of ρ."""
        errors_c, errors_s = round(canary_errors), round(stable_errors)
        if canary_requests <= 0 or stable_requests <= 0:
            return
        self.canary_requests += canary_requests
        self.stable_requests += stable_requests
        self.canary_errors += errors_c
        self.stable_errors += errors_s
        if errors_c + errors_s == 0:
            return
        # log π(ρ) = log ρ + log r − log(1 + ρ r) and log(1 − π(ρ)) = −log(1 + ρ r), with r = n_c / n_s.
        share = canary_requests / stable_requests
        log_share, errors = math.log(share), errors_c + errors_s
        likelihood = self._log_likelihood
        for j, rho in enumerate(self.grid):
            likelihood[j] += errors_c * (self._log_grid[j] + log_share) - errors * math.log1p(rho * share)

    def evidence(self, alpha: float) -> RatioEvidence:
        likelihood = self._log_likelihood
        null = likelihood[self._null_index]
        above = likelihood[self._null_index + 1 :]
        log_e = _log_mean_exp(above) - null
        seen = self.canary_errors + self.stable_errors > 0
        estimate = low = high = None
        if seen:
            best = max(range(len(likelihood)), key=likelihood.__getitem__)
            estimate = self.grid[best]
            # The mixture over the whole grid against each point: points it has not rejected form the interval.
            mixture = _log_mean_exp(likelihood)
            kept = [j for j, value in enumerate(likelihood) if mixture - value < math.log(1 / alpha)]
            # The kept points are contiguous (the log-likelihood is concave in log ρ); the interval's true edges lie
            # between them and their rejected neighbours, so the neighbours bound it.
            low = self.grid[kept[0] - 1] if kept[0] > 0 else None
            high = self.grid[kept[-1] + 1] if kept[-1] < len(self.grid) - 1 else None
        return RatioEvidence(log_e, estimate, low, high, self.canary_requests, self.canary_errors, self.stable_requests, self.stable_errors)


def _log_mean_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))
