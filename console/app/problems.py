"""Saying what went wrong, on stderr, and with which exit code: every problem the command line reports is told here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.app.exits import EXIT_ERROR, EXIT_INVALID
from console.controller.identity import ResumeRefused
from console.journal.journal import JournalError
from console.plan.problems import PlanError
from console.targets.base import TargetError

if TYPE_CHECKING:
    from console.journal.state import RolloutState
    from console.plan.model import RolloutPlan
    from console.supervisor.client import SupervisorUnavailable


class UsageError(Exception):
    """Arguments that do not fit together (exit 2)."""


REFUSALS = (PlanError, UsageError, ResumeRefused, JournalError, TargetError)
"""Why a rollout may not be built: bad input (a plan, a scenario, arguments, a journal that is another
plan's or is corrupt) or a cluster that says no."""


def report_internal_error(error: Exception, state_dir: Path) -> int:
    """What nothing else caught, as the last guard tells it (called where it is caught): one line, the trace in the state dir's error log."""
    import os
    import traceback

    from console.journal.state_dir import StateDir
    from console.private_files import open_private

    where = StateDir(state_dir)
    try:
        where.make()
        with open(open_private(where.error_log, os.O_WRONLY | os.O_TRUNC), "w") as file:
            file.write(traceback.format_exc())
        details = f" (details in {where.error_log})"
    except OSError:
        details = ""
    say(f"internal error: {type(error).__name__}: {error}{details}")
    return EXIT_ERROR


def say(message: str) -> None:
    print(f"brahma: {message}", file=sys.stderr)


def refuse(message: str) -> int:
    """Say why the input cannot be taken; exit 2."""
    say(message)
    return EXIT_INVALID


def say_problems(error: PlanError) -> int:
    """Every problem of a plan (or scenario) as PATH:LINE: field: message; exit 2."""
    for problem in error.problems:
        print(problem, file=sys.stderr)
    return EXIT_INVALID


def say_warnings(plan: RolloutPlan) -> None:
    for warning in plan.warnings:
        print(warning.as_warning(), file=sys.stderr)


def report_refusal(error: Exception) -> int:
    """Say why the rollout was not built; its exit code (2 for input, 1 for the cluster)."""
    if isinstance(error, PlanError):
        return say_problems(error)
    say(str(error))
    return EXIT_ERROR if isinstance(error, TargetError) else EXIT_INVALID


def report_unavailable(error: SupervisorUnavailable) -> int:
    """Say why no controller answers; exit 2 when the one started refused its input (a plan, a journal) or the
    operator must give what it needs, 1 otherwise."""
    say(str(error))
    return EXIT_INVALID if error.refused or error.exit_code == EXIT_INVALID else EXIT_ERROR


def say_rollback_unverified(state: RolloutState) -> None:
    """The controller stopped with the rollback still open, so the target may serve the new version."""
    failure = f" ({state.rollback_failure.detail})" if state.rollback_failure else ""
    say(
        f"stopped with the rollback of {state.rollout} not verified on the target{failure}; the new version "
        "may still serve traffic: run the same command again to go on with the rollback"
    )
