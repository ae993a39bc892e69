"""The journal: append-only JSON lines, one event each, so a crash at any instant loads.

Every line reaches the operating system as it is appended (a killed process loses nothing). It reaches
the disk by group commit: `sync()` before the controller acts on the target or the flag store, at once
for a rollback and a rollout's end, and otherwise at most once per `sync_every_s`; a machine that goes
down loses at most the samples since, which the next run takes again.

A process killed mid-write leaves at most one incomplete last line; loading drops it and the next
append starts on a fresh line. A broken line anywhere else is corruption and is reported with its
line number.

A journal is continued in segments: when the live file NAME.jsonl would pass the segment size
(BRAHMA_JOURNAL_SEGMENT_MB, 64 MB), its lines are closed as NAME.jsonl.N.gz (N = 1, 2, ... in order) and the
live file starts again with the next event. Readers read the segments, then the live file, as one journal.
A rollover writes the segment whole (atomically) before the live file is replaced (atomically, holding the
next event): killed between the two, the live file is the last segment over again, which readers recognise
and read as empty, and the next open finishes the rollover. So no event is lost or read twice at any moment.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from console import strict_json
from console.atomic import atomic_write, fsync_directory
from console.journal.events import FINAL_EVENTS, Event, RollbackStarted, event_from_dict
from console.journal.state_dir import journal_segment, journal_segment_numbers
from console.private_files import PRIVATE_FILE_MODE, make_state_dir, open_private

SYNCED_AT_ONCE = frozenset({*FINAL_EVENTS, RollbackStarted.name})
"""Events on disk as soon as they are journaled: a rollback decided, and a rollout's end."""

SEGMENT_MB_VARIABLE = "BRAHMA_JOURNAL_SEGMENT_MB"
DEFAULT_SEGMENT_MB = 64.0
MB = 1 << 20
_CHUNK = 1 << 20
"""Bytes read at a time when a segment is written or compared: a segment is never in memory uncompressed."""
COMPRESS_LEVEL = 1
"""gzip's fastest: a 64 MB rollover in about a third of a second of the controller's time (level 6 takes three times
as long for a file a quarter smaller)."""


class JournalError(Exception):
    """A journal that cannot be read: names the file and line."""


SAMPLE_LINE = b'{"event":"sample",'
"""How a sample's line begins: the journal writes compact JSON, the event's name first (strict_json.line)."""


def segment_bytes_from_environment() -> int:
    """The live file's size past which it is closed as a segment: BRAHMA_JOURNAL_SEGMENT_MB, else 64 MB."""
    text = os.environ.get(SEGMENT_MB_VARIABLE, "").strip()
    if not text:
        return int(DEFAULT_SEGMENT_MB * MB)
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise JournalError(f"{SEGMENT_MB_VARIABLE}={text!r}: expected a positive number of megabytes")
    return max(1, int(megabytes * MB))


@dataclass(frozen=True)
class Position:
    """A place in a journal, between two events: how a snapshot, or a replay, starts after what it has."""

    events: int
    """Events before it, in the whole journal."""
    segments: int
    """Closed segments before the live file it was in when it was taken."""
    lines: int
    """Lines before it in that live file."""
    bytes: int
    """The bytes of those lines."""


def closed_segments(journal: Path) -> list[Path]:
    """The journal's closed segments in order; JournalError when one in the middle is missing."""
    numbers = journal_segment_numbers(journal)
    for expected, number in enumerate(numbers, start=1):
        if number != expected:
            raise JournalError(f"{journal_segment(journal, expected)}: missing (the journal has segments up to {numbers[-1]})")
    return [journal_segment(journal, number) for number in numbers]


def _damaged(segment: Path, error: BaseException) -> JournalError:
    return JournalError(f"{segment}: a damaged journal segment: {error}")


