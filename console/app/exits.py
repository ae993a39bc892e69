"""The process's exit codes, and what each way a run can end means for them.

The domain says how a rollout ended (its phase); only the application turns that into an exit code.
"""

from __future__ import annotations

from console.journal.state import Phase

EXIT_COMPLETED = 0
"""Promoted to 100% and the monitoring window held (and, for the commands that change nothing, done)."""
EXIT_ERROR = 1
"""An internal error, or a failure outside the input: a cluster that says no, a flag file that could not be written."""
EXIT_INVALID = 2
"""Invalid input: a plan, a scenario, arguments, a journal that is another plan's or is corrupt."""
EXIT_ROLLED_BACK = 3
EXIT_GATE_FAILED = 4
"""The pre-flight gate failed: nothing changed."""
EXIT_ROLLBACK_UNVERIFIED = 5
"""Stopped (SIGTERM, ctrl+c) while the target did not read back the rollback as done: it may still serve the new version."""
EXIT_INTERRUPTED = 130
"""Stopped by the operator (ctrl+c, SIGTERM, quitting brahma demo mid-rollout) with the rollout unfinished: the
journal keeps where it was."""

OUTCOMES = {
    Phase.COMPLETED: EXIT_COMPLETED,
    Phase.ROLLED_BACK: EXIT_ROLLED_BACK,
    Phase.GATE_FAILED: EXIT_GATE_FAILED,
    Phase.ROLLING_BACK: EXIT_ROLLBACK_UNVERIFIED,
}
"""How a rollout that stopped in each phase ends the process; any other phase is an internal error."""


def exit_code(phase: Phase) -> int:
    """The exit code of a run whose controller stopped with its rollout in `phase`."""
    return OUTCOMES.get(phase, EXIT_ERROR)


def console_exit_code(phase: Phase, detached: bool) -> int:
    """The exit code of a console that left its rollout in `phase`.

    A finished rollout's console exits with its outcome. Leaving one under way, a console detaches (0:
    its controller goes on supervising), or stops the controller inside it (brahma demo: interrupted),
    which leaves an open rollback unverified (5)."""
    if phase in OUTCOMES and (phase != Phase.ROLLING_BACK or not detached):
        return exit_code(phase)
    return EXIT_COMPLETED if detached else EXIT_INTERRUPTED


def demo_exit_code(code: int) -> int:
    """`brahma demo` exits 0 however the demonstrated rollout ended (a rollback is one of the things it shows,
    not a failure of the demo: `make demo` does not fail on it); only bad input (2) or an internal error (1) are not 0."""
    return code if code in (EXIT_ERROR, EXIT_INVALID) else EXIT_COMPLETED
