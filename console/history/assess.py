"""The reference think step, answered before anything changes: what changes and how risky it is, which
strategy it suggests against the plan's, whether the rollback stays under 5 minutes, what went wrong in
this app's last releases, which metrics will validate it, and whether staging is validated.

From the plan, the target (what runs now, and on a cluster how long its Deployment takes to roll out)
and the app's past releases. Missing evidence is said plainly and raises the risk; it is never taken as good.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from console.history.records import ROLLBACK_LIMIT_S, PastRelease, RollbackTimes, format_rollback_time
from console.journal import events as ev
from console.plan.checks import Check
from console.plan.model import RolloutPlan
from console.units import format_duration

LAST_RELEASES = 5
"""How many of the app's last releases the assessment tells of."""
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
_SCHEMA_WORDS = re.compile(r"\b(migrat\w*|schema)\b", re.IGNORECASE)
_STAGING_WORDS = re.compile(r"\bstaging\b", re.IGNORECASE)
RISK_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class PreflightOutcome:
    """A pre-flight item's last journaled result: pass, fail, error, waiting (a sign-off), running, cancelled."""

    status: str
    output: str = ""
    by: str = ""


@dataclass(frozen=True)
class TargetEvidence:
    """What the target says before the release: the version running, and how long its rollouts took."""

    running_image: str | None = None
    running_from: str = ""
    """Where the running image was read: "the cluster's Deployment", "the last completed release"."""
    rollout_times_s: tuple[float, ...] = ()
    """The Deployment's recent rollouts, measured through the API (empty: none measurable, or no cluster)."""
    rollout_note: str = ""
    """Why no rollout time was measured, or what the times measure."""


@dataclass(frozen=True)
class Change:
    """What a release is, as assess reads it: from a plan (before it runs) or a journal's start (the runbook)."""

    app: str
    release: str
    image: str
    strategy: str
    preflight: tuple[tuple[str, str], ...] = ()
    """(name, kind) of every pre-flight item."""
    rollback_plan: str = ""
    flags: tuple[tuple[str, bool, bool], ...] = ()
    """(name, new, enabled over a schedule) of every flag."""
    validating: tuple[str, ...] = ()
    """The last stage's criteria ("error_rate < 0.1%"), then the other metrics any stage or trigger judges."""

    @classmethod
    def of_plan(cls, plan: RolloutPlan) -> Change:
        last = plan.stages[-1].criteria if plan.stages else ()
        judged = {check.metric for check in last}
        validating = [f"{check.metric} {check.describe()}" for check in last] + [metric for metric in plan.metric_names if metric not in judged]
        return cls(
            plan.app,
            plan.name,
            plan.image,
            plan.strategy,
            tuple((item.name, item.kind) for item in plan.preflight),
            plan.rollback_plan or "",
            tuple((flag.name, flag.new, bool(flag.schedule)) for flag in plan.flags),
            tuple(validating),
        )

    @classmethod
    def of_journal(cls, started: ev.RolloutStarted, preflight: Mapping[str, str]) -> Change:
        """From rollout_started and the pre-flight items' kinds as journaled (item → kind)."""
        last = started.stages[-1].get("criteria") or [] if started.stages else []
        checks = [Check(**{k: entry[k] for k in ("metric", "op", "value", "relative", "percent") if k in entry}) for entry in last if "metric" in entry]
        judged = {check.metric for check in checks}
        others = [entry.get("metric", "") for stage in started.stages for entry in stage.get("criteria") or []] + [
            t.get("metric", "") for t in started.triggers
        ]
        validating = [f"{check.metric} {check.describe()}" for check in checks] + list(dict.fromkeys(m for m in others if m and m not in judged))
        flags = tuple((str(f.get("name")), bool(f.get("new")), False) for f in started.flags)
        return cls(started.app, started.rollout, started.image, started.strategy, tuple(preflight.items()), started.rollback_plan, flags, tuple(validating))


