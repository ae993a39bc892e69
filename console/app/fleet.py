"""`brahma fleet`: every rollout of some state dirs in one console (console/tui/fleet_app.py)."""

from __future__ import annotations

import os
from pathlib import Path

from console.actor import current_actor
from console.app.exits import EXIT_COMPLETED
from console.app.problems import refuse
from console.app.supervision import served_plan
from console.journal.state_dir import RolloutFiles
from console.rollout import Rollout
from console.supervisor.client import SupervisorClient, SupervisorUnavailable

DEFAULT_STATE_DIR = Path(".brahma")
STATE_DIRS_VARIABLE = "BRAHMA_STATE_DIRS"
"""State dirs, separated by ':', that `brahma fleet` shows by default and `brahma` alone opens the fleet on."""


def configured_state_dirs() -> list[Path]:
    """BRAHMA_STATE_DIRS as paths (empty entries left out)."""
    return [Path(part) for part in os.environ.get(STATE_DIRS_VARIABLE, "").split(":") if part]


def fleet_state_dirs(given: list[Path] | None) -> list[Path]:
    """--state-dir as given; else BRAHMA_STATE_DIRS; else ./.brahma."""
    return given or configured_state_dirs() or [DEFAULT_STATE_DIR]


def open_rollout(files: RolloutFiles) -> Rollout | None:
    """The rollout attached as `brahma attach` attaches it: its controller's plan, followed over its socket."""
    from console.app.wiring import plan_flags
    from console.supervisor.remote import RemoteController

    plan = served_plan(files)
    if plan is None:
        return None
    return Rollout(RemoteController(plan, files, actor=current_actor()), plan_flags(plan, files), detached=True)


def roll_back(files: RolloutFiles, actor: str) -> str | None:
    """The operator's rollback, sent to the rollout's controller; why not, when it was not taken."""
    try:
        with SupervisorClient(files.socket) as client:
            reply = client.command("rollback", actor)
    except (SupervisorUnavailable, OSError) as error:
        return f"no controller answers ({error}); open it (Enter): its console starts the controller again and rolls back from there"
    return None if reply.get("ok") else str(reply.get("error", "the controller refused it"))


def run_fleet(given: list[Path] | None) -> int:
    state_dirs = fleet_state_dirs(given)
    missing = [str(state_dir) for state_dir in state_dirs if not state_dir.is_dir()]
    if missing:
        return refuse(f"no state dir {', '.join(missing)} (--state-dir, or {STATE_DIRS_VARIABLE} separated by ':')")
    from console.tui.fleet_app import FleetActions, FleetApp

    FleetApp(state_dirs, FleetActions(open_rollout, roll_back), current_actor()).run()
    return EXIT_COMPLETED
