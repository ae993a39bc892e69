"""`brahma preflight PLAN`: the gate alone. Nothing is started, created or backed up.

Exit 0 when every required item passes, 4 when any does not. Manual items cannot be signed off
here: they count as waiting, so a required one keeps the gate closed, and the output says so
(sign off in the console, or make the item advisory for CI). `--json` prints one JSON object a
line: the journal's own `preflight_result` lines, then `preflight_passed` or `preflight_failed`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TextIO

from console.controller import events as ev
from console.controller.controller import EXIT_COMPLETED, EXIT_GATE_FAILED
from console.plan.model import RolloutPlan
from console.preflight.gate import CheckResult, Gate
from console.runner import RunOptions, journal_path, preflight_context

SHOWN_OUTPUT_LINES = 8
STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "waiting": "WAIT"}
MANUAL_NOTE = (
    "manual items cannot be signed off here: required ones keep the gate closed. "
    "Sign them off in the console (brahma run PLAN), or make them advisory (required: false) for CI."
)


def _result_event(result: CheckResult) -> ev.PreflightResult:
    return ev.PreflightResult(
        0.0, item=result.item, kind=result.kind, status=result.status, required=result.required,
        output=result.output, duration_s=round(result.duration_s, 3), by=result.by,
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

    def show(result: CheckResult) -> None:
        if json_lines:
            out.write(json.dumps(_result_event(result).to_dict(), separators=(",", ":")) + "\n")
        else:
            out.write("\n".join(_describe(result)) + "\n")
        out.flush()

    if not json_lines:
        out.write(f"pre-flight of {plan.name}: {len(plan.preflight)} items\n")
    results = await Gate(plan.preflight, context).run(show)
    blocking = [result.item for result in results if result.blocks]
    waiting = [result.item for result in results if result.status == "waiting" and result.required]
    final: ev.Event = ev.PreflightFailed(0.0, failed=blocking) if blocking else ev.PreflightPassed(0.0)
    if json_lines:
        out.write(json.dumps({**final.to_dict(), "waiting_for_sign_off": waiting}, separators=(",", ":")) + "\n")
    elif blocking:
        out.write(f"gate FAILED: {', '.join(blocking)}\n")
        if waiting:
            out.write(f"note: {MANUAL_NOTE}\n")
    else:
        out.write("gate passed\n")
    out.flush()
    return EXIT_GATE_FAILED if blocking else EXIT_COMPLETED
