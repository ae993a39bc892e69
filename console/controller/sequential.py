"""The sequential judge of one rollout: the canary's errors and slow requests against stable's, on the counts both served.

One e-process (console/judge/staged.py) per metric runs from the first sample to the last, through every
stage, with tests from each later stage's start beside it, so a bad canary can be caught at 5%, the
evidence of 5% still counts at 50%, and a fault that begins at 50% is not drowned by the clean samples
before it: errors always, and for
each latency quantile the plan judges, the requests slower than a bucket bound chosen once from stable's
first samples (console/judge/slow_requests.py). The rollout's alpha is shared among them (Bonferroni:
alpha / K each, K from the metrics the plan judges, so a resume of the plan splits it the same way),
so the chance that any of them rolls back a canary no worse than the tolerance is at most alpha.

It rolls back only on that test: a canary it has not called worse is not thereby healthy, and the stage's
criteria still decide promotion. Beside it, the promotion gate (`held`): at a window's end, a metric shown
worse than stable beyond doubt (its e-process for "no worse than stable at all" past 1/alpha_each, the
same share of alpha) whose estimate lies beyond the tolerance, while "no worse than the tolerance" is not
yet rejected, is ambiguous evidence: the stage is not promoted on it but paused for a person (headless, the
pause rolls back after pause_timeout). Without counts from the source it has no evidence and decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from console.derived import QUANTILES
from console.judge.rate_ratio import RatioEvidence
from console.judge.slow_requests import TailBound, slow_requests
from console.judge.staged import StagedRatioTest
from console.metric_catalogue import CATALOGUE
from console.samples import TrackCounts
from console.units import format_metric_value

ERRORS = "error_rate"
"""Judged in every rollout; the latency quantiles when the plan judges them."""


@dataclass(frozen=True)
class Regression:
    """The sequential judge is sure the new version is worse than stable (more errors, or more slow requests): why, for the rollback."""

    trigger: str
    """judge:<metric>, as the journal names the rollback's trigger."""
    reason: str


@dataclass(frozen=True)
class Hold:
    """The sequential judge cannot let the stage be promoted: the canary is worse than stable beyond doubt, and
    its estimate beyond the tolerance, though that it is beyond the tolerance is not yet shown. Why, for the pause."""

    trigger: str
    """judge:<metric>, as a rollback by the same metric is named."""
    reason: str


class _SlowRequests:
    """One latency quantile: its bound's calibration on stable's first samples, then the test of the requests slower than it."""

    def __init__(self, metric: str, tolerance: float, stages: int):
        self.tail = TailBound(QUANTILES[metric])
        self.test = StagedRatioTest(tolerance, stages)

    def add(self, stage: int, canary: TrackCounts, stable: TrackCounts) -> None:
        if not self.tail.settled:
            self.tail.observe(stable.latency_buckets)  # a sample that helps choose the bound is not tested at it
            return
        if self.tail.bound is None:
            return
        slow_c, slow_s = _slow(canary, self.tail.bound), _slow(stable, self.tail.bound)
        if slow_c is not None and slow_s is not None:
            self.test.update(stage, slow_c[0], slow_c[1], slow_s[0], slow_s[1], canary.derived)


def _slow(counts: TrackCounts, bound: float) -> tuple[float, float] | None:
    """slow_requests of a track's counts, kept with them (TrackCounts.derived)."""
    key = ("slow requests", bound)
    if key not in counts.derived:
        counts.derived[key] = slow_requests(counts.latency_buckets, bound)
    return counts.derived[key]  # type: ignore[return-value]


