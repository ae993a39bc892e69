"""An attended controller served on a Unix socket in this process, on virtual time held at a moment."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from console.app.wiring import plan_flags
from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.journal.state_dir import RolloutFiles
from console.rollout import Rollout
from console.supervisor.server import SupervisorServer

HELD_AT = 300.0
"""Virtual time stands still here, 5 minutes into stage 1, until a command moves the rollout on."""
ROUNDS = 2000


async def until(condition, rounds: int = ROUNDS) -> None:
    """Let the loop run (the server, the controller, the clients) until `condition()` holds."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.001)  # socket I/O needs the selector to turn, not only the ready queue
    raise AssertionError("the condition never held")


@contextlib.asynccontextmanager
async def serving(plan, state_dir: Path, ready=lambda controller: controller.now() >= HELD_AT):
    """An attended controller of `plan` held at HELD_AT, serving its socket in `state_dir`, once `ready`.

    The plan's flags are in their store beside the journal, as on the simulator: the server checks
    the flag changes consoles report against it.
    """
    from tests.conftest import sim_controller  # conftest imports this module for the fixture

    options = ControllerOptions(headless=False, exit_when_finished=False)
    controller = sim_controller(plan, state_dir, options=options, clock=VirtualClock(stop_at=HELD_AT))
    files = RolloutFiles(state_dir, plan.name)
    rollout = Rollout(controller, plan_flags(plan, files))
    server = asyncio.create_task(SupervisorServer(rollout, files, attended=True).run())
    await until(lambda: files.socket.exists() and ready(controller))
    yield controller, files, server
    if not server.done():
        controller.stop()
        await asyncio.wait_for(server, 10)


@pytest.fixture
async def served(canary_plan, tmp_path):
    """(controller, files, server task) of the sample canary served in tmp_path."""
    async with serving(canary_plan, tmp_path) as served:
        yield served
