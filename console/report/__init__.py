"""The runbook: a Markdown report built from the journal alone, never from memory.

It is what a person reads first after an incident, so it opens with three lines (what was
released, what happened and why, the state now), then what a rollback was about, then the
reference runbook's sections. It reads as plain text in a terminal and renders on GitHub.
"""

from __future__ import annotations

from pathlib import Path

from console.atomic import atomic_write
from console.journal.state_dir import RolloutFiles
from console.report.facts import ReportData, collect
from console.report.opening import rollback_section, summary
from console.report.rollback_plan import rollback_plan
from console.report.sections import (
    changes,
    feature_flags,
    issues,
    metrics_summary,
    notifications,
    post_deployment,
    timeline,
    validation,
)
from console.report.think_step import think_step

SECTIONS = (
    summary,
    rollback_section,
    think_step,
    changes,
    validation,
    timeline,
    metrics_summary,
    feature_flags,
    notifications,
    issues,
    rollback_plan,
    post_deployment,
)
"""In the order a person reads them: what happened first, what to do last."""


def render(data: ReportData) -> str:
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(data)
    return "\n".join(lines).rstrip() + "\n"


def write_report(journal: str | Path, output: str | Path | None = None) -> Path:
    journal = Path(journal)
    target = Path(output) if output else RolloutFiles.of_journal(journal).report
    atomic_write(target, render(collect(journal)).encode())
    return target
