"""The think step of one plan: `brahma assess`'s, and the console's pre-flight pane's, from the state dirs'
past releases, the gate's journaled results and, on a cluster, its Deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from console.history.assess import Assessment, PreflightOutcome, TargetEvidence, assess
from console.history.records import PastRelease, StateDirMissing, read_history
from console.journal.journal import JournalError
from console.journal.state import read_state
from console.journal.state_dir import RolloutFiles
from console.plan.model import RolloutPlan


def running_version(releases: Sequence[PastRelease]) -> TargetEvidence:
    """Off a cluster, the version running is the last completed release's (one rolled back left its predecessor)."""
    completed = [release for release in releases if release.outcome == "completed"]
    if not completed:
        return TargetEvidence()
    return TargetEvidence(completed[-1].image, f"the last completed release, {completed[-1].rollout} at {completed[-1].started_ts[:16].replace('T', ' ')}")


def gate_results(plan: RolloutPlan, state_dirs: Sequence[Path]) -> dict[str, PreflightOutcome]:
    """The pre-flight results journaled for this release (its live journal, in the first state dir that has one)."""
    for state_dir in state_dirs:
        journal = RolloutFiles(state_dir, plan.name).journal
        if journal.exists():
            state = read_state(journal)
            return {name: PreflightOutcome(item.status, item.output, item.by) for name, item in state.preflight.items()}
    return {}


def assessment_of(plan: RolloutPlan, state_dirs: Sequence[Path], context: str | None = None, running: Path | None = None) -> Assessment:
    """The think step for `plan` from the state dirs' history and, on a cluster, its Deployment; `running`:
    the journal of the release being assessed, no past release of its own (the console's).

    JournalError, StateDirMissing; a cluster that cannot be read is said in the rollback estimate."""
    releases = [release for release in read_history([d for d in state_dirs if d.is_dir()], plan.app).releases if release.journal != running]
    target = running_version(releases)
    if plan.target.kind == "kubernetes":
        from console.history.cluster import deployment_evidence
        from console.targets.base import TargetError

        try:
            on_cluster = asyncio.run(deployment_evidence(plan, context))
        except TargetError as error:
            on_cluster = TargetEvidence(rollout_note=f"the cluster could not be read ({error}): no rollout time measured on it")
        target = on_cluster if on_cluster.running_image else TargetEvidence(target.running_image, target.running_from, rollout_note=on_cluster.rollout_note)
    return assess(plan, releases, target, gate_results(plan, state_dirs))


def console_assessment(plan: RolloutPlan, state_dir: Path | None) -> tuple[str, list[str]]:
    """(risk, the assessment's lines) for the console's pre-flight pane; ("", why not) when it cannot be made."""
    if state_dir is None:
        return "", ["No assessment: the rollout's journals, and its app's past ones, are in its pod"]
    try:
        assessment = assessment_of(plan, [state_dir], running=RolloutFiles(state_dir, plan.name).journal)
    except (JournalError, StateDirMissing, OSError) as error:
        return "", [f"No assessment: {error}"]
    return assessment.risk, assessment.lines()
