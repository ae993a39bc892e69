"""The journal: append-only JSON lines, one event each, so a crash at any instant loads.

Every line reaches the operating system as it is appended (a killed process loses nothing). It reaches
the disk by group commit: `sync()` before the controller acts on the target or the flag store, at once
for a rollback and a rollout's end, and otherwise at most once per `sync_every_s`; a machine that goes
down loses at most the samples since, which the next run takes again.

A process killed mid-write leaves at most one incomplete last line; loading drops it and the next
append starts on a fresh line. A broken line anywhere else is corruption and is reported with its
line number.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from console import strict_json
from console.atomic import fsync_directory
from console.journal.events import FINAL_EVENTS, Event, RollbackStarted, event_from_dict
from console.private_files import make_state_dir, open_private

SYNCED_AT_ONCE = frozenset({*FINAL_EVENTS, RollbackStarted.name})
"""Events on disk as soon as they are journaled: a rollback decided, and a rollout's end."""


class JournalError(Exception):
    """A journal that cannot be read: names the file and line."""


SAMPLE_LINE = b'{"event":"sample",'
"""How a sample's line begins: the journal writes compact JSON, the event's name first (strict_json.line)."""


def read_events(path: str | Path, last_sample_only: bool = False) -> Iterator[Event]:
    """The events of a journal, in order, read a line at a time (a week's journal is never in memory at once);
    an incomplete last line (a crash mid-write) is left out.
    `last_sample_only`: of the samples, most of a long journal, only the last (the fleet's rows need no more)."""
    path = Path(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed by the generator it is handed to)
    except OSError as error:
        raise JournalError(f"{path}: cannot read: {error.strerror or error}") from None
    return _events_of_file(file, path, last_sample_only)


def _events_of_file(file: BinaryIO, path: Path, last_sample_only: bool) -> Iterator[Event]:
    with file:
        last_sample = None
        if last_sample_only:
            last_sample = 0  # its line number; none: no sample is kept
            for number, line in enumerate(file, start=1):
                if line.startswith(SAMPLE_LINE) and line.endswith(b"\n"):  # a last line cut short by a crash is no sample
                    last_sample = number
            file.seek(0)
        yield from parse_events(file, path, only_sample_at=last_sample)


def parse_events(lines: Iterable[bytes], path: Path, lines_before: int = 0, only_sample_at: int | None = None) -> Iterator[Event]:
    """The events of journal lines (each with its newline), read from `path` after its first `lines_before`
    lines (a snapshot's tail); `only_sample_at`: the samples left out but the one on that line."""
    for number, line in enumerate(lines, start=lines_before + 1):
        if not line.strip() or (only_sample_at is not None and number != only_sample_at and line.startswith(SAMPLE_LINE)):
            continue
        try:
            data = json.loads(line.rstrip(b"\n"))  # without it: the error says where in the line, as it always has
            event = event_from_dict(data)
        except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: JSON nested past the parser
            if not line.endswith(b"\n"):
                return  # the last write of a killed process
            raise JournalError(f"{path}:{number}: not a journal event: {error}") from None
        yield event


class Journal:
    """An open journal: events are appended, and fsync'd in groups (every one when `sync_every_s` is 0)."""

    def __init__(self, path: str | Path, sync_every_s: float = 0.0, monotonic: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.sync_every_s = sync_every_s
        self._monotonic = monotonic
        self._synced_at = -float("inf")
        self._unsynced = False
        make_state_dir(self.path.parent)
        new = not self.path.exists()
        self._file = os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab")
        self._drop_incomplete_tail()
        if new:
            fsync_directory(self.path.parent)

    def _drop_incomplete_tail(self) -> None:
        self.count = 0
        """Events in the journal: its whole lines."""
        self.size = 0
        """Bytes of those lines: where the next event is written."""
        self.first_line = self.last_line = b""
        """The journal's first and last whole lines (a snapshot names the journal and the position it covers by them)."""
        with open(self.path, "rb") as file:
            for line in file:  # a line at a time: a week's journal is never in memory at once
                if not line.endswith(b"\n"):
                    break  # the incomplete last write of a killed process
                self.count, self.size = self.count + 1, self.size + len(line)
                self.first_line, self.last_line = self.first_line or line, line
        if self.size != self.path.stat().st_size:
            os.truncate(self.path, self.size)

    def append(self, event: Event) -> None:
        line = strict_json.line(event.to_dict())
        self._file.write(line)
        self._file.flush()
        self.count += 1
        self.size += len(line)
        self.first_line, self.last_line = self.first_line or line, line
        self._unsynced = True
        if event.name in SYNCED_AT_ONCE or self._monotonic() >= self._synced_at + self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        """Every event appended so far on disk (write-ahead: before the target or the flag store is touched)."""
        if self._unsynced and not self._file.closed:
            os.fsync(self._file.fileno())
            self._unsynced, self._synced_at = False, self._monotonic()

    def close(self) -> None:
        self.sync()
        self._file.close()


class ReplayJournal:
    """A journal kept by nobody, for a replay (brahma backtest and calibrate): what it is appended is counted and
    dropped, since a replay acts on a recording target only, so nothing needs writing ahead, and its events reach
    its listeners as they happen. A backtest whose journal is read afterwards (its --report) keeps a Journal."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        """Never opened: the name a Journal of this rollout would have."""
        self.count = 0

    def append(self, event: Event) -> None:
        self.count += 1

    def sync(self) -> None:
        """Nothing to write ahead: a replay touches no real target or flag store."""

    def close(self) -> None:
        """Nothing to close."""
