"""A rollout with no console: events printed as they happen (or as JSON lines), the report at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from console.controller import events as ev
from console.controller.controller import EXIT_ERROR, Controller, RollbackFailed
from console.units import format_duration


def describe(event: ev.Event) -> str | None:
    """One line a person reads, or None for the events too frequent to print (samples)."""
    match event:
        case ev.RolloutStarted():
            return f"rollout {event.rollout}: {event.strategy} of {event.image}, {format_duration(event.planned_s)} planned"
        case ev.PreflightResult():
            return f"pre-flight {event.item}: {event.status}" + (f" ({event.by})" if event.by and event.by != "brahma" else "")
        case ev.PreflightPassed():
            return "pre-flight gate passed"
        case ev.PreflightFailed():
            return f"pre-flight gate FAILED: {', '.join(event.failed)}; nothing was changed"
        case ev.StageStarted():
            return f"{event.stage_name} started: {event.weight}% of traffic on the new version, observing {format_duration(event.observe_s)}"
        case ev.StagePassed():
            return f"stage {event.stage + 1} passed"
        case ev.AwaitingPromote():
            return f"stage {event.stage + 1} held: waiting for promote"
        case ev.Paused():
            return f"PAUSED: {event.reason}"
        case ev.Resumed():
            return "resumed"
        case ev.RollbackStarted():
            return f"ROLLING BACK ({event.trigger}): {event.reason}"
        case ev.RollbackVerified():
            return f"rollback verified: {event.detail}"
        case ev.RolledBack():
            return f"rolled back in {event.duration_s:.3f}s: stable serves 100%"
        case ev.Completed():
            return "completed: the new version serves 100% and the monitoring window held"
        case ev.CommandIssued():
            return f"command {event.command} by {event.actor}"
        case ev.FlagChanged():
            return f"flag {event.flag}: {event.old} → {event.new} by {event.actor}"
        case ev.ErrorRaised():
            return f"error in {event.where}: {event.message}"
    return None


def printer(out: TextIO, json_lines: bool):
    def print_event(event: ev.Event) -> None:
        if json_lines:
            out.write(json.dumps(event.to_dict(), separators=(",", ":"), default=str) + "\n")
        else:
            line = describe(event)
            if line is None:
                return
            minutes, seconds = divmod(int(event.t), 60)
            out.write(f"[{minutes:>4}:{seconds:02d}] {line}\n")
        out.flush()

    return print_event


async def run_headless(controller: Controller, json_lines: bool, state_dir: Path, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    state = controller.state
    if controller.resumed:
        where = f"stage {state.stage + 1} ({state.weight}%)" if state.stage >= 0 else "pre-flight"
        print(f"brahma: resuming rollout {state.rollout} at {where} from {controller.journal.path}", file=sys.stderr)
    controller.subscribe(printer(out, json_lines))
    try:
        code = await controller.run()
    except RollbackFailed as error:
        print(f"brahma: {error}; run the same command again to retry the rollback", file=sys.stderr)
        code = EXIT_ERROR
    finally:
        controller.journal.close()
        await controller.target.close()
        await controller.metrics.close()
    from console.report import write_report

    write_report(controller.journal.path)
    return code
