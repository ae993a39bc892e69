"""The console opened on a rollout: its keymap read, and how it was left turned into the exit code.

Textual is imported here only when a console opens, so headless runs never load it."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from console.app.exits import EXIT_COMPLETED, EXIT_ERROR, console_exit_code, demo_exit_code
from console.app.problems import refuse
from console.journal.state import Phase
from console.rollout import Rollout, close_rollout

if TYPE_CHECKING:
    from console.tui.app import Arriving

SHUTDOWN_GRACE_S = 3.0
"""How long Textual may take to give the terminal back once the console has done its own leaving (it takes
well under a second); a process still there then is ended by the last resort below."""


def open_console(
    rollout: Rollout | None, *, read_only: bool = False, demo: bool = False, keymap_path: Path | None = None, arriving: Arriving | None = None
) -> int:
    """The console on `rollout` (or, opened at once, on the one `arriving`) until it is left; the exit code. A console
    left before its rollout arrived (or on none) exits 0: its opener says what became of the rollout."""
    from console.tui.app import binding_ids, make_app
    from console.tui.keymap import KeymapError, default_keymap_path, load_keymap

    try:
        keymap = load_keymap(keymap_path or default_keymap_path(), binding_ids())
    except KeymapError as error:
        return refuse(str(error))

    def leaving_code(phase: Phase) -> int:
        code = console_exit_code(phase, app.rollout is not None and app.rollout.detached)
        return demo_exit_code(code) if demo else code

    app = make_app(rollout, read_only=read_only, demo=demo, keymap=keymap, arriving=arriving)
    app.on_leaving = lambda phase: end_unless_gone_within(SHUTDOWN_GRACE_S, leaving_code(phase))
    phase = app.run()
    shown = app.rollout
    if shown is None:
        return EXIT_ERROR if app.return_code else EXIT_COMPLETED
    if phase is None:
        # The app ended without shutting down (a crash): close what it left open.
        if not shown.detached:
            asyncio.run(close_rollout(shown))
        return EXIT_ERROR
    return console_exit_code(phase, shown.detached)


def end_unless_gone_within(seconds: float, code: int) -> None:
    """The last resort of a console that has left: the process ends with `code` if it is still here in `seconds`.

    Textual writes to the terminal through a thread with a bounded queue. When the terminal dies as the
    console leaves (the tmux server killed, an SSH drop), that thread dies on EIO, the queue fills, and
    Textual's shutdown waits on it forever: at 0% CPU, holding the rollout's lock. By the time this is
    armed nothing of Brahma's is left to do: the controller has stopped, the journal is closed (fsync'd),
    the report written, and the lock is an flock, which the kernel drops with the process. So os._exit,
    from a daemon thread (a process that ends in time never waits for it)."""
    timer = threading.Timer(seconds, os._exit, (code,))
    timer.daemon = True
    timer.start()
