"""`brahma backtest PLAN --at TIME`: the plan replayed over Prometheus history (console/backtest), printed as
`brahma run --headless` prints a rollout, with its exit codes (2 when the history ends first)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import requests

from console.actor import current_actor
from console.app.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID, exit_code
from console.app.problems import refuse, say, say_problems, say_warnings
from console.backtest.replay import GIVEN_BY, NOT_FINISHED, Replay, fetch_history, replay, replay_span
from console.backtest.selectors import Selector, SelectorError, parse_selector
from console.backtest.times import TimeError, format_wall, parse_time
from console.metrics.prometheus import PrometheusConfigError
from console.narrate import event_printer, rollout_clock
from console.plan import load_plan
from console.plan.model import RolloutPlan
from console.plan.problems import PlanError
from console.report import write_report
from console.units import format_duration


def run_backtest(
    plan_path: Path,
    at: str,
    prometheus_url: str | None,
    json_lines: bool,
    report: Path | None,
    canary_selector: str | None,
    stable_selector: str | None,
) -> int:
    try:
        plan = load_plan(plan_path, history_only=True)
    except PlanError as error:
        return say_problems(error)
    say_warnings(plan)
    now = time.time()
    try:
        start_wall = parse_time(at, now)
        selectors = {
            track: parse_selector(text, f"--{track}-selector") for track, text in (("canary", canary_selector), ("stable", stable_selector)) if text is not None
        }
    except (TimeError, SelectorError) as error:
        return refuse(str(error))
    url = prometheus_url or plan.metrics.prometheus.url
    try:
        return asyncio.run(_backtest(plan, start_wall, url, prometheus_url, selectors, json_lines, report))
    except PrometheusConfigError as error:
        return refuse(f"{plan.source}: {error}")
    except requests.ConnectionError:
        say(f"cannot reach Prometheus at {url}: the history could not be read")
        return EXIT_ERROR
    except KeyboardInterrupt:  # said here: brahma's own word for it is about resuming a rollout, and a replay has none to resume
        say("interrupted: the replay stopped; nothing was acted on")
        return EXIT_INTERRUPTED


async def _backtest(
    plan: RolloutPlan, start_wall: float, url: str, url_override: str | None, selectors: dict[str, Selector], json_lines: bool, report: Path | None
) -> int:
    end_wall = start_wall + replay_span(plan)
    fetched = await fetch_history(plan, start_wall, end_wall, url_override, selectors)
    if (missing := fetched.problem_at_start(start_wall, plan.interval, "--at", "replay")) is not None:
        await fetched.close()
        return refuse(missing)
    say(f"backtest of {plan.name}: its first stage as if started at {format_wall(start_wall)} (t 0:00), replayed on the history of {url}")
    _say_left_out(plan)
    with tempfile.TemporaryDirectory(prefix="brahma-backtest-") as state_dir:
        try:
            result = await replay(
                plan,
                start_wall,
                fetched,
                selectors,
                listeners=[event_printer(sys.stdout, json_lines)],
                state_dir=Path(state_dir),
                actor=f"brahma backtest of {format_wall(start_wall)} ({current_actor()})",
            )
        finally:
            await fetched.close()
        if report is not None and result.journal is not None:
            say(f"the runbook of the replay: {write_report(result.journal, report)}")
    _say_outcome(plan, start_wall, result)
    return replay_exit_code(result)


def replay_exit_code(result: Replay) -> int:
    """As `brahma run --headless` exits: 0 promoted, 3 rolled back; 2 when the history ended before the replay was decided."""
    return EXIT_INVALID if result.outcome == NOT_FINISHED else exit_code(result.phase)


def _say_left_out(plan: RolloutPlan) -> None:
    """What a backtest does not do, said once before the timeline."""
    if plan.preflight:
        names = ", ".join(item.name for item in plan.preflight)
        say(f"pre-flight not run (it would check today's world, not the one replayed); sign-offs taken as given: {names}")
    held = [stage.name for index, stage in enumerate(plan.stages) if plan.waits_for_promote(index)]
    if held:
        say(f"promotes taken as given (by {GIVEN_BY!r}) where a person would give them: {', '.join(held)}")
    if plan.flags or plan.notify:
        say("no flag is touched and no notification sent: the target is a recording one, nothing real is acted on")


def _say_outcome(plan: RolloutPlan, start_wall: float, result: Replay) -> None:
    if result.outcome == NOT_FINISHED:
        end = start_wall + result.history_end_t
        say(
            f"not finished: the history ends at {format_wall(end)} (t {rollout_clock(result.history_end_t)}), "
            f"before the replay of {plan.name} was decided ({format_duration(plan.planned_duration)} planned): choose an earlier --at"
        )
    else:
        said = {"promoted": "would have promoted", "rolled back": "would have rolled back"}[result.outcome]
        say(f"backtest: {plan.name} {said} (exit {replay_exit_code(result)})")
