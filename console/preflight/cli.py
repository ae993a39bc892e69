"""`brahma preflight PLAN`: the gate alone. Nothing is started, created or backed up.

Each result is printed as it arrives. Exit 0 when every required item passes; 4 as soon as a
required item has failed (the checks still running are cancelled, their programs killed, and the
output says so), or when a required manual item is unsigned: manual items cannot be signed off
here, so the output says so (sign off in the console, or make the item advisory for CI). `--json` prints one JSON object a line: the journal's own
`preflight_result` lines (`running` as each check starts), then `preflight_passed` or
`preflight_failed`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import replace
from typing import TextIO

from console.controller import events as ev
from console.controller.controller import EXIT_COMPLETED, EXIT_GATE_FAILED
from console.plan.model import RolloutPlan
from console.preflight.gate import CheckResult, Gate, cannot_open
from console.runner import RunOptions, journal_path, preflight_context

SHOWN_OUTPUT_LINES = 8
STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "waiting": "WAIT", "cancelled": "CANCEL"}
MANUAL_NOTE = (
    "manual items cannot be signed off here: required ones keep the gate closed. "
    "Sign them off in the console (brahma run PLAN), or make them advisory (required: false) for CI."
)


def _describe(result: CheckResult) -> list[str]:
    advisory = "" if result.required else ", advisory"
    took = f", {result.duration_s:.2f}s" if result.kind != "manual" else ""
    lines = [f"  {STATUS_WORDS.get(result.status, result.status):<5} {result.item} ({result.kind}{advisory}{took})"]
    output = result.output.strip().splitlines()
    if len(output) > SHOWN_OUTPUT_LINES:
        output = ["…", *output[-SHOWN_OUTPUT_LINES:]]
    return lines + [f"        {line}" for line in output]


async def run_preflight(plan: RolloutPlan, json_lines: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = RunOptions()
    # The gate alone changes nothing: no Terraform state backup (that is for a run, before its first change).
    context = replace(preflight_context(plan, options, journal_path(plan, options.state_dir)), state_dir=None)
    gate = Gate(plan.preflight, context)
    results: dict[str, CheckResult] = {}
    failed = asyncio.Event()

    def show(result: CheckResult) -> None:
        results[result.item] = result
        if result.blocks:
            failed.set()
        if json_lines:
            out.write(json.dumps(ev.PreflightResult.of(0.0, result).to_dict(), separators=(",", ":")) + "\n")
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
    stop = asyncio.ensure_future(failed.wait())
    try:
        await asyncio.wait((checks, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        checks.cancel()  # a required item failed (or ctrl+c): the checks still running are stopped, their programs killed
        await asyncio.wait((checks,))
    verdict = gate.verdict({name: result.status for name, result in results.items()})
    cancelled = [item for item in gate.automated if results[item.name].status == "running"]
    for item in cancelled:
        show(CheckResult.cancelled(item, cannot_open(verdict.failed), time.monotonic() - began))
    blocking = [*verdict.failed, *verdict.unsigned]
    final: ev.Event = ev.PreflightFailed(0.0, failed=blocking) if blocking else ev.PreflightPassed(0.0)
    if json_lines:
        extra = {"waiting_for_sign_off": list(verdict.unsigned), "cancelled": [item.name for item in cancelled]}
        out.write(json.dumps({**final.to_dict(), **extra}, separators=(",", ":")) + "\n")
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
