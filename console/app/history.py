"""`brahma history` and `brahma assess`: the past releases in state dirs, and the think step a plan is read through."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from console import strict_json
from console.app.exits import EXIT_COMPLETED
from console.app.problems import REFUSALS, refuse, report_refusal, say
from console.history.records import History, RollbackTimes, StateDirMissing, history_lines, read_history
from console.history.think_step import assessment_of
from console.journal.journal import JournalError


def _history(state_dirs: Sequence[Path], app: str | None) -> History | int:
    try:
        history = read_history(state_dirs, app)
    except StateDirMissing as error:
        return refuse(str(error))
    for problem in history.unreadable:
        say(f"left out: {problem}")
    return history


def run_history(app: str | None, state_dirs: Sequence[Path], json_out: bool) -> int:
    history = _history(state_dirs, app)
    if isinstance(history, int):
        return history
    if json_out:
        apps = {name: {"releases": [r.to_json() for r in history.of(name)], "rollbacks": RollbackTimes.of(history.of(name)).to_json()} for name in history.apps}
        print(strict_json.dumps({"apps": apps, "unreadable": history.unreadable}, indent=2))
    elif not history.releases:
        where = ", ".join(str(d) for d in state_dirs)
        print(f"no past release{f' of {app}' if app else ''} in {where}")
    else:
        print("\n".join(history_lines(history)))
    return EXIT_COMPLETED


def run_assess(plan_path: Path, state_dirs: Sequence[Path], json_out: bool, context: str | None) -> int:
    from console.plan import load_plan

    try:
        plan = load_plan(plan_path)
        missing = [d for d in state_dirs if d.exists() and not d.is_dir()]
        if missing:
            return refuse(f"{missing[0]}: not a directory")
        assessment = assessment_of(plan, state_dirs, context)
    except (*REFUSALS, JournalError) as error:
        return report_refusal(error)
    if json_out:
        print(strict_json.dumps(assessment.to_json(), indent=2))
    else:
        print(f"Think step for {plan.name} ({plan.app}, {plan.strategy}):")
        print("\n".join(f"  {line}" for line in assessment.lines()))
    sys.stdout.flush()
    return EXIT_COMPLETED