class SequentialJudge:
    def __init__(self, alpha: float, tolerance: float, floor: float, metrics: Iterable[str] = (), stages: int = 1):
        """`metrics`: the plan's metric names; each latency quantile among them gets its e-process. `stages`:
        how many of the plan's stages compare the tracks (each starts its tests again)."""
        self.alpha, self.tolerance, self.floor, self.stages = alpha, tolerance, floor, stages
        self._errors = StagedRatioTest(tolerance, stages)
        self._latency = {metric: _SlowRequests(metric, tolerance, stages) for metric in dict.fromkeys(metrics) if metric in QUANTILES}
        self.metrics = (ERRORS, *self._latency)
        """What it tests, in the order a regression is looked for."""
        self.alpha_each = alpha / len(self.metrics)

    def add(self, canary: TrackCounts | None, stable: TrackCounts | None, stage: int = 0) -> bool:
        """One sample's counts, taken in `stage`; False when they are not evidence (a track uncounted, without traffic, or with
        counts that are not numbers: the journal holds none of those either, so a resume replays the same)."""
        if canary is None or stable is None or not (canary.finite and stable.finite):
            return False
        if canary.requests <= 0 or stable.requests <= 0 or canary.errors < 0 or stable.errors < 0:
            return False
        self._errors.update(stage, canary.requests, canary.errors, stable.requests, stable.errors, canary.derived)
        for latency in self._latency.values():
            latency.add(stage, canary, stable)
        return True

    def replay(self, journaled_counts: Iterable[tuple[int, dict[str, dict[str, object]]]]) -> None:
        """The evidence of the samples a resumed rollout already journaled, in their order, each with its stage
        (the latency bounds are chosen again from the same first samples, so they come out the same)."""
        for stage, counts in journaled_counts:
            canary, stable = counts.get("canary"), counts.get("stable")
            if canary and stable:
                self.add(TrackCounts.from_dict(canary), TrackCounts.from_dict(stable), stage)

    def to_plain(self) -> dict[str, Any]:
        """Its evidence so far, as the controller's snapshot keeps it: a resumed controller takes it up (`restore`)
        and replays only the samples after the snapshot, not the whole rollout's."""
        latency = {metric: {"tail": slow.tail.to_plain(), "test": slow.test.to_plain()} for metric, slow in self._latency.items()}
        return {"judging": self._judging(), "errors": self._errors.to_plain(), "latency": latency}

    def restore(self, plain: Any) -> bool:
        """The evidence `to_plain` kept; False, and the judge left as it was, when it is not one, or another plan's
        judge's (its alpha, tolerance, metrics or stages edited since): the samples are then replayed."""
        if not isinstance(plain, dict) or plain.get("judging") != self._judging():
            return False
        try:
            errors = StagedRatioTest(self.tolerance, self.stages)
            errors.restore(plain["errors"])
            latency = {}
            for metric in self._latency:
                slow = latency[metric] = _SlowRequests(metric, self.tolerance, self.stages)
                slow.tail.restore(plain["latency"][metric]["tail"])
                slow.test.restore(plain["latency"][metric]["test"])
        except (KeyError, TypeError, ValueError):
            return False
        self._errors, self._latency = errors, latency
        return True

    def _judging(self) -> dict[str, Any]:
        """What its evidence is evidence of: a snapshot's is taken up only by a judge of the same."""
        return {"alpha": self.alpha, "tolerance": self.tolerance, "metrics": list(self.metrics), "stages": self.stages}

    def evidence(self, metric: str = ERRORS) -> RatioEvidence:
        return self._test(metric).evidence(self.alpha_each)

    def bound_s(self, metric: str) -> float | None:
        """The bound a latency quantile's slow requests are counted at; None while it is being chosen, or untestable."""
        return self._latency[metric].tail.bound

    def journaled(self) -> dict[str, dict[str, float | None]]:
        """The evidence as a sample event carries it: metric → ratio and interval, log e-value and the log
        threshold, the counts behind them (a latency's "errors" are its slow requests) and its bound_ms.
        A metric with no tested sample yet (a latency bound still being chosen) is left out."""
        judged: dict[str, dict[str, float | None]] = {}
        for metric in self.metrics:
            evidence = self.evidence(metric)
            if evidence.canary_requests <= 0:
                continue
            judged[metric] = {
                "ratio": _rounded(evidence.estimate),
                "low": _rounded(evidence.low),
                "high": _rounded(evidence.high),
                "log_e": round(evidence.log_e_value, 4),
                "log_threshold": round(math.log(1 / self.alpha_each), 4),
                "canary_requests": round(evidence.canary_requests, 3),
                "canary_errors": evidence.canary_errors,
                "stable_requests": round(evidence.stable_requests, 3),
                "stable_errors": evidence.stable_errors,
            }
            if metric in self._latency:
                judged[metric]["bound_ms"] = _milliseconds(self.bound_s(metric))
        return judged

    def regression(self) -> Regression | None:
        """The first metric shown worse than stable beyond the tolerance, beyond doubt, and why; None while none is."""
        threshold = math.log(1 / self.alpha_each)
        for metric in self.metrics:
            test = self._test(metric)
            # The usual case, without the interval's cost; at most 1 is under any threshold (alpha_each < 1).
            if test.at_most_one() or test.log_e_value() < threshold:
                continue
            leading = test.leading(self.alpha_each)
            evidence = leading.evidence
            latency = self._latency.get(metric)
            if not evidence.regressed(self.alpha_each, self.floor if latency is None else latency.tail.floor):
                continue
            if latency is None:
                return Regression(f"judge:{metric}", describe(evidence, leading.since_stage))
            assert latency.tail.bound is not None, "a latency is tested only once its bound is chosen"
            return Regression(f"judge:{metric}", describe_latency(metric, latency.tail.bound, evidence, leading.since_stage))
        return None

    def held(self) -> Hold | None:
        """The first metric whose evidence is too ambiguous to promote on (the module's docstring), and why; None
        when none is. Read at a window's end, after regression() found nothing."""
        threshold = math.log(1 / self.alpha_each)
        for metric in self.metrics:
            test = self._test(metric)
            evidence = test.evidence(self.alpha_each)
            if evidence.estimate is None or evidence.estimate <= 1 + self.tolerance:
                continue
            latency = self._latency.get(metric)
            if not evidence.above_floor(self.alpha_each, self.floor if latency is None else latency.tail.floor):
                continue
            if test.worse_log_e_value() < threshold:
                continue
            if latency is None:
                shown = describe(evidence)
            else:
                assert latency.tail.bound is not None, "a latency is tested only once its bound is chosen"
                shown = describe_latency(metric, latency.tail.bound, evidence)
            return Hold(
                f"judge:{metric}",
                f"{shown}: above stable's beyond doubt (its e-value for ×1 past {1 / self.alpha_each:g}), its estimate beyond the ×{1 + self.tolerance:g} tolerance, which is not yet shown: not promoted on ambiguous evidence",
            )
        return None

    def _test(self, metric: str) -> StagedRatioTest:
        return self._errors if metric == ERRORS else self._latency[metric].test