def segment_lines(segment: Path) -> Iterator[bytes]:
    """A closed segment's lines, each with its newline; JournalError naming it when it is damaged or cut short."""
    try:
        with gzip.open(segment, "rb") as file:
            for number, line in enumerate(file, start=1):
                if not line.endswith(b"\n"):
                    raise JournalError(f"{segment}:{number}: a damaged journal segment: its last line is cut short")
                yield line
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; EOFError: the gzip stream cut short
        raise _damaged(segment, error) from None


def _segment_size(segment: Path) -> int:
    """The size of a segment's lines as its gzip trailer tells it (modulo 4 GiB), without reading it through."""
    try:
        with open(segment, "rb") as file:
            file.seek(-4, os.SEEK_END)
            return int.from_bytes(file.read(4), "little")
    except OSError as error:
        raise _damaged(segment, error) from None


def _repeats_segment(live: BinaryIO, segment: Path) -> bool:
    """Whether the live file holds exactly the last segment's lines: a rollover caught (or killed) after it
    wrote the segment and before it replaced the live file. The trailer's size rules out every other case cheaply."""
    size = os.fstat(live.fileno()).st_size
    if size == 0 or _segment_size(segment) != size % (1 << 32):
        return False
    live.seek(0)
    try:
        with gzip.open(segment, "rb") as closed:
            while True:
                chunk = live.read(_CHUNK)
                if chunk != closed.read(len(chunk) or 1):
                    return False
                if not chunk:
                    return True
    except (OSError, EOFError, zlib.error) as error:
        raise _damaged(segment, error) from None
    finally:
        live.seek(0)


def _open_journal(path: Path) -> tuple[list[Path], BinaryIO]:
    """The closed segments and the live file, opened so that they are one journal whatever a rollover does
    meanwhile: the live file first, then the segments listed (one the open live file was closed as shows it up)."""
    try:
        live: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by whoever reads it)
    except OSError as error:
        raise JournalError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        segments = closed_segments(path)
        if segments and _repeats_segment(live, segments[-1]):
            live.close()
            live = io.BytesIO()
    except BaseException:
        live.close()
        raise
    return segments, live


def _numbered_lines(path: Path, segments: list[Path], live: BinaryIO) -> Iterator[tuple[Path, int, bytes]]:
    """Every line of the journal with the file it is in and its number there: the segments', then the live file's."""
    with live:
        for segment in segments:
            for number, line in enumerate(segment_lines(segment), start=1):
                yield segment, number, line
        for number, line in enumerate(live, start=1):
            yield path, number, line


def read_events(path: str | Path, last_sample_only: bool = False) -> Iterator[Event]:
    """The events of a journal, its segments and its live file, in order, read a line at a time (a week's
    journal is never in memory at once); an incomplete last line (a crash mid-write) is left out.
    `last_sample_only`: of the samples, most of a long journal, only the last (the fleet's rows need no more)."""
    path = Path(path)
    segments, live = _open_journal(path)
    lines = _numbered_lines(path, segments, live)
    return _last_sample_only(lines) if last_sample_only else _parsed(lines)


def _parsed(lines: Iterator[tuple[Path, int, bytes]]) -> Iterator[Event]:
    for path, number, line in lines:
        if line.strip():
            event = _parse_line(path, number, line)
            if event is None:
                return  # the last write of a killed process
            yield event


def _last_sample_only(lines: Iterator[tuple[Path, int, bytes]]) -> Iterator[Event]:
    """The events with, of the samples, only the last, in one pass over the journal: a sample's line is kept
    unparsed, and the events after it held back, until a later sample replaces it or the journal ends."""
    held: tuple[Path, int, bytes] | None = None
    after_held: list[Event] = []
    for path, number, line in lines:
        if line.startswith(SAMPLE_LINE):
            if line.endswith(b"\n"):  # a last line cut short by a crash is no sample
                yield from after_held
                held, after_held = (path, number, line), []
            continue
        if line.strip():
            event = _parse_line(path, number, line)
            if event is None:
                break  # the last write of a killed process
            if held is None:
                yield event
            else:
                after_held.append(event)
    if held is not None:
        yield _parse_line(*held)  # type: ignore[misc] (a whole line: never None)
    yield from after_held


