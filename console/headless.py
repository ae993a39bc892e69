"""A rollout with no console: events printed as they happen (or as JSON lines), the report at the end."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from console.controller import events as ev
from console.controller.controller import EXIT_ERROR, RollbackFailed
from console.runner import Rollout, close_rollout, run_controller
from console.narrate import describe, rollout_clock


def printer(out: TextIO, json_lines: bool):
    def print_event(event: ev.Event) -> None:
        if json_lines:
            out.write(json.dumps(event.to_dict(), separators=(",", ":"), default=str) + "\n")
        else:
            line = describe(event)
            if line is None:
                return
            out.write(f"[{rollout_clock(event.t):>7}] {line}\n")
        out.flush()

    return print_event


async def run_headless(rollout: Rollout, json_lines: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    controller = rollout.controller
    state = controller.state
    if controller.resumed:
        where = f"stage {state.stage + 1} ({state.weight}%)" if state.stage >= 0 else "pre-flight"
        print(f"brahma: resuming rollout {state.rollout} at {where} from {controller.journal.path}", file=sys.stderr)
    controller.subscribe(printer(out, json_lines))
    try:
        code = await run_controller(rollout)
    except RollbackFailed as error:
        print(f"brahma: {error}; run the same command again to retry the rollback", file=sys.stderr)
        code = EXIT_ERROR
    finally:
        await close_rollout(rollout)
    return code
