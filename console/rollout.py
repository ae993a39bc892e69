"""A rollout as it runs: its controller and what works beside it (the plan's flags, its webhooks, a cluster's
Lease), run and closed one way by the headless runner, the detached controller and the console."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.journal.events import ErrorRaised

if TYPE_CHECKING:  # annotations only: the console's first frame imports this module
    from console.controller.handle import ControllerHandle
    from console.controller.release_flags import ReleaseFlags
    from console.journal.state import Phase
    from console.notify import Notifier
    from console.targets.kube_lease import RolloutLease


@dataclass
class Rollout:
    """Everything one run is made of, for the headless runner and the console alike."""

    controller: ControllerHandle
    """In this process (a Controller), or a detached one followed over its socket (a RemoteController)."""
    flags: ReleaseFlags | None = None
    """The plan's flags in their store (None when the plan has none)."""
    notifier: Notifier | None = None
    """The plan's webhooks (None when it has none)."""
    lease: RolloutLease | None = None
    """On a cluster: the Lease that makes this the rollout's only controller."""
    detached: bool = False
    """The controller runs in a process of its own and is followed over its socket (a RemoteController)."""


async def run_controller(rollout: Rollout) -> Phase:
    """The controller's loop, keeping the rollout's Lease meanwhile when it has one; the phase it stopped in.

    A controller whose lease another took stops, and says so in the journal: two controllers acting
    on one release would fight over its traffic.
    """
    controller, lease = rollout.controller, rollout.lease
    if lease is None:
        return await controller.run()

    def lost(message: str) -> None:
        controller.emit(ErrorRaised(controller.now(), where="lease", message=f"{message}; this controller stops supervising"))
        controller.stop()

    keeper = asyncio.create_task(lease.keep(lost))
    try:
        return await controller.run()
    finally:
        keeper.cancel()
        await asyncio.to_thread(lease.release)


async def close_rollout(rollout: Rollout) -> Path:
    """Send the notifications still under way, close the journal and the clients, then write the report."""
    from console.report import write_report

    controller = rollout.controller
    if rollout.notifier is not None:
        await rollout.notifier.drain()
    controller.journal.close()
    await controller.target.close()
    await controller.metrics.close()
    return write_report(controller.journal.path)