def _parse_line(path: Path, number: int, line: bytes) -> Event | None:
    """The event on a line; None for a last line a crash cut short; JournalError for any other broken line."""
    try:
        return event_from_dict(json.loads(line.rstrip(b"\n")))  # without it: the error says where in the line, as it always has
    except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: JSON nested past the parser
        if not line.endswith(b"\n"):
            return None
        raise JournalError(f"{path}:{number}: not a journal event: {error}") from None


@dataclass
class Continuation:
    """A journal read from a position: what the file the position lies in says of it, and the events after it."""

    first_line: bytes
    """The first line of the file the position lies in."""
    line_before: bytes
    """The `line_bytes` before the position in that file (fewer when the file is shorter)."""
    events: Iterator[Event]
    """The journal's events after the position: the rest of that file, then the files after it."""


def read_after(path: str | Path, position: Position, line_bytes: int) -> Continuation:
    """The journal from `position`. When no segment was closed since it was taken, it is in the live file, sought
    to; else in the segment its live file became, read from that segment's start. JournalError when the journal
    cannot be read; a Continuation whose line_before is short when the journal does not reach the position."""
    path = Path(path)
    segments, live = _open_journal(path)
    if position.segments > len(segments):
        live.close()
        return Continuation(b"", b"", iter(()))
    if position.segments == len(segments):
        first = live.readline()
        live.seek(max(0, position.bytes - line_bytes))
        before = live.read(min(line_bytes, position.bytes))
        rest = ((path, number, line) for number, line in enumerate(live, start=position.lines + 1))
        return Continuation(first, before, _parsed(_closing(live, rest)))
    segment = segments[position.segments]
    lines = segment_lines(segment)
    first, before, read = b"", b"", 0
    try:
        for line in itertools.islice(lines, position.lines):
            first, before, read = first or line, (before + line)[-line_bytes:], read + len(line)
    except BaseException:
        live.close()
        raise
    if read != position.bytes:
        live.close()
        return Continuation(first, b"", iter(()))

    def rest() -> Iterator[tuple[Path, int, bytes]]:
        with live:
            for number, line in enumerate(lines, start=position.lines + 1):
                yield segment, number, line
            yield from _numbered_lines(path, segments[position.segments + 1 :], live)

    return Continuation(first, before, _parsed(rest()))


def _closing(file: BinaryIO, lines: Iterator[tuple[Path, int, bytes]]) -> Iterator[tuple[Path, int, bytes]]:
    with file:
        yield from lines


def read_lines(path: str | Path, start: int, known: list[Position]) -> Iterator[tuple[int, bytes]]:
    """The journal's lines from event `start` on, as they are on disk, each with its number. A known position at
    or before `start` in the live file (no segment closed since it was taken) is sought to, rather than the journal
    read through."""
    path = Path(path)
    segments, live = _open_journal(path)
    usable = [position for position in known if position.segments == len(segments) and position.events <= start]
    if usable:
        begin = max(usable, key=lambda position: position.events)
        live.seek(begin.bytes)
        numbered: Iterator[bytes] = _closing_lines(live)
        first = begin.events
    else:
        numbered = (line for _, _, line in _numbered_lines(path, segments, live))
        first = 0
    for number, line in enumerate(numbered, start=first):
        if number >= start:
            yield number, line


def _closing_lines(file: BinaryIO) -> Iterator[bytes]:
    with file:
        yield from file


