"""The rate-ratio test of one rollout, never restarted, with a test from each later stage's start beside
it: the evidence of 5% still counts at 50%, and a fault that begins at 50% is not drowned by the clean
evidence of 5% and 25%.

Each later stage's start begins an e-process of its own (console/judge/rate_ratio.py) on the samples
from there on: the whole rollout's test less its sums at that start (a Mark), so it costs no update of its
own. The rollout's e-value is the mixture of these and the whole rollout's test, with fixed weights: half
on the whole rollout's, the other half shared among the later stages' starts. A test not started yet
counts as 1, the value it starts at. Each test is a supermartingale under the null from its start (a stage
starts at a stopping time), so the mixture is one from the first sample, and by Ville's inequality it ever
reaches 1/α with probability at most α.

The estimate and the interval shown are the whole rollout's: the band narrows over the rollout. A
rollback's reason quotes the test that weighs most in the mixture: the stage's own, when the fault began
there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from console.judge.rate_ratio import Mark, RateRatioTest, RatioEvidence

WHOLE_ROLLOUT_WEIGHT = 0.5
"""The mixture's weight on the test of the whole rollout; the rest is shared among the later stages' starts."""


@dataclass(frozen=True)
class Leading:
    """The test that weighs most in the mixture, and the stage it started at (0: the whole rollout)."""

    since_stage: int
    evidence: RatioEvidence


class StagedRatioTest:
    def __init__(self, tolerance: float, stages: int = 1):
        """`stages`: how many of the rollout's stages compare the tracks (stable still serves)."""
        later = max(stages, 1) - 1
        self._log_weights = [math.log(weight) for weight in ([WHOLE_ROLLOUT_WEIGHT] + [(1 - WHOLE_ROLLOUT_WEIGHT) / later] * later if later else [1.0])]
        self.whole = RateRatioTest(tolerance)
        self._starts: dict[int, Mark] = {}
        """The whole test's sums at each later stage's start, by stage."""
        self._weighted: dict[int, float] | None = None
        """Each started test's log e-value plus its log weight, by stage (0: the whole rollout), until the likelihood
        moves or a later stage's test starts."""

    def update(
        self, stage: int, canary_requests: float, canary_errors: float, stable_requests: float, stable_errors: float, memo: dict[object, object] | None = None
    ) -> None:
        """One interval's counts, taken in `stage` (the stages come in order, as the rollout takes them); `memo` as
        RateRatioTest.update's."""
        if 0 < stage < len(self._log_weights) and stage not in self._starts:
            self._starts[stage] = self.whole.mark()
            self._weighted = None
        if self.whole.update(canary_requests, canary_errors, stable_requests, stable_errors, memo):
            self._weighted = None

    def to_plain(self) -> dict[str, Any]:
        """Where the test stands, as a snapshot keeps it (`restore` takes it up)."""
        return {"whole": self.whole.mark().to_plain(), "starts": [[stage, mark.to_plain()] for stage, mark in self._starts.items()]}

    def restore(self, plain: dict[str, Any]) -> None:
        """The test as `to_plain` kept it; ValueError, TypeError or KeyError when it is not one of this test's."""
        starts = {int(stage): Mark.from_plain(mark) for stage, mark in plain["starts"]}
        if not all(0 < stage < len(self._log_weights) for stage in starts):
            raise ValueError("a stage start of another plan's test")
        self.whole.restore(Mark.from_plain(plain["whole"]))
        self._starts, self._weighted = starts, None

    def log_e_value(self) -> float:
        """log of the mixture's e-value against "no worse than 1 + tolerance"."""
        return self._mixture(self._weighted_log_e())

    def at_most_one(self) -> bool:
        """Whether the mixture's e-value is surely at most 1: every started test's is (RateRatioTest.at_most_one), a
        test not started is at 1, and the weights sum to 1."""
        return self.whole.at_most_one() and all(self.whole.at_most_one(since=start) for start in self._starts.values())

    def worse_log_e_value(self) -> float:
        """log of the same mixture's e-value against "no worse than stable" (the promotion gate's test, read at a
        window's end, so not kept)."""
        weighted = {0: self._log_weights[0] + self.whole.worse_log_e_value()}
        for stage, start in self._starts.items():
            weighted[stage] = self._log_weights[stage] + self.whole.worse_log_e_value(since=start)
        return self._mixture(weighted)

    def _mixture(self, weighted: dict[int, float]) -> float:
        # A test not started yet is at 1: its term is its weight alone.
        logs = [weighted.get(stage, log_weight) for stage, log_weight in enumerate(self._log_weights)]
        top = max(logs)
        return top + math.log(sum(math.exp(log - top) for log in logs))

    def evidence(self, alpha: float) -> RatioEvidence:
        """The whole rollout's estimate, interval and counts, with the mixture's e-value."""
        return replace(self.whole.evidence(alpha), log_e_value=self.log_e_value())

    def leading(self, alpha: float) -> Leading:
        """The started test whose weighted e-value is the largest: what a rollback's reason quotes."""
        weighted = self._weighted_log_e()
        stage = max(weighted, key=weighted.__getitem__)
        evidence = self.whole.evidence(alpha, since=self._starts.get(stage))  # the whole rollout's (stage 0) has no start
        return Leading(stage, replace(evidence, log_e_value=self.log_e_value()))

    def _weighted_log_e(self) -> dict[int, float]:
        if self._weighted is None:
            self._weighted = {0: self._log_weights[0] + self.whole.log_e_value()}
            for stage, start in self._starts.items():
                self._weighted[stage] = self._log_weights[stage] + self.whole.log_e_value(since=start)
        return self._weighted