def describe(evidence: RatioEvidence, since_stage: int = 0) -> str:
    """ "errors 0.28% vs 0.08%: ×3.5 [×2.1–×5.8] after 14,200 canary requests"; with `since_stage`, the
    evidence from that stage's start on (0-based): "errors 0.9% vs 0.3% since stage 3: …" """
    return f"errors {_shares(evidence)}{_since(since_stage)}: {_ratio(evidence)}"


def describe_latency(metric: str, bound_s: float, evidence: RatioEvidence, since_stage: int = 0) -> str:
    """ "p99: 3.1% vs 1.0% of requests slower than 250ms: ×3.1 [×1.9–×5.2] after 9,800 canary requests" """
    return f"{CATALOGUE[metric].label}: {_shares(evidence)} of requests slower than {bound_s * 1000:g}ms{_since(since_stage)}: {_ratio(evidence)}"


def _since(stage: int) -> str:
    return f" since stage {stage + 1}" if stage else ""


def _shares(evidence: RatioEvidence) -> str:
    """The canary's and stable's share of requests that erred (or were slow), as error rates are shown."""
    canary = format_metric_value(ERRORS, evidence.canary_errors / evidence.canary_requests)
    stable = format_metric_value(ERRORS, evidence.stable_errors / evidence.stable_requests)
    return f"{canary} vs {stable}"


def _ratio(evidence: RatioEvidence) -> str:
    low = f"×{evidence.low:.2g}" if evidence.low is not None else "…"
    high = f"×{evidence.high:.2g}" if evidence.high is not None else "…"
    return f"×{evidence.estimate:.2g} [{low}–{high}] after {evidence.canary_requests:,.0f} canary requests"


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 6)


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")