class Journal:
    """An open journal: events are appended, and fsync'd in groups (every one when `sync_every_s` is 0); the live
    file is closed as a segment when it would pass `segment_bytes` (BRAHMA_JOURNAL_SEGMENT_MB by default)."""

    def __init__(
        self,
        path: str | Path,
        sync_every_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        segment_bytes: int | None = None,
        events: int | None = None,
    ):
        """`events`: how many the journal holds, from a caller that has just read it all (a controller resuming
        it), so that the closed segments are not read through again to count theirs."""
        self.path = Path(path)
        self.sync_every_s = sync_every_s
        self.segment_bytes = segment_bytes or segment_bytes_from_environment()
        self._monotonic = monotonic
        self._synced_at = -float("inf")
        self._unsynced = False
        make_state_dir(self.path.parent)
        segments = closed_segments(self.path)
        new = not self.path.exists()
        if segments and new:  # appended to, the segments would be taken for the new journal's beginning
            raise JournalError(
                f"{self.path}: missing, though its segments are there ({segments[0].name} to {segments[-1].name}): restore it, or move them aside"
            )
        if segments:
            with open(self.path, "rb") as live:
                repeated = _repeats_segment(live, segments[-1])
            if repeated:  # a rollover killed after it closed the segment: finished here
                atomic_write(self.path, b"", new_mode=PRIVATE_FILE_MODE)
        self.segments = len(segments)
        """Closed segments: the live file is the next."""
        self._file = os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab")
        self._drop_incomplete_tail()
        if segments and events is not None and events >= self.lines:
            self.segment_events = events - self.lines
            """Events in the closed segments."""
        else:
            self.segment_events = sum(sum(1 for _ in segment_lines(segment)) for segment in segments)
        if new:
            fsync_directory(self.path.parent)

    def _drop_incomplete_tail(self) -> None:
        self.lines = 0
        """Events in the live file: its whole lines."""
        self.size = 0
        """Bytes of those lines: where the next event is written."""
        self.first_line = self.last_line = b""
        """The live file's first and last whole lines (a snapshot names the journal and the position it covers by them)."""
        with open(self.path, "rb") as file:
            for line in file:  # a line at a time: a segment is never in memory at once
                if not line.endswith(b"\n"):
                    break  # the incomplete last write of a killed process
                self.lines, self.size = self.lines + 1, self.size + len(line)
                self.first_line, self.last_line = self.first_line or line, line
        if self.size != self.path.stat().st_size:
            os.truncate(self.path, self.size)

    @property
    def count(self) -> int:
        """Events in the journal, its segments' and the live file's."""
        return self.segment_events + self.lines

    @property
    def position(self) -> Position:
        """After the last event appended."""
        return Position(self.count, self.segments, self.lines, self.size)

    @property
    def live_start(self) -> Position:
        """The live file's start: a replay of events after it need not open a segment."""
        return Position(self.segment_events, self.segments, 0, 0)

    def append(self, event: Event) -> None:
        line = strict_json.line(event.to_dict())
        if self.size and self.size + len(line) > self.segment_bytes:
            self._roll_over(line)
        else:
            self._file.write(line)
            self._file.flush()
            self._unsynced = True
        self.lines += 1
        self.size += len(line)
        self.first_line, self.last_line = self.first_line or line, line
        if event.name in SYNCED_AT_ONCE or self._monotonic() >= self._synced_at + self.sync_every_s:
            self.sync()

    def _roll_over(self, line: bytes) -> None:
        """The live file closed as the next segment, then replaced by one holding `line` (both on disk before this returns)."""
        atomic_write(journal_segment(self.path, self.segments + 1), self._compressed_live_file(), new_mode=PRIVATE_FILE_MODE)
        self._file.close()
        atomic_write(self.path, line)  # the live file's mode is kept
        self._file = os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab")
        self.segments, self.segment_events = self.segments + 1, self.count
        self.lines, self.size, self.first_line = 0, 0, b""
        self._unsynced, self._synced_at = False, self._monotonic()

    def _compressed_live_file(self) -> bytes:
        compressed = io.BytesIO()
        with open(self.path, "rb") as live, gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as closed:
            while chunk := live.read(_CHUNK):
                closed.write(chunk)
        return compressed.getvalue()

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
