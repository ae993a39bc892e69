"""Whose journal this is: the plan's identity, recorded by rollout_started, checked whenever a journal is taken up.

A journal at STATE_DIR/<release>.jsonl is resumed by whatever plan names that release. Resuming it with
another app, image, strategy, target or stages would shift traffic the journal never planned (or index
a stage the plan does not have), so those must match exactly. The rest of a plan (limits, triggers,
analysis settings, pre-flight, flags) is summed up in a digest: when only the digest differs, the
operator edited the plan mid-rollout (a limit fixed, a trigger loosened) and re-ran it to have the edit
apply. The rollout goes on under the plan as it is now, and says so on stderr and in the journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from console import strict_json
from console.journal import events as ev
from console.journal.state import RolloutState
from console.plan.model import RolloutPlan

IDENTITY_FIELDS = ("rollout", "app", "image", "strategy", "target", "stages")
STAGE_IDENTITY = ("name", "weight", "observe_s")
"""Fields that must match for a plan to take a journal up; a journal from before they were all recorded
is judged on those it has."""
_FIELD_NAMES = {"rollout": "release"}


class ResumeRefused(Exception):
    """The journal is another plan's: resuming it would act on what this plan does not describe (exit 2)."""


def plan_identity(plan: RolloutPlan, target_kind: str | None = None) -> dict[str, Any]:
    """What rollout_started records: the release, what and how it ships, where, its stages, and the digest.

    `target_kind` is the target the run uses (the command line may choose another than the plan's).
    """
    kind = target_kind or plan.target.kind
    target: dict[str, Any] = {"kind": kind}
    if kind == "kubernetes":
        target |= {"namespace": plan.target.namespace, "deployment": plan.target.deployment or plan.app}
    return {
        "rollout": plan.name,
        "app": plan.app,
        "image": plan.image,
        "strategy": plan.strategy,
        "target": target,
        "stages": [dict(zip(STAGE_IDENTITY, (s.name, s.weight, s.observe))) for s in plan.stages],
        "digest": plan_digest(plan),
    }


def plan_digest(plan: RolloutPlan) -> str:
    """sha256 of what the controller decides by, as canonical JSON.

    The compiled plan, not the file's bytes: a comment, a reformat or the same plan in HCL changes
    nothing the controller does, and a default Brahma applies counts as much as a value written out.
    Left out: where it is read from, the runbook's text, webhooks and the Prometheus address and
    credentials (who is told and how samples are fetched, not what is decided).
    """
    decided = {
        "stages": [_decided_by(stage) for stage in plan.stages],
        "triggers": [_decided_by(trigger) for trigger in plan.triggers],
        "analysis": [plan.interval, plan.pause_timeout, plan.manual, plan.min_requests, plan.inconclusive_limit, plan.min_coverage],
        "judge": [plan.judge, plan.alpha, plan.tolerance, plan.floor],
        "queries": plan.metrics.queries,
        "labels": plan.metrics.prometheus.labels,
        "provider": plan.metrics.provider,
        "flags": [dataclasses.asdict(flag) for flag in plan.flags],
        "flags_file": plan.flags_file,
        "preflight": [dataclasses.asdict(item) for item in plan.preflight],
        "rollback_window": plan.rollback_window,
    }
    canonical = strict_json.dumps(decided, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _decided_by(item: Any) -> dict[str, Any]:
    """A stage or trigger as a dict, less how its limits are shown (a check's `percent`): it decides nothing."""

    def shown_left_out(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        return {key: value for key, value in pairs if key != "percent"}

    return dataclasses.asdict(item, dict_factory=shown_left_out)


def check_resume(plan: RolloutPlan, state: RolloutState, journal: Path, target_kind: str | None = None) -> str | None:
    """Whether `plan` may take up the journal folded into `state`.

    ResumeRefused names each field that differs and how to start afresh; a line for the operator when
    only the digest differs (the plan was edited: it goes on under the edit); None when nothing differs
    or the journal is empty.
    """
    if not state.first_event:
        return None
    afresh = f"to start afresh, move the journal aside: mv {journal} {journal.with_name(f'{journal.stem}.old.jsonl')}"
    if state.first_event != ev.RolloutStarted.name or state.start is None:
        raise ResumeRefused(f"{journal} begins with {state.first_event}, not rollout_started: it is no rollout's journal; {afresh}")
    current = plan_identity(plan, target_kind)
    recorded = {name: getattr(state.start, name) for name in IDENTITY_FIELDS}
    # A stage is who it is by its name, weight and window; its criteria are the digest's (editable mid-rollout).
    recorded["stages"] = [{key: stage.get(key) for key in STAGE_IDENTITY} for stage in recorded["stages"]]
    differences = [
        f"{_FIELD_NAMES.get(name, name)}: journal {_shown(recorded[name])}, plan {_shown(current[name])}"
        for name in IDENTITY_FIELDS
        if recorded[name] and recorded[name] != current[name]  # empty: a journal from before it was recorded
    ]
    if differences:
        raise ResumeRefused(f"{journal} is the journal of another plan than {plan.source or 'this one'}: " + "; ".join(differences) + f"; {afresh}")
    if state.plan_digest and state.plan_digest != current["digest"]:
        return (
            f"{plan.source or 'the plan'} changed since {journal} last ran it (digest {state.plan_digest[:12]} -> {current['digest'][:12]}): "
            "the rollout goes on from where it was, under the plan as it is now"
        )
    return None


def _shown(value: Any) -> str:
    if isinstance(value, list):  # stages: the weights and windows, as an operator compares them
        return " -> ".join(f"{s.get('name')} {s.get('weight')}% {s.get('observe_s'):g}s" for s in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
