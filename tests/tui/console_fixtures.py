"""Consoles on the simulator, held at a chosen moment of virtual time, for Pilot and snapshot tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from console.app.wiring import plan_flags
from console.controller.clock import VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.controller.release_flags import ReleaseFlags
from console.flags.backends import FileBackend
from console.flags.store import FlagStore
from console.plan.model import RolloutPlan
from console.rollout import Rollout
from console.supervisor.remote import RemoteController
from console.targets.base import TargetError
from console.tui.app import BrahmaApp, make_app
from tests.conftest import sim_controller
from tests.served_controller import HELD_AT, serving

CONTROLLERS = ("in_process", "remote")
"""Where a console's controller runs: in the console's process, or in its own behind the supervisor's socket."""


def fixed_monotonic():
    """Brahma's own time advancing 1 ms per reading: rollback durations read the same every run."""
    counter = itertools.count()
    return lambda: next(counter) / 1000


def console_app(
    plan: RolloutPlan,
    state_dir: Path,
    *,
    scenario: str = "healthy",
    stop_at: float | None = None,
    demo: bool = False,
    read_only: bool = False,
    manual: bool = False,
    keymap: dict[str, str] | None = None,
    target: Any = None,
) -> BrahmaApp:
    options = ControllerOptions(headless=False, manual=manual, exit_when_finished=False)
    flags = None
    if plan.flags:
        flags = ReleaseFlags(FlagStore(FileBackend(state_dir / "flags.json")), plan.flags)
        options.flag_hooks.append(flags.on_rollback)
        options.flag_setup = flags.create_missing
        options.flag_step = flags.apply_step
    controller = sim_controller(plan, state_dir, scenario, options, clock=VirtualClock(stop_at=stop_at), monotonic=fixed_monotonic())
    if target is not None:
        controller.target = target
    return make_app(Rollout(controller, flags), demo=demo, read_only=read_only, keymap=keymap, actor="captain@laptop")


@contextlib.asynccontextmanager
async def console_on(where: str, plan: RolloutPlan, state_dir: Path) -> AsyncIterator[tuple[BrahmaApp, Controller]]:
    """(a console, the controller it supervises) held at HELD_AT: the controller in the console (as in
    brahma demo), or served on a real Unix socket by the supervisor's server and followed by a
    RemoteController (as brahma run and attach do; the server runs in this process, on virtual time)."""
    if where == "in_process":
        app = console_app(plan, state_dir, stop_at=HELD_AT)
        yield app, app.controller
        return
    async with serving(plan, state_dir, ready=lambda controller: True) as (controller, files, _):
        rollout = Rollout(RemoteController(plan, files), plan_flags(plan, files), detached=True)
        yield make_app(rollout, actor="captain@laptop"), controller


async def settle(pilot, app: BrahmaApp, until=lambda state: True, rounds: int = 200) -> None:
    """Let the controller run (virtual time) until `until` holds and the panes are redrawn."""
    for _ in range(rounds):
        await pilot.pause()
        if until(app.controller.state):
            break
        await asyncio.sleep(0)
    if app.rollout_screen.assessing is not None:  # the think step heading the pre-flight pane, read from files
        await app.rollout_screen.assessing.wait()
    app.refresh_view()
    await pilot.pause()


class HeldRollbackTarget:
    """A sim target whose rollback waits to be released: the console can be seen mid-rollback."""

    def __init__(self, inner):
        self.inner = inner
        self.release = asyncio.Event()
        self.cluster = inner.cluster

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def rollback(self, before):
        await self.release.wait()
        return await self.inner.rollback(before)


class UnreachableRollbackTarget:
    """A sim target whose rollback fails as a cluster out of reach does, until `fixed`."""

    def __init__(self, inner):
        self.inner = inner
        self.cluster = inner.cluster
        self.fixed = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def rollback(self, before):
        if not self.fixed:
            raise TargetError("the Kubernetes API at https://k8s:6443 is unreachable: Connection refused")
        return await self.inner.rollback(before)