@dataclass
class Assessment:
    """The think step's answers, each with what it rests on."""

    app: str
    release: str
    changes: list[str] = field(default_factory=list)
    suggested: str = "canary"
    suggested_why: str = ""
    planned: str = "canary"
    risk: str = "low"
    risk_why: list[str] = field(default_factory=list)
    rollback: str = ""
    rollback_within_limit: bool | None = None
    """True when every measure is under 5 minutes, False when one is over, None when nothing was measured."""
    went_wrong: list[str] = field(default_factory=list)
    validating_metrics: list[str] = field(default_factory=list)
    staging: list[str] = field(default_factory=list)
    staging_validated: bool | None = None

    def _raise(self, level: str, why: str) -> None:
        if RISK_LEVELS.index(level) > RISK_LEVELS.index(self.risk):
            self.risk = level
        self.risk_why.append(f"{why} ({level})")

    def lines(self) -> list[str]:
        """The assessment as a person reads it, one answer a line or a few."""
        agrees = "as the plan says" if self.suggested == self.planned else f"the plan says {self.planned}"
        lines = [
            f"Risk: {self.risk.upper()}" + (f": {'; '.join(self.risk_why)}" if self.risk_why else ""),
            "What changes: " + ("; ".join(self.changes) or "nothing found"),
            f"Strategy: {self.suggested} suggested ({self.suggested_why}); {agrees}",
            f"Rollback: {self.rollback}",
            "Went wrong in the last releases:" + ("" if self.went_wrong else " nothing"),
            *[f"  - {said}" for said in self.went_wrong],
        ]
        lines.append("Validated by: " + (", ".join(self.validating_metrics) or "no metric: nothing validates this release"))
        lines.append("Staging: " + "; ".join(self.staging))
        return lines

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def _version(image: str) -> tuple[int, int, int] | None:
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    match = _VERSION.match(tag)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)) if match else None


def _code_change(plan: Change, target: TargetEvidence) -> tuple[str, str | None]:
    """What the image change is (a sentence) and its size: major, minor, patch, none, or None when unknown."""
    running = target.running_image
    if running is None:
        return f"code: {plan.image}, against a running version nobody measured (no cluster read, no completed release)", None
    if running == plan.image:
        return f"code: none ({plan.image} already runs, per {target.running_from})", "none"
    old, new = _version(running), _version(plan.image)
    if old is None or new is None:
        return f"code: {running} → {plan.image} (per {target.running_from}; tags that are not versions: size unknown)", None
    size = "major" if new[0] != old[0] else "minor" if new[1] != old[1] else "patch"
    return f"code: {running} → {plan.image}, a {size} version (per {target.running_from})", size


def _schema_evidence(plan: Change) -> str | None:
    items = [name for name, _ in plan.preflight if _SCHEMA_WORDS.search(name)]
    if items:
        return f'schema: a migration (pre-flight item "{items[0]}")'
    if plan.rollback_plan and (match := _SCHEMA_WORDS.search(plan.rollback_plan)):
        return f'schema: possibly (the rollback plan speaks of a "{match.group(0)}", and no pre-flight item tests one)'
    return None


def _infra_evidence(plan: Change, results: Mapping[str, PreflightOutcome]) -> tuple[str | None, bool | None]:
    """What the Terraform check's last result says (a sentence, and whether infra changes are pending)."""
    items = [name for name, kind in plan.preflight if kind == "terraform"]
    if not items:
        return None, None
    result = results.get(items[0])
    if result is None or result.status in ("running", "waiting", "cancelled"):
        return f'infra: unknown until the Terraform check "{items[0]}" has run', None
    pending = [line.strip() for line in result.output.splitlines() if line.strip().startswith("#") or "CHANGES PENDING" in line or "MISMATCH" in line]
    if result.status == "pass" and not pending:
        return f'infra: no pending change (the Terraform check "{items[0]}" passed)', False
    return f"infra: {'; '.join(pending[:4]) or result.output.strip().splitlines()[-1:] or result.status}", True


def _flag_change(plan: Change) -> str | None:
    if not plan.flags:
        return None
    new = [name for name, is_new, _ in plan.flags if is_new]
    scheduled = [name for name, _, on_schedule in plan.flags if on_schedule]
    parts = [f"{len(plan.flags)} flag{'s' if len(plan.flags) != 1 else ''}"]
    parts += [f"new: {', '.join(new)}"] if new else []
    parts += [f"enabled over a schedule: {', '.join(scheduled)}"] if scheduled else []
    return "config: " + ", ".join(parts)


def _suggest(size: str | None, schema: bool, config_only: bool) -> tuple[str, str]:
    if schema:
        return "blue-green", "a schema change: the old version must keep serving until the new one is proven"
    if size == "major":
        return "blue-green", "a major version"
    if size == "patch":
        return "rolling", "a patch"
    if config_only:
        return "rolling", "a config change alone"
    if size is None:
        return "canary", "the default: the size of the change is unknown"
    return "canary", "the default, for a minor version"


