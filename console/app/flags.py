"""`brahma flags FILE [VERB ...]`: the flag editor (no verb), or one flag change (or the list) from the
command line, no console. `create` makes the file when there is none yet. Every change is journaled in
the state dir's flags journal.

Exit codes: 0 done (or nothing to do), 1 the file could not be written (a folder Brahma may
not write in, a writer that never let go), 2 invalid input (unknown verb or flag, bad
percentage, a file that is not a flag document or is read-only). Messages name the file, and
the line for JSON errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from console.actor import current_actor
from console.app.exits import EXIT_COMPLETED as EXIT_OK
from console.app.exits import EXIT_ERROR as EXIT_WRITE_FAILED
from console.app.exits import EXIT_INVALID
from console.atomic import write_refusal
from console.flags.backends import FileBackend
from console.flags.errors import FlagError, FlagFileError, VersionConflict
from console.flags.model import NEW_FLAG_KEY, Flag, FlagChange
from console.flags.store import ChangeResult, FlagStore
from console.journal.events import FlagChanged
from console.journal.journal import Journal
from console.journal.state_dir import StateDir
from console.narrate import flag_change

USAGE = "usage: brahma flags FILE [list | enable NAME | disable NAME | set NAME PERCENT | allow NAME USER | disallow NAME USER | create NAME | kill [NAME...]]"
Record = Callable[[tuple[FlagChange, ...]], None]


def run_flags(path: str, argv: list[str], state_dir: Path) -> int:
    """The editor on the flag file when no verb is given, or the verb; either way journaled in the state dir."""
    journal = Journal(StateDir(state_dir).flags_journal)
    try:
        if not argv:
            from console.tui.flags_app import FlagEditorApp

            return FlagEditorApp(FlagStore(FileBackend(path)), journal).run() or EXIT_OK

        def record(changes: tuple[FlagChange, ...]) -> None:
            for change in changes:
                journal.append(FlagChanged.of(0.0, change))

        return run_flags_command(path, argv, current_actor(), sys.stdout, sys.stderr, record)
    finally:
        journal.close()


def run_flags_command(path: str, argv: list[str], actor: str, out: TextIO, err: TextIO, record: Record = lambda changes: None) -> int:
    """Run one `brahma flags FILE ...` verb (no verb: list) and return the exit code; `record` journals the changes."""
    verb, args = (argv[0], argv[1:]) if argv else ("list", [])
    if not Path(path).is_file() and not (verb == "create" and not Path(path).exists()):
        err.write(f"{path}: no such file" + (" (create NAME makes it, with the flag off)" if not Path(path).exists() else "") + "\n")
        return EXIT_INVALID
    if not Path(path).exists() and (refusal := write_refusal(Path(os.path.realpath(path)))):
        err.write(f"{path}: cannot be created: {refusal}\n")
        return EXIT_INVALID
    store = FlagStore(FileBackend(path))
    reason = f"brahma flags {' '.join(argv)}"
    try:
        if verb == "list" and not args:
            out.write(format_table(store.list()))
            return EXIT_OK
        if verb == "kill":
            return _kill(store, args, actor, reason, out, err, record)
        result = _change(store, verb, args, actor, reason)
    except FlagFileError as error:
        err.write(f"{error}\n")
        return EXIT_INVALID
    except FlagError as error:
        err.write(f"{path}: {error}\n")
        return EXIT_INVALID
    except (VersionConflict, OSError) as error:
        err.write(f"{path}: not changed: {error}\n")
        return EXIT_WRITE_FAILED
    if result is None:
        err.write(f"{USAGE}\n")
        return EXIT_INVALID
    _report(result, out, record)
    return EXIT_OK


def _change(store: FlagStore, verb: str, args: list[str], actor: str, reason: str) -> ChangeResult | None:
    """Make the change the verb names; None when the verb or its arguments are not a known form."""
    match verb, args:
        case "enable", [name]:
            return store.enable(name, actor=actor, reason=reason)
        case "disable", [name]:
            return store.disable(name, actor=actor, reason=reason)
        case "set", [name, percent]:
            return store.set_percentage(name, _parse_percentage(percent), actor=actor, reason=reason)
        case "allow", [name, user]:
            return store.allow(name, user, actor=actor, reason=reason)
        case "disallow", [name, user]:
            return store.disallow(name, user, actor=actor, reason=reason)
        case "create", [name]:
            return store.create(name, actor=actor, reason=reason)
    return None


def format_table(flags: tuple[Flag, ...]) -> str:
    """The flags as a plain text table: name, state, rollout, allowed users, notes."""
    rows = [("NAME", "STATE", "ROLLOUT", "ALLOWED USERS", "NOTES")]
    for flag in flags:
        notes = [note for note, present in (("new", flag.new), ("read-only", flag.read_only)) if present]
        rows.append(
            (
                flag.name,
                "enabled" if flag.enabled else "disabled",
                "-" if flag.percentage is None else f"{flag.percentage}%",
                ", ".join(flag.allowed_users) or "-",
                ", ".join(notes),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)


def _kill(store: FlagStore, names: list[str], actor: str, reason: str, out: TextIO, err: TextIO, record: Record) -> int:
    """Disable the named flags; with no names, every flag marked new (metadata brahma.new) Brahma may change."""
    if names:
        _report(store.kill(names, actor=actor, reason=reason), out, record)
        return EXIT_OK
    new_flags = [flag for flag in store.list() if flag.new]
    read_only = [flag.name for flag in new_flags if flag.read_only]
    for name in read_only:
        err.write(f"{store.backend.source}: {name}: marked new but its targeting is not Brahma's; not disabled\n")
    if not new_flags:
        out.write(f"no flag is marked new (metadata {NEW_FLAG_KEY!r}): nothing to disable\n")
    else:
        editable = [flag.name for flag in new_flags if not flag.read_only]
        _report(store.kill(editable, actor=actor, reason=reason), out, record)
    return EXIT_INVALID if read_only else EXIT_OK


def _report(result: ChangeResult, out: TextIO, record: Record) -> None:
    record(result.changes)
    if not result.changes:
        out.write("no change: the file already says so\n")
    for change in result.changes:
        out.write(f"{change.flag}: {flag_change(change.old or {}, change.new)}\n")
    if result.note:
        out.write(f"({result.note})\n")


def _parse_percentage(text: str) -> int:
    try:
        return int(text.strip().removesuffix("%"))
    except ValueError:
        raise FlagError(f"rollout percentage must be a whole number from 0 to 100, not {text!r}") from None
