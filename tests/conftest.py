"""Shared fixtures: plans, and controllers on the simulator with a virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.plan import load_plan, load_plan_text
from console.plan.model import RolloutPlan
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.target import SimTarget

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_configs"


@pytest.fixture
def canary_plan() -> RolloutPlan:
    return load_plan(SAMPLES / "canary.yaml")


def sim_controller(
    plan: RolloutPlan,
    state_dir: Path,
    scenario: str = "healthy",
    options: ControllerOptions | None = None,
    clock: VirtualClock | None = None,
    **controller_args,
) -> Controller:
    """A controller on the simulator, virtual time, journal and sim state in `state_dir`."""
    journal = state_dir / f"{plan.name}.jsonl"
    target = SimTarget(plan.strategy, plan.image, "registry.example.com/app:previous", 10, state_dir / f"{plan.name}.sim.json")
    metrics = SimMetricSource(load_scenario(scenario), target)
    return Controller(plan, target, metrics, journal, clock or VirtualClock(), options or ControllerOptions(), actor="tester@host", **controller_args)


def plan_from(text: str) -> RolloutPlan:
    return load_plan_text(text, "test.yaml")


# Real servers the end-to-end tests start and stop themselves.
from tests.kube_emulator.fixtures import kube_emulator  # noqa: E402,F401
from tests.prometheus_server import demo_service, demo_stack, prometheus_server  # noqa: E402,F401
from tests.served_controller import served  # noqa: E402,F401
