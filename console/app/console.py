"""The console opened on a rollout: its keymap read, and how it was left turned into the exit code.

Textual is imported here only when a console opens, so headless runs never load it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.app.exits import EXIT_ERROR, console_exit_code
from console.app.problems import refuse
from console.rollout import Rollout, close_rollout


def open_console(rollout: Rollout, *, read_only: bool = False, demo: bool = False, keymap_path: Path | None = None) -> int:
    from console.tui.app import binding_ids, make_app
    from console.tui.keymap import KeymapError, default_keymap_path, load_keymap

    try:
        keymap = load_keymap(keymap_path or default_keymap_path(), binding_ids())
    except KeymapError as error:
        return refuse(str(error))
    phase = make_app(rollout, read_only=read_only, demo=demo, keymap=keymap).run()
    if phase is None:
        # The app ended without shutting down (a crash): close what it left open.
        if not rollout.detached:
            asyncio.run(close_rollout(rollout))
        return EXIT_ERROR
    return console_exit_code(phase, rollout.detached)
