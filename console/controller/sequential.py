"""The sequential judge of one rollout: the canary's errors against stable's, on the counts both served.

One e-process (console/judge) runs from the first sample to the last, through every stage, so a bad
canary can be caught at 5% and the evidence of 5% still counts at 50%. It only ever rolls back: a
canary it has not called worse is not thereby healthy, and the stage's criteria still decide
promotion. Without counts from the source it has no evidence and decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from console.judge.rate_ratio import RateRatioTest, RatioEvidence
from console.samples import TrackCounts
from console.units import format_metric_value

JUDGED = "error_rate"
"""The rate the judge tests (latency's slow-request counts are the same test, not judged yet)."""
TRIGGER = f"judge:{JUDGED}"
"""The rollback's trigger, as the journal names it."""


class SequentialJudge:
    def __init__(self, alpha: float, tolerance: float, floor: float):
        self.alpha, self.tolerance, self.floor = alpha, tolerance, floor
        self._test = RateRatioTest(tolerance)
        self._alpha_each = alpha  # one e-process; with several, Bonferroni: alpha / their number

    def add(self, canary: TrackCounts | None, stable: TrackCounts | None) -> bool:
        """One sample's counts; False when they are not evidence (a track uncounted, without traffic, or with
        counts that are not numbers: the journal holds none of those either, so a resume replays the same)."""
        if canary is None or stable is None or not (canary.finite and stable.finite):
            return False
        if canary.requests <= 0 or stable.requests <= 0 or canary.errors < 0 or stable.errors < 0:
            return False
        self._test.update(canary.requests, canary.errors, stable.requests, stable.errors)
        return True

    def replay(self, journaled_counts: Iterable[dict[str, dict[str, object]]]) -> None:
        """The evidence of the samples a resumed rollout already journaled, in their order."""
        for counts in journaled_counts:
            canary, stable = counts.get("canary"), counts.get("stable")
            if canary and stable:
                self.add(TrackCounts.from_dict(canary), TrackCounts.from_dict(stable))

    def evidence(self) -> RatioEvidence:
        return self._test.evidence(self._alpha_each)

    def journaled(self) -> dict[str, dict[str, float | None]]:
        """The evidence as a sample event carries it: metric → ratio and interval, log e-value and the log threshold."""
        evidence = self.evidence()
        if evidence.canary_requests <= 0:
            return {}
        return {
            JUDGED: {
                "ratio": _rounded(evidence.estimate),
                "low": _rounded(evidence.low),
                "high": _rounded(evidence.high),
                "log_e": round(evidence.log_e_value, 4),
                "log_threshold": round(math.log(1 / self._alpha_each), 4),
                "canary_requests": round(evidence.canary_requests, 3),
                "canary_errors": evidence.canary_errors,
                "stable_requests": round(evidence.stable_requests, 3),
                "stable_errors": evidence.stable_errors,
            }
        }

    def regression(self) -> str | None:
        """Why the canary is worse than stable beyond the tolerance, beyond doubt; None while it is not shown."""
        evidence = self.evidence()
        if not evidence.regressed(self._alpha_each, self.floor):
            return None
        return describe(evidence)


def describe(evidence: RatioEvidence) -> str:
    """ "errors 0.28% vs 0.08%: ×3.5 [×2.1–×5.8] after 14,200 canary requests" """
    canary = format_metric_value(JUDGED, evidence.canary_errors / evidence.canary_requests)
    stable = format_metric_value(JUDGED, evidence.stable_errors / evidence.stable_requests)
    low = f"×{evidence.low:.2g}" if evidence.low is not None else "…"
    high = f"×{evidence.high:.2g}" if evidence.high is not None else "…"
    return f"errors {canary} vs {stable}: ×{evidence.estimate:.2g} [{low}–{high}] after {evidence.canary_requests:,.0f} canary requests"


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")
