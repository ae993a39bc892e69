"""The sequential judge's promotion gate: a stage is never promoted on ambiguous evidence. A canary shown
worse than stable beyond doubt, its estimate beyond the tolerance but the tolerance's test not yet
rejected, is held at the window's end: the stage pauses for a person with the evidence in the reason
(headless: rolled back after pause_timeout), and the gate itself never rolls back. A healthy canary is
rarely held. Each figure is over many seeded rollouts, each bound three binomial standard errors of the
rollouts counted; the counts are drawn from the Poisson model as in tests/test_judge_statistics.py."""

from __future__ import annotations

import random

import pytest

from console.controller.sequential import SequentialJudge
from console.journal import events as ev
from console.journal.state import Phase
from console.plan import load_plan
from console.report import write_report
from testbed import SAMPLES
from tests.test_judge_statistics import INTERVAL_S, STAGES, three_sigma, track_counts
from tests.test_limits_on_counts import counted_controller, journaled


def gated_rollout(seed: int, ratio: float, service_rps: float, alpha: float = 0.05, base_rate: float = 0.002) -> tuple[str, SequentialJudge]:
    """One rollout of the reference stages through the judge of errors alone, as the controller drives it: a
    regression looked for at every sample, the gate at each window's end. "rolled back", "held" or "promoted"."""
    rng = random.Random(seed)
    judge = SequentialJudge(alpha, tolerance=0.2, floor=0.0, stages=len(STAGES))
    for stage, (weight, samples) in enumerate(STAGES):
        canary = service_rps * weight / 100 * INTERVAL_S
        stable = service_rps * INTERVAL_S - canary
        for _ in range(samples):
            judge.add(track_counts(rng, canary, base_rate * ratio), track_counts(rng, stable, base_rate), stage)
            if judge.regression() is not None:
                return "rolled back", judge
        if judge.held() is not None:
            return "held", judge
    return "promoted", judge


@pytest.mark.parametrize("service_rps", [400, 2000])
def test_a_canary_identical_to_stable_is_rarely_held(service_rps):
    """The gate's e-process for ×1 crosses 1/alpha with probability at most alpha (Ville), and its estimate must
    lie beyond the tolerance too: at alpha 0.05, held in at most 5% of 300 rollouts, three standard errors allowed."""
    alpha, runs = 0.05, 300
    held = sum(gated_rollout(seed, 1.0, service_rps, alpha)[0] == "held" for seed in range(runs))
    assert held / runs <= alpha + three_sigma(alpha, runs), f"{held} of {runs} identical canaries held"


def test_a_canary_well_within_the_tolerance_is_rarely_held():
    """×1.1 against a ×1.2 tolerance, at 2,000 rps: its estimate seldom ends beyond ×1.2 (5 of 300 held when written)."""
    runs = 300
    held = sum(gated_rollout(seed, 1.1, 2000)[0] == "held" for seed in range(runs))
    assert held / runs <= 0.05, f"{held} of {runs} ×1.1 canaries held"


def test_a_low_traffic_canary_with_half_again_the_errors_is_held_or_rolled_back_never_promoted():
    """×1.5 at 5% of 400 rps (0.2% errors: a few canary errors a minute): the tolerance's test alone lets most of
    them through to 100%; the gate holds every one it has not rolled back."""
    runs = 100
    outcomes = [gated_rollout(seed, 1.5, 400, alpha=0.01) for seed in range(runs)]
    assert not [o for o, _ in outcomes if o == "promoted"], "a ×1.5 canary promoted on ambiguous evidence"
    held = [judge for outcome, judge in outcomes if outcome == "held"]
    assert len(held) >= runs / 4, "most of them are not shown beyond the tolerance: the gate holds them"
    for judge in held:
        evidence = judge.evidence()
        assert evidence.estimate > 1.2 and judge.regression() is None
        assert judge.held().trigger == "judge:error_rate"


def test_the_gate_holds_only_what_the_tolerances_test_has_not_rejected_and_says_why():
    """A held rollout's reason quotes the rates, the ratio with its interval and the requests, and why it holds."""
    held = next(judge for outcome, judge in (gated_rollout(seed, 1.5, 400, alpha=0.01) for seed in range(20)) if outcome == "held")
    reason = held.held().reason
    assert reason.startswith("errors ") and " vs " in reason and "canary requests" in reason, reason
    assert "above stable's beyond doubt" in reason and "beyond the ×1.2 tolerance, which is not yet shown" in reason, reason
    assert reason.endswith("not promoted on ambiguous evidence"), reason
    assert held.evidence().log_e_value < held.journaled()["error_rate"]["log_threshold"], "the tolerance's test did not reject"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_canary_with_half_again_stables_errors_is_paused_at_a_windows_end_not_promoted_and_headless_rolls_back(tmp_path, seed):
    """0.03% against 0.02% errors at 5% of 2,000 rps, under every limit: a window's end finds it above stable
    beyond doubt, ×1.5 or so, the tolerance not shown. The stage pauses with the evidence in the reason;
    headless, the pause (or the tolerance's test, once it rejects) rolls back; it never reaches 100%."""
    plan = load_plan(SAMPLES / "canary.yaml")
    controller = counted_controller(plan, tmp_path, canary=0.0003, stable=0.0002, seed=seed)
    assert await controller.run() == Phase.ROLLED_BACK
    pause = journaled(controller, ev.Paused)[0]
    assert pause.trigger == "judge:error_rate"
    assert pause.reason.startswith("errors ") and pause.reason.endswith("not promoted on ambiguous evidence"), pause.reason
    window_ends = {sum(stage.observe for stage in plan.stages[: i + 1]) for i in range(len(plan.stages))}
    assert pause.t in window_ends, "the gate acts at a window's end only"
    passed = [e.stage for e in journaled(controller, ev.StagePassed)]
    assert all(e.t < pause.t for e in journaled(controller, ev.StagePassed)) and len(passed) < 3, passed
    rollback = journaled(controller, ev.RollbackStarted)[0]
    assert rollback.trigger == "judge:error_rate" and rollback.t > pause.t
    assert not any(e.weight >= 100 for e in journaled(controller, ev.StageStarted)), "never promoted to 100%"
    runbook = write_report(controller.journal.path, tmp_path / "runbook.md").read_text()
    issues = " ".join(runbook.split("## Issues Encountered", 1)[1].split())  # its lines wrapped
    assert f"Paused by the sequential judge (error rate vs stable): {pause.reason}" in issues, "the runbook quotes the held window's evidence"
