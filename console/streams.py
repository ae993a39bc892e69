"""Output that can never end supervision: a stream whose reader has gone stops taking text, quietly.

`brahma run ... | head -3` closes the pipe after three lines. Python then raises BrokenPipeError at
the next write, which would unwind the controller in the middle of a stage and leave the traffic
where it was, unsupervised. Printing is the least of what a run does: once stdout or stderr is
gone, what would have been printed is dropped (the journal keeps every event) and the run goes on
to its end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TextIO


class GuardedStream:
    """`stream`, until writing to it fails (a closed pipe, a lost terminal, a full disk); then nothing.

    The descriptor is pointed at /dev/null once lost, so the interpreter's own last flush at exit, and
    children that inherited it, write nowhere instead of failing again.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lost: OSError | ValueError | None = None
        """Why writing stopped; None while the stream takes text."""
        self._listeners: list[Callable[[OSError | ValueError], None]] = []

    def on_lost(self, listener: Callable[[OSError | ValueError], None]) -> None:
        """Called once, when writing first fails."""
        self._listeners.append(listener)

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self.stream.write(text)
            except (OSError, ValueError) as error:  # ValueError: the stream was closed under us
                self._lose(error)
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as error:
                self._lose(error)

    def _lose(self, error: OSError | ValueError) -> None:
        self.lost = error
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass  # not a file (a test's StringIO), or already gone: this object's writes stop all the same
        for listener in self._listeners:
            listener(error)

    def isatty(self) -> bool:
        return self.lost is None and self.stream.isatty()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def guarded(stream: TextIO) -> GuardedStream:
    """`stream` guarded, once: a stream already guarded is returned as it is."""
    return stream if isinstance(stream, GuardedStream) else GuardedStream(stream)