def _rollback_estimate(assessment: Assessment, releases: Sequence[PastRelease], target: TargetEvidence) -> None:
    times = RollbackTimes.of(releases)
    said = [f"this app's rollbacks: {times.describe()}"]
    measures = list(times.measured)
    if target.rollout_times_s:
        worst = max(target.rollout_times_s)
        said.append(f"the Deployment's recent rollouts: worst {format_rollback_time(worst)} of {len(target.rollout_times_s)}")
        measures.append(worst)
    elif target.rollout_note:
        said.append(target.rollout_note)
    if not measures:
        assessment.rollback = "; ".join(said) + ": estimate unknown"
        assessment._raise("medium", "rollback time unknown")
        return
    worst = max(measures)
    assessment.rollback_within_limit = worst < ROLLBACK_LIMIT_S and not times.not_verified
    verdict = "under" if worst < ROLLBACK_LIMIT_S else "OVER"
    assessment.rollback = "; ".join(said) + f": estimate {format_rollback_time(worst)}, {verdict} the {format_duration(ROLLBACK_LIMIT_S)} limit"
    if worst >= ROLLBACK_LIMIT_S:
        assessment._raise("high", f"a rollback took {format_rollback_time(worst)}")
    if times.not_verified:
        assessment._raise("high", f"{times.not_verified} past rollback{'s' if times.not_verified != 1 else ''} never verified")


def _staging(assessment: Assessment, plan: Change, results: Mapping[str, PreflightOutcome]) -> None:
    items = [(name, kind) for name, kind in plan.preflight if _STAGING_WORDS.search(name)]
    if not items:
        assessment.staging = ["no pre-flight item validates staging: not validated"]
        assessment.staging_validated = False
        return
    validated = True
    for name, kind in items:
        result = results.get(name)
        if result is None:
            said, validated = "not run yet", False
        elif result.status == "pass":
            said = "passed" + (f" (signed off by {result.by})" if result.by and kind == "manual" else "")
        else:
            said, validated = {"waiting": "waiting for a sign-off"}.get(result.status, result.status), False
        assessment.staging.append(f'"{name}" ({kind}): {said}')
    assessment.staging_validated = validated


def assess(
    plan: RolloutPlan | Change,
    releases: Sequence[PastRelease],
    target: TargetEvidence = TargetEvidence(),
    preflight: Mapping[str, PreflightOutcome] | None = None,
) -> Assessment:
    """The think step for `plan`; `releases` are the app's past ones, oldest first; `preflight` the gate's
    journaled results so far (none before the gate has run)."""
    results = preflight or {}
    if isinstance(plan, RolloutPlan):
        plan = Change.of_plan(plan)
    assessment = Assessment(plan.app, plan.release, planned=plan.strategy)
    code, size = _code_change(plan, target)
    schema = _schema_evidence(plan)
    infra, infra_pending = _infra_evidence(plan, results)
    config = _flag_change(plan)
    assessment.changes = [said for said in (code, config, infra, schema) if said]
    assessment.suggested, assessment.suggested_why = _suggest(size, schema is not None, size == "none" and config is not None)
    if size is None:
        assessment._raise("medium", "the code change's size is unknown")
    elif size == "minor":
        assessment._raise("medium", "a minor version")
    elif size == "major":
        assessment._raise("high", "a major version")
    if schema:
        assessment._raise("high", "a schema change")
    if infra_pending:
        assessment._raise("high", "infrastructure changes pending")
    elif infra and infra_pending is None:
        assessment._raise("medium", "infrastructure changes unknown")
    if assessment.suggested != plan.strategy:
        assessment._raise("medium", f"{plan.strategy} where {assessment.suggested} is suggested")
    _rollback_estimate(assessment, releases, target)
    last = list(releases)[-LAST_RELEASES:]
    if not releases:
        assessment.went_wrong = ["no past release of this app: nothing to learn from"]
        assessment._raise("medium", "no past release")
    for release in last:
        assessment.went_wrong += [f"{release.started_ts[:16].replace('T', ' ')} {release.rollout}: {said}" for said in release.went_wrong]
    failed = sum(1 for release in last if release.outcome != "completed")
    if failed:
        assessment._raise("high" if failed * 2 > len(last) else "medium", f"{failed} of the last {len(last)} releases did not complete")
    assessment.validating_metrics = list(plan.validating)
    _staging(assessment, plan, results)
    if not assessment.staging_validated:
        assessment._raise("medium", "staging not validated")
    return assessment
