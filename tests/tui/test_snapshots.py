"""What a person sees, state by state, at 80x24 and at 120x40 (pytest-textual-snapshot)."""

from __future__ import annotations

import dataclasses

import pytest

from console.controller.clock import VirtualClock
from console.plan import load_plan
from tests.conftest import SAMPLES, plan_from
from tests.tui.console_fixtures import HeldRollbackTarget, UnreachableRollbackTarget, console_app, settle

SIZES = [(80, 24), (120, 40)]
GATED = "app: checkout\nimage: r/checkout:2.4.1\npreflight:\n  - {name: code review, kind: manual}\n  - {name: rollback plan, kind: manual, required: false}\n"


def canary():
    return load_plan(SAMPLES / "canary.yaml")


def canary_on_its_limits():
    """The limits alone: the sequential judge would roll the latency creep back before its warning pauses it."""
    return dataclasses.replace(canary(), judge="threshold")


def state_is(phase):
    return lambda state: state.phase == phase


CASES = {
    "gate_pending": (lambda: plan_from(GATED), {"stop_at": 0}, lambda s: len(s.preflight) == 2),
    "mid_stage_healthy": (canary, {"stop_at": 300}, lambda s: s.last_sample_t == 300),
    "paused_on_warning": (canary_on_its_limits, {"scenario": "latency-creep", "stop_at": 1200}, lambda s: s.phase == "paused" and s.last_sample_t == 1200),
    "rolled_back": (canary, {"scenario": "error-spike", "stop_at": 1100}, state_is("rolled_back")),
    "complete": (canary, {"stop_at": 7000}, state_is("completed")),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", sorted(CASES))
def test_console_states(snap_compare, tmp_path, case, size):
    make_plan, kwargs, reached = CASES[case]
    app = console_app(make_plan(), tmp_path, **kwargs)

    async def run_before(pilot):
        await settle(pilot, app, reached)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_console_rolling_back(snap_compare, tmp_path, size):
    plan = canary()
    app = console_app(plan, tmp_path, stop_at=300)
    app.controller.target = HeldRollbackTarget(app.controller.target)

    async def run_before(pilot):
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        await pilot.press("ctrl+r", "enter")
        await settle(pilot, app, state_is("rolling_back"))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_console_rollback_not_verified(snap_compare, tmp_path, size):
    app = console_app(canary(), tmp_path, stop_at=300)
    app.controller.target = UnreachableRollbackTarget(app.controller.target)
    app.controller.wall_clock = VirtualClock(stop_at=5)

    async def run_before(pilot):
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        await pilot.press("ctrl+r", "enter")
        await settle(pilot, app, lambda s: s.rollback_failure is not None)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
