"""A rollout with no console: events printed as they happen (or as JSON lines), the report at the end.

Output closed early (`| head -3`) stops the printing, never the rollout: it is supervised to its end
as if nobody read it, and the journal says when printing stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TextIO

from console.app.exits import EXIT_ROLLBACK_UNVERIFIED, exit_code
from console.app.problems import say, say_rollback_unverified
from console.journal import events as ev
from console.journal.state import Phase
from console.narrate import event_printer, spans_days
from console.rollout import Rollout, close_rollout, run_controller
from console.streams import guarded


def say_output_lost(controller, stream: str, error: Exception) -> None:
    """Journal that `stream` went away: the events after it are in the journal only, and the rollout goes on."""
    if controller.state.finished:
        return  # the last event: nothing more would have been printed
    controller.emit(
        ev.ErrorRaised(
            controller.now(),
            where=stream,
            message=f"{stream} was closed ({type(error).__name__}): events are no longer printed; the rollout goes on, and the journal keeps every event",
        )
    )


async def run_headless(rollout: Rollout, json_lines: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    controller = rollout.controller
    state = controller.state
    if controller.resumed:
        where = f"stage {state.stage + 1} ({state.weight}%)" if state.stage >= 0 else "pre-flight"
        say(f"resuming rollout {state.rollout} at {where} from {controller.journal.path}")
    out = guarded(out)  # type: ignore[arg-type]
    out.on_lost(lambda error: say_output_lost(controller, "stdout", error))
    controller.subscribe(event_printer(out, json_lines, days=spans_days(controller.plan.planned_duration)))
    # SIGTERM as ctrl+c: the step under way is cut short (each is safe to repeat), the journal and report closed.
    running = asyncio.ensure_future(run_controller(rollout))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, running.cancel)
    try:
        return exit_code(await running)
    except asyncio.CancelledError:
        if not running.cancelled():
            raise
        if controller.state.phase != Phase.ROLLING_BACK:
            raise KeyboardInterrupt from None  # told as any interruption: the journal keeps where the rollout was
        say_rollback_unverified(controller.state)
        return EXIT_ROLLBACK_UNVERIFIED
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await close_rollout(rollout)
