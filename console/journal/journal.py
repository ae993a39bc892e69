"""The journal: append-only JSON lines, one event each, fsync'd, so a crash at any instant loads.

A process killed mid-write leaves at most one incomplete last line; loading drops it and the next
append starts on a fresh line. A broken line anywhere else is corruption and is reported with its
line number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from console.atomic import fsync_directory
from console.private_files import make_state_dir, open_private
from console.journal.events import Event, event_from_dict


class JournalError(Exception):
    """A journal that cannot be read: names the file and line."""


def read_events(path: str | Path) -> Iterator[Event]:
    """The events of a journal, in order; an incomplete last line (a crash mid-write) is left out."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise JournalError(f"{path}: cannot read: {error.strerror or error}") from None
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            event = event_from_dict(data)
        except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: JSON nested past the parser
            if number == len(lines):
                return  # the last write of a killed process
            raise JournalError(f"{path}:{number}: not a journal event: {error}") from None
        yield event


class Journal:
    """An open journal: events are appended and fsync'd one by one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        make_state_dir(self.path.parent)
        new = not self.path.exists()
        self._file = os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab")
        self._drop_incomplete_tail()
        if new:
            fsync_directory(self.path.parent)

    def _drop_incomplete_tail(self) -> None:
        self.count = 0
        """Events in the journal: its whole lines."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with open(self.path, "rb") as file:
            content = file.read()
        keep = content.rfind(b"\n") + 1
        if keep != size:
            os.truncate(self.path, keep)
        self.count = content.count(b"\n", 0, keep)

    def append(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False, default=str) + "\n"
        self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.count += 1

    def close(self) -> None:
        self._file.close()
