"""The `flags` check: the release's flags exist in the flag file and are disabled (deploy dark).

On `brahma run` the controller creates the plan's missing flags, disabled, just before the gate,
so there this check proves the file is readable and nobody switched a flag on early. Alone
(`brahma preflight`) nothing is created, so a missing flag fails and says who would create it.
"""

from __future__ import annotations

import asyncio

from console.flags.backends import FileBackend
from console.flags.errors import FlagError
from console.flags.model import Flag
from console.flags.store import FlagStore
from console.plan.model import PreflightSpec
from console.preflight.context import PreflightContext


def flag_names(item: PreflightSpec, context: PreflightContext) -> list[str]:
    """The item's own list, or the plan's flags created for this release."""
    if item.flags is not None:
        return item.flags
    return [spec.name for spec in context.plan.flags if spec.new]


def judge_flags(names: list[str], flags: tuple[Flag, ...], created_by_run: set[str]) -> tuple[bool, list[str]]:
    """(every named flag exists and is off, one line per flag)."""
    by_name = {flag.name: flag for flag in flags}
    lines, passed = [], True
    for name in names:
        flag = by_name.get(name)
        if flag is None:
            passed = False
            hint = " (brahma run creates it disabled before the gate)" if name in created_by_run else ""
            lines.append(f"{name}: missing{hint}")
        elif flag.enabled:
            passed = False
            share = f" at {flag.percentage}%" if flag.percentage is not None else ""
            lines.append(f"{name}: ENABLED{share}: switch it off until the release is out")
        else:
            lines.append(f"{name}: disabled")
    return passed, lines


async def check_flags_disabled(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    names = flag_names(item, context)
    if not names:
        return False, "no flags to check: the plan has no flags marked new and the item names none"
    path = context.flags_path
    if path is None:
        return False, "no flag file: set flags_file in the plan"
    flags: tuple[Flag, ...] = ()
    if path.is_file():
        try:
            flags = await asyncio.to_thread(FlagStore(FileBackend(path)).list)
        except FlagError as error:
            return False, str(error)
    passed, lines = judge_flags(names, flags, {spec.name for spec in context.plan.flags})
    header = f"{path}:" if path.is_file() else f"{path}: no such flag file yet"
    return passed, "\n".join([header, *lines])
