"""`brahma preflight PLAN`: the gate alone. Nothing is started, created or backed up.

Each result is printed as it arrives, with a progress line for the checks still running. Exit 0
when every required item passes; 4 as soon as a required item has failed (the checks still running
are cancelled, their programs killed, and the output says so), or when a required manual item is
unsigned: manual items cannot be signed off here, so the output says so (sign off in the console, or
make the item advisory for CI). `--json` prints one JSON object a line: the journal's own
`preflight_result` lines (`running` as each check starts), then `preflight_passed` or
`preflight_failed`; the progress line goes to stderr then. Interrupted (ctrl+c, SIGTERM), the checks
still running are stopped the same way, and it exits 130.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import time
from dataclasses import replace
from typing import TextIO

from console import strict_json
from console.app.exits import EXIT_COMPLETED, EXIT_GATE_FAILED, EXIT_INTERRUPTED
from console.app.problems import say
from console.app.wiring import RunOptions, preflight_context
from console.journal import events as ev
from console.plan.model import RolloutPlan
from console.preflight.gate import CheckResult, Gate, cannot_open
from console.units import format_duration

SHOWN_OUTPUT_LINES = 8
STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "waiting": "WAIT", "cancelled": "CANCEL"}
MANUAL_NOTE = (
    "manual items cannot be signed off here: required ones keep the gate closed. "
    "Sign them off in the console (brahma run PLAN), or make them advisory (required: false) for CI."
)
INTERRUPTIONS = (signal.SIGINT, signal.SIGTERM)
PROGRESS_EVERY_S = {True: 2.0, False: 30.0}
"""How often the checks still running are told: in place every few seconds on a terminal; in a log, a
line at most every 30 s, so it stays short."""


def _describe(result: CheckResult) -> list[str]:
    advisory = "" if result.required else ", advisory"
    took = f", {result.duration_s:.2f}s" if result.kind != "manual" else ""
    lines = [f"  {STATUS_WORDS.get(result.status, result.status):<5} {result.item} ({result.kind}{advisory}{took})"]
    output = result.output.strip().splitlines()
    if len(output) > SHOWN_OUTPUT_LINES:
        output = ["…", *output[-SHOWN_OUTPUT_LINES:]]
    return lines + [f"        {line}" for line in output]


def progress_text(running: list[str], elapsed_s: float) -> str:
    """`… 2 checks running (1m12s): all tests pass, security scan` (they all started with the gate)."""
    checks = "check" if len(running) == 1 else "checks"
    return f"… {len(running)} {checks} running ({format_duration(elapsed_s)}): {', '.join(running)}"


class ProgressLine:
    """The checks still running: rewritten in place on a terminal, a plain line in a log."""

    def __init__(self, stream: TextIO, every_s: float | None = None):
        self.stream = stream
        self.in_place = stream.isatty()
        self.every_s = every_s if every_s is not None else PROGRESS_EVERY_S[self.in_place]
        self._shown = False

    def show(self, text: str) -> None:
        if self.in_place:
            # One terminal row, or the carriage return cannot take it back.
            width = shutil.get_terminal_size().columns - 1
            text = text if len(text) <= width else text[: width - 1] + "…"
            self.stream.write("\r\x1b[K" + text)
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Before anything else is printed: the in-place line goes."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


async def run_preflight(plan: RolloutPlan, json_lines: bool, out: TextIO | None = None, progress: ProgressLine | None = None) -> int:
    out = out or sys.stdout
    progress = progress or ProgressLine(sys.stderr if json_lines else out)
    options = RunOptions()
    # The gate alone changes nothing: no Terraform state backup (that is for a run, before its first change).
    context = replace(preflight_context(plan, options), state_dir=None)
    gate = Gate(plan.preflight, context)
    results: dict[str, CheckResult] = {}
    failed, interrupted = asyncio.Event(), asyncio.Event()

    def show(result: CheckResult) -> None:
        results[result.item] = result
        if result.blocks:
            failed.set()
        progress.clear()
        if json_lines:
            out.write(strict_json.dumps(ev.PreflightResult.of(0.0, result).to_dict()) + "\n")
        elif result.status != "running":
            out.write("\n".join(_describe(result)) + "\n")
        out.flush()

    if not json_lines:
        out.write(f"pre-flight of {plan.name}: {len(plan.preflight)} items\n")
    for item in gate.manual:
        show(CheckResult.waiting(item))
    for item in gate.automated:
        show(CheckResult.running(item))
    began = time.monotonic()
    checks = asyncio.ensure_future(gate.run_checks(show))
    stops = [asyncio.ensure_future(event.wait()) for event in (failed, interrupted)]
    loop = asyncio.get_running_loop()
    for signum in INTERRUPTIONS:  # ctrl+c, or a CI job's timeout: the checks' programs must not outlive it
        loop.add_signal_handler(signum, interrupted.set)
    try:
        while not (checks.done() or failed.is_set() or interrupted.is_set()):
            await asyncio.wait((checks, *stops), timeout=progress.every_s, return_when=asyncio.FIRST_COMPLETED)
            running = [item.name for item in gate.automated if results[item.name].status == "running"]
            if running and not (failed.is_set() or interrupted.is_set()):
                progress.show(progress_text(running, time.monotonic() - began))
    finally:
        for signum in INTERRUPTIONS:
            loop.remove_signal_handler(signum)
        for stop in stops:
            stop.cancel()
        checks.cancel()  # the checks still running are stopped, their programs killed
        await asyncio.wait((checks,))
    progress.clear()
    verdict = gate.verdict({name: result.status for name, result in results.items()})
    why = cannot_open(verdict.failed) if verdict.failed else "interrupted"
    cancelled = [item for item in gate.automated if results[item.name].status == "running"]
    for item in cancelled:
        show(CheckResult.cancelled(item, why, time.monotonic() - began))
    if interrupted.is_set() and not verdict.failed:
        say("interrupted; the checks still running were stopped")
        return EXIT_INTERRUPTED
    blocking = [*verdict.failed, *verdict.unsigned]
    final: ev.Event = ev.PreflightFailed(0.0, failed=blocking) if blocking else ev.PreflightPassed(0.0)
    if json_lines:
        extra = {"waiting_for_sign_off": list(verdict.unsigned), "cancelled": [item.name for item in cancelled]}
        out.write(strict_json.dumps({**final.to_dict(), **extra}) + "\n")
    elif blocking:
        out.write(f"gate FAILED: {', '.join(blocking)}\n")
        if cancelled:
            out.write(f"cancelled, as the gate could not open any more: {', '.join(item.name for item in cancelled)}\n")
        if verdict.unsigned:
            out.write(f"note: {MANUAL_NOTE}\n")
    else:
        out.write("gate passed\n")
    out.flush()
    return EXIT_GATE_FAILED if blocking else EXIT_COMPLETED
