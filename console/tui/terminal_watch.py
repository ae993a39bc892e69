"""Whether the console still has a terminal: a console nobody can see must not run on.

A terminal goes without a word when the program started under something that keeps the hang-up
to itself: `make demo` in tmux, then the tmux server killed. make gets the SIGHUP; brahma, its
child, gets nothing, and its input reads end-of-file at once, over and over, on a deleted pty: a
core kept busy forever, with the demo's controller inside. So the console looks for itself: its
terminal answering I/O errors, its parent gone (it was re-parented), or a SIGHUP of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import termios
from collections.abc import Callable

from textual.app import App

CHECK_S = 0.25
"""How often a console makes sure it still has a terminal (it leaves within a second of losing it)."""


class TerminalWatch:
    """Tells, when asked, why the console's terminal is gone; None while it is there."""

    def __init__(self, descriptor: int | None = None):
        if descriptor is None:
            descriptor = sys.__stdin__.fileno() if sys.__stdin__ is not None else -1
        self.descriptor = descriptor
        self.watched = descriptor >= 0 and os.isatty(descriptor)
        """Only a console on a terminal is watched (a test's console has none to lose)."""
        self.parent = os.getppid()

    def gone(self) -> str | None:
        if not self.watched:
            return None
        try:
            termios.tcgetattr(self.descriptor)  # a hung-up terminal answers EIO
        except (termios.error, OSError) as error:
            return f"its terminal answers {error.args[-1] if error.args else error}"
        if os.getppid() != self.parent:
            return f"the process that started it (pid {self.parent}) is gone"
        return None


def watch_terminal(app: App, gone: Callable[[str], None]) -> None:
    """Call `gone(why)` once nobody can see `app`: its terminal gone, its parent gone, or a SIGHUP."""
    watch = TerminalWatch()
    if app.is_headless or not watch.watched:
        return

    def check() -> None:
        if (why := watch.gone()) is not None:
            gone(why)

    app.set_interval(CHECK_S, check)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # under nohup, the hang-up stays ignored
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gone, "it was sent SIGHUP")
