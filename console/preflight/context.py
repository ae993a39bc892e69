"""What the checks need beyond their own item."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from console.plan.model import RolloutPlan


@dataclass(frozen=True)
class PreflightContext:
    """What the checks need beyond their own item: the plan, and where this run keeps things."""

    plan: RolloutPlan
    """Names the checks default to: the app's Deployment and Service, its flags, its stages."""
    flags_path: Path | None = None
    """The flag file the run uses (the plan's flags_file, or the simulator's beside the journal)."""
    state_dir: Path | None = None
    """Where Terraform state is backed up before the rollout; None (the gate alone) backs up nothing."""
    kube_context: str | None = None
    """The kubeconfig context (--context), over the plan's."""
    prometheus_url: str | None = None
    """The Prometheus server (--prometheus), over the plan's."""
