"""`brahma calibrate PLAN --from TIME --to TIME`: A/A calibration over Prometheus history (console/calibrate).

Exit codes: 0 done, whatever the rate it found (a measurement that ran is done: whether the rate is too high is
for the reader, `--json`'s exceeds_target, or the pre-flight item `kind: calibrate` to decide, and a script can
tell "it ran" from "it could not" by the code alone); 2 invalid input, or a history with nothing to replay or
too short for any replay to finish; 1 a server that cannot be reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from console import strict_json
from console.app.exits import EXIT_COMPLETED, EXIT_ERROR
from console.app.problems import refuse, say, say_problems, say_warnings
from console.backtest.selectors import Selector, SelectorError, parse_selector
from console.backtest.times import TimeError, parse_time
from console.plan.model import RolloutPlan
from console.plan.problems import PlanError
from console.units import UnitError, format_duration, parse_duration, parse_percentage

EVERY_INTERVALS = 30
"""--every's default in sample intervals: a start every 5 minutes for the 10 s interval."""


class CalibrationRefused(ValueError):
    """Input that cannot be calibrated: the message says why (exit 2)."""


@dataclass(frozen=True)
class Request:
    """A calibration as asked for, read and checked."""

    from_wall: float
    to_wall: float
    every_s: float
    target: float
    canary_selector: Selector | None
    stable_selector: Selector | None


def read_request(
    plan: RolloutPlan,
    from_text: str,
    to_text: str,
    every_text: str | None,
    target_text: str,
    canary_selector: str | None = None,
    stable_selector: str | None = None,
    now: float | None = None,
) -> Request:
    """The options read and checked against the plan; CalibrationRefused saying which one is wrong."""
    now = time.time() if now is None else now
    try:
        from_wall = parse_time(from_text, now, "--from")
        to_wall = parse_time(to_text, now, "--to")
        selectors = {
            track: parse_selector(text, f"--{track}-selector") if text is not None else None
            for track, text in (("canary", canary_selector), ("stable", stable_selector))
        }
    except (TimeError, SelectorError) as error:
        raise CalibrationRefused(str(error)) from None
    try:
        every_s = parse_duration(every_text) if every_text is not None else plan.interval * EVERY_INTERVALS
    except UnitError as error:
        raise CalibrationRefused(f"--every {every_text!r}: {error}") from None
    try:
        target = parse_percentage(target_text)
    except UnitError as error:
        raise CalibrationRefused(f"--target-false-rollbacks {target_text!r}: {error}") from None
    if to_wall <= from_wall:
        raise CalibrationRefused(f"--to {to_text!r} is not after --from {from_text!r}: the starts are replayed from --from up to --to")
    if every_s <= 0 or abs(every_s / plan.interval - round(every_s / plan.interval)) > 1e-9:
        raise CalibrationRefused(
            f"--every {every_text!r}: replays start on the plan's sample grid, so --every is a whole number of its {format_duration(plan.interval)} interval"
        )
    if not 0 < target < 1:
        raise CalibrationRefused(f"--target-false-rollbacks {target_text!r}: a share of the replays between 0% and 100%, like 1%")
    return Request(from_wall, to_wall, every_s, target, selectors["canary"], selectors["stable"])


def run_calibrate(
    plan_path: Path,
    from_text: str,
    to_text: str,
    prometheus_url: str | None,
    json_summary: bool,
    every_text: str | None,
    target_text: str,
    canary_selector: str | None,
    stable_selector: str | None,
    workers: int | None,
) -> int:
    import requests

    from console.metrics.prometheus import PrometheusConfigError
    from console.plan import load_plan

    try:
        plan = load_plan(plan_path, history_only=True)
    except PlanError as error:
        return say_problems(error)
    say_warnings(plan)
    try:
        request = read_request(plan, from_text, to_text, every_text, target_text, canary_selector, stable_selector)
        calibration = calibrate_request(plan, request, prometheus_url, workers)
    except CalibrationRefused as error:
        return refuse(str(error))
    except PrometheusConfigError as error:
        return refuse(f"{plan.source}: {error}")
    except requests.ConnectionError:
        say(f"cannot reach Prometheus at {prometheus_url or plan.metrics.prometheus.url}: the history could not be read")
        return EXIT_ERROR
    from console.calibrate.summary import render

    if json_summary:
        print(strict_json.dumps(calibration.to_json(), indent=2))
    else:
        print(render(calibration))
    return EXIT_COMPLETED


def calibrate_request(plan: RolloutPlan, request: Request, prometheus_url: str | None, workers: int | None = None, now: Callable[[], float] = time.time):
    """The calibration asked for; CalibrationRefused when the history has nothing to replay or no replay finished."""
    from console.calibrate.run import HistoryProblem, a_a_population, calibrate

    population = a_a_population(plan, request.canary_selector, request.stable_selector)
    try:
        calibration = calibrate(plan, request.from_wall, request.to_wall, request.every_s, population, prometheus_url, request.target, workers, now)
    except HistoryProblem as problem:
        raise CalibrationRefused(str(problem)) from None
    if not calibration.finished:
        raise CalibrationRefused(
            f"no replay finished: the history ends before {format_duration(plan.planned_duration)} (the plan's stages) past any start; choose an earlier --to"
        )
    return calibration
