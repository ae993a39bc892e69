"""Shared fixtures: plans, and controllers on the simulator with a virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan, load_plan_text
from console.plan.model import PreflightSpec, RolloutPlan
from console.preflight.checks import CHECKS
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.target import SimTarget
from testbed import ROOT, SAMPLES  # noqa: F401 (tests import ROOT from here)


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
    files = RolloutFiles(state_dir, plan.name)
    target = SimTarget(plan.strategy, plan.image, "registry.example.com/app:previous", 10, files.sim_state)
    metrics = SimMetricSource(load_scenario(scenario), target)
    return Controller(plan, target, metrics, files.journal, clock or VirtualClock(), options or ControllerOptions(), actor="tester@host", **controller_args)


async def stop_at(controller: Controller, t: float) -> None:
    """Run `controller` (its clock made with VirtualClock(stop_at=t)) until rollout time `t`, then stop it as if killed."""
    task = asyncio.create_task(controller.run())
    while controller.now() < t:
        await asyncio.sleep(0)
    controller.stop()
    await task
    controller.journal.close()


def plan_from(text: str) -> RolloutPlan:
    return load_plan_text(text, "test.yaml")


class HeldChecks:
    """Command checks that end only when the test lets them (`finish`), so a gate can be seen mid-way."""

    def __init__(self) -> None:
        self.outcomes: dict[str, asyncio.Future[tuple[bool, str]]] = {}
        self.runs: list[str] = []
        """Each check's name as it started, once per run."""
        self.cancelled: list[str] = []

    def _outcome(self, name: str) -> asyncio.Future[tuple[bool, str]]:
        if name not in self.outcomes:
            self.outcomes[name] = asyncio.get_running_loop().create_future()
        return self.outcomes[name]

    async def __call__(self, item: PreflightSpec, context: object) -> tuple[bool, str]:
        self.runs.append(item.name)
        outcome = self._outcome(item.name)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            self.cancelled.append(item.name)
            raise
        finally:
            if outcome.done():  # used up: a later run of the same check waits for a new outcome
                del self.outcomes[item.name]

    def finish(self, name: str, passed: bool, output: str = "") -> None:
        self._outcome(name).set_result((passed, output))


@pytest.fixture
def held_checks(monkeypatch) -> HeldChecks:
    """Every command check of the test's plans is held until the test finishes it."""
    held = HeldChecks()
    monkeypatch.setitem(CHECKS, "command", held)
    return held


# Real servers the end-to-end tests start and stop themselves.
from testbed.kube_emulator.fixtures import kube_emulator  # noqa: E402,F401
from testbed.prometheus_server import demo_service, demo_stack, prometheus_server  # noqa: E402,F401
from tests.served_controller import served  # noqa: E402,F401
