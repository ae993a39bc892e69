"""The `calibrate` check: the plan's A/A false-rollback rate over the last `lookback` must not exceed
`max_false_rollbacks` (advisory unless the item says `required: true`).

It runs `brahma calibrate --json` as a program of its own, so the item's timeout stops it and the worker
processes it forks, as any command check's; its replays start every `every` (default: the plan's
planned duration, so they do not overlap and their outcomes are close to independent) from `lookback`
ago up to now, and the last ones, which the history ends before they are decided, are not counted.
"""

from __future__ import annotations

import json
import sys
import tempfile

from console.plan.model import CALIBRATE_LOOKBACK_S, CALIBRATE_MAX_FALSE_ROLLBACKS, PreflightSpec, RolloutPlan
from console.preflight.context import PreflightContext
from console.preflight.process import run_program, tail


def calibrate_argv(item: PreflightSpec, plan: RolloutPlan, prometheus_url: str | None) -> list[str]:
    """The `brahma calibrate` command the item runs."""
    lookback = item.lookback or CALIBRATE_LOOKBACK_S
    every = item.every or plan.planned_duration
    maximum = item.max_false_rollbacks if item.max_false_rollbacks is not None else CALIBRATE_MAX_FALSE_ROLLBACKS
    argv = [sys.executable, "-m", "console.app", "calibrate", plan.source, "--from", f"-{lookback:g}s", "--to", "-1s"]
    argv += ["--every", f"{every:g}s", "--target-false-rollbacks", f"{maximum * 100:g}%", "--json"]
    return argv + (["--prometheus", prometheus_url] if prometheus_url else [])


def judge_calibration(summary: dict, maximum: float) -> tuple[bool, list[str]]:
    """(the estimated false-rollback rate is within `maximum`, what the output says)."""
    rate = summary["false_rollback_rate"]
    low, high = rate["interval_95"]
    passed = rate["estimate"] <= maximum
    lines = [
        f"false rollbacks {rate['estimate']:.2%} of {rate['of']} A/A replays from {summary['from']} to {summary['to']} "
        f"(95% {low:.2%}–{high:.2%}): {'within' if passed else 'over'} max_false_rollbacks {maximum:.2%}"
    ]
    lines += [f"  {item['item']}: {item['paused'] + item['rolled_back']} replays" for item in summary["items"] if item["paused"] + item["rolled_back"]]
    lines += [f"  suggested: {suggestion['item']} → {suggestion['suggested']}" for suggestion in summary["suggestions"]]
    return passed, lines


async def check_calibration(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    argv = calibrate_argv(item, context.plan, context.prometheus_url)
    maximum = item.max_false_rollbacks if item.max_false_rollbacks is not None else CALIBRATE_MAX_FALSE_ROLLBACKS
    with tempfile.TemporaryFile() as stdout:
        finished = await run_program(argv, item.timeout, stdout=stdout)
        stdout.seek(0)
        printed = stdout.read().decode(errors="replace")
    if finished.returncode != 0:
        said = finished.output.strip() or f"exit {finished.returncode}"
        return False, tail(f"brahma calibrate could not calibrate the plan: {said}")
    passed, lines = judge_calibration(json.loads(printed), maximum)
    return passed, tail("\n".join(lines))
