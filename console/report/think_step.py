"""The runbook's think step: `brahma assess` as it stood for this release, from its journal's start, its
pre-flight results, and the releases of the same app whose journals in the same state dir began before it."""

from __future__ import annotations

from console.history.assess import Change, PreflightOutcome, TargetEvidence, assess
from console.history.records import read_history
from console.report.facts import ReportData
from console.report.markdown import bullet


def think_step(data: ReportData) -> list[str]:
    started = data.started
    if started is None:
        return []
    history = read_history([data.journal.parent], started.app)
    earlier = [release for release in history.releases if release.started_ts < started.ts and release.journal != data.journal]
    if data.prepared is not None:
        target = TargetEvidence(data.old_image, "the target, read before the first change")
    else:
        completed = [release for release in earlier if release.outcome == "completed"]
        target = TargetEvidence(completed[-1].image, f"the last completed release, {completed[-1].rollout}") if completed else TargetEvidence()
    preflight = {name: PreflightOutcome(result.status, result.output, result.by) for name, result in data.preflight.items()}
    change = Change.of_journal(started, {name: result.kind for name, result in data.preflight.items()})
    lines = ["## Think step", ""]
    for line in assess(change, earlier, target, preflight).lines():
        lines += bullet(line[4:], "  -") if line.startswith("  - ") else bullet(line)
    return lines + [""]
