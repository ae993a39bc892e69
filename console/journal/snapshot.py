"""Snapshots: the folded state written beside the journal, so that a week of events is not read again.

The controller writes one every SNAPSHOT_EVERY_EVENTS events or SNAPSHOT_EVERY_S seconds, whichever comes
first (atomically: a temporary file fsync'd, then renamed). It records the position it covers (events in the
whole journal; the segments closed before the live file it was in, and lines and bytes in that file) and names
its journal by the digests of that file's first line and of the last line it covers. A reader whose journal
closed no segment since reads the live file's tail from there; otherwise it reads from the start of the segment
that file became, never from an older one.
Whoever reads the state (resume, attach, `brahma ls`) takes the snapshot and folds only the journal's tail
after it; a snapshot that cannot be read, or that does not match its journal (another rollout's, a journal
cut short or rewritten), is ignored with a line saying why, and the whole journal is folded.

Beside the state it keeps the last RECENT_EVENTS events that are not samples, and the last sample: what a
console shows of the past when it attaches (its event log, the last values) without the week before it.
The charts need nothing more: the state's own histories are bounded (HISTORY_LENGTH samples per metric,
and the judge's interval thinned to as many points over the whole rollout).

A rollout judged by the sequential judge keeps the judge's evidence beside the state (its e-processes' sums,
console/controller/sequential.py), so a resumed controller takes it up and replays only the samples after the
snapshot, not every sample of the rollout.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from console import strict_json
from console.atomic import atomic_write
from console.journal import events as ev
from console.journal.evidence import BandHistory, JudgeEvidence
from console.journal.journal import Journal, JournalError, Position, read_after, read_events
from console.journal.state import HISTORY_LENGTH, Phase, PreflightItemState, RolloutState
from console.journal.window import CountTotals, MetricTotals, RunningMean, WindowStats
from console.private_files import PRIVATE_FILE_MODE

SNAPSHOT_FORMAT = 1
SNAPSHOT_EVERY_EVENTS = 1_000
SNAPSHOT_EVERY_S = 60.0
"""A snapshot at most this many events, or seconds of the controller's own time, behind the journal: a
reader folds at most that tail (a few hundredths of a second), the writer spends a millisecond or two."""
RECENT_EVENTS = 500
"""Events other than samples a snapshot keeps for a console's event log (as many as the log shows)."""

Say = Callable[[str], None]


def say_on_stderr(line: str) -> None:
    print(f"brahma: {line}", file=sys.stderr, flush=True)


def snapshot_path(journal: Path) -> Path:
    """The snapshot beside a journal (state_dir.py names it: NAME.snapshot.json)."""
    from console.journal.state_dir import RolloutFiles  # state_dir reads states: imported here, not at the top

    return RolloutFiles.of_journal(journal).snapshot


def digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


# -- the state as plain JSON and back ---------------------------------------------------------


def _event_or_none(event: ev.Event | None) -> dict[str, Any] | None:
    return None if event is None else event.to_dict()


def _window(window: WindowStats) -> dict[str, Any]:
    return asdict(window)


def _window_from(plain: dict[str, Any]) -> WindowStats:
    metrics = {name: MetricTotals(RunningMean(**totals["canary"]), RunningMean(**totals["stable"])) for name, totals in plain["metrics"].items()}
    counts = {track: CountTotals(**totals) for track, totals in plain["counts"].items()}
    return WindowStats(plain["samples"], plain["conclusive"], plain["covered_s"], metrics, counts)


_TO_PLAIN: dict[str, Callable[[Any], Any]] = {
    "window": _window,
    "rollback_failure": _event_or_none,
    "start": _event_or_none,
    "alone_since": _event_or_none,
    "preflight": lambda items: {name: asdict(item) for name, item in items.items()},
    "history": lambda history: {metric: list(series) for metric, series in history.items()},
    "judge": lambda judge: {metric: asdict(evidence) for metric, evidence in judge.items()},
    "judge_history": lambda bands: {metric: band.to_plain() for metric, band in bands.items()},
}
_FROM_PLAIN: dict[str, Callable[[Any], Any]] = {
    "phase": Phase,
    "window": _window_from,
    "rollback_failure": lambda plain: None if plain is None else ev.event_from_dict(plain),
    "start": lambda plain: None if plain is None else ev.event_from_dict(plain),
    "alone_since": lambda plain: None if plain is None else ev.event_from_dict(plain),
    "preflight": lambda items: {name: PreflightItemState(**item) for name, item in items.items()},
    "history": lambda history: {metric: deque((tuple(point) for point in series), maxlen=HISTORY_LENGTH) for metric, series in history.items()},
    "judge": lambda judge: {metric: JudgeEvidence(**evidence) for metric, evidence in judge.items()},
    "judge_history": lambda bands: {metric: BandHistory.from_plain(band) for metric, band in bands.items()},
    "consoles": lambda consoles: [tuple(console) for console in consoles],
}
_STATE_FIELDS = tuple(f.name for f in fields(RolloutState))


def state_to_plain(state: RolloutState) -> dict[str, Any]:
    return {name: _TO_PLAIN.get(name, lambda value: value)(getattr(state, name)) for name in _STATE_FIELDS}


def state_from_plain(plain: dict[str, Any]) -> RolloutState:
    """The state a snapshot holds; ValueError when its fields are not this version's."""
    if not isinstance(plain, dict) or set(plain) != set(_STATE_FIELDS):
        raise ValueError("its state has other fields than this version's")
    return RolloutState(**{name: _FROM_PLAIN.get(name, lambda value: value)(plain[name]) for name in _STATE_FIELDS})


# -- writing --------------------------------------------------------------------------------


@dataclass
class RecentEvents:
    """The last RECENT_EVENTS events other than samples, and the last sample, each with its number in the journal."""

    others: deque[tuple[int, ev.Event]] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    last_sample: tuple[int, ev.Event] | None = None

    def add(self, number: int, event: ev.Event) -> None:
        if isinstance(event, ev.SampleTaken):
            self.last_sample = (number, event)
        else:
            self.others.append((number, event))

    def in_order(self) -> list[tuple[int, ev.Event]]:
        return sorted([*self.others, *([self.last_sample] if self.last_sample else [])], key=lambda numbered: numbered[0])


def write_snapshot(path: Path, state: RolloutState, journal: Journal, recent: RecentEvents, judge: dict[str, Any] | None = None) -> None:
    """The snapshot of `state`, the fold of the journal's events so far, replaced atomically; with the sequential
    judge's evidence over the same events, when the rollout has the judge."""
    position = journal.position
    content = {
        "format": SNAPSHOT_FORMAT,
        "journal": {
            "events": position.events,
            "segments": position.segments,
            "lines": position.lines,
            "bytes": position.bytes,
            "first_line": digest(journal.first_line),
            "last_line": digest(journal.last_line),
            "last_line_bytes": len(journal.last_line),
        },
        "state": state_to_plain(state),
        "recent": [[number, event.to_dict()] for number, event in recent.in_order()],
    }
    if judge is not None:
        content["judge"] = judge
    atomic_write(path, strict_json.dumps(content, separators=(",", ":")).encode(), new_mode=PRIVATE_FILE_MODE)


class SnapshotWriter:
    """The controller's hook: told of every event it journals, writes the snapshot when one is due."""

    def __init__(
        self,
        journal: Journal,
        recent: RecentEvents,
        monotonic: Callable[[], float],
        every_events: int = SNAPSHOT_EVERY_EVENTS,
        every_s: float = SNAPSHOT_EVERY_S,
        say: Say = say_on_stderr,
        judge: Callable[[], dict[str, Any]] | None = None,
    ):
        """`judge`: the sequential judge's evidence so far (SequentialJudge.to_plain), kept with the state."""
        self.journal, self.recent, self._monotonic, self._judge = journal, recent, monotonic, judge
        self.path = snapshot_path(journal.path)
        self.every_events, self.every_s, self._say = every_events, every_s, say
        self._written_at = (journal.count, monotonic())
        self.covered: Position = journal.position
        """The last snapshot's position in the journal (or where the journal was opened): a replay from an event
        after it seeks there rather than read the journal through."""

    def journaled(self, event: ev.Event, state: RolloutState) -> None:
        self.recent.add(self.journal.count - 1, event)
        events, at = self._written_at
        now = self._monotonic()
        if self.journal.count - events >= self.every_events or now - at >= self.every_s or event.name in ev.FINAL_EVENTS:
            self._written_at = (self.journal.count, now)
            try:
                write_snapshot(self.path, state, self.journal, self.recent, None if self._judge is None else self._judge())
                self.covered = self.journal.position
            except (OSError, ValueError) as error:  # the journal has it all: a snapshot missed only costs the next reader time
                self._say(f"{self.path}: snapshot not written: {error}")


# -- reading --------------------------------------------------------------------------------


@dataclass
class Resumed:
    """The state of a journal as a snapshot and the tail after it give it (or the whole journal folded)."""

    state: RolloutState
    events: int
    """How many journal events the state folds."""
    recent: RecentEvents
    """What came last, for a console's log; at most RECENT_EVENTS events and the last sample."""
    snapshot_events: int = 0
    """How many of them the snapshot covered (0: the whole journal was folded)."""
    judge: dict[str, Any] | None = None
    """The sequential judge's evidence over the events the snapshot covered, when it kept any."""
    samples_after: list[ev.SampleTaken] = field(default_factory=list)
    """With the judge's evidence: the samples after the snapshot, which the judge has yet to take."""


def _read_snapshot(journal: Path) -> tuple[dict[str, Any], Iterable[ev.Event], int] | None:
    """The snapshot's content, the journal's events after it and how many it covers; None when there is none;
    ValueError saying why it does not fit."""
    path = snapshot_path(journal)
    try:
        content = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as error:
        raise ValueError(f"cannot be read: {error}") from None
    if not isinstance(content, dict) or content.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a snapshot of this version's format")
    recorded = content.get("journal")
    if not isinstance(recorded, dict):
        raise ValueError("it names no journal position")
    # A snapshot from before segments: its journal had none, and its events were the live file's lines.
    numbers = {name: recorded.get(name, default) for name, default in (("events", None), ("segments", 0), ("lines", recorded.get("events")), ("bytes", None))}
    last_bytes = recorded.get("last_line_bytes")
    if not (all(isinstance(number, int) and number >= 0 for number in numbers.values()) and isinstance(last_bytes, int) and 0 < last_bytes <= numbers["bytes"]):
        raise ValueError("its journal position is not one")
    position = Position(**numbers)
    if position.events < position.lines:
        raise ValueError("its journal position is not one")
    continuation = read_after(journal, position, last_bytes)
    if digest(continuation.first_line) != recorded.get("first_line"):
        raise ValueError(f"it is another journal's (its first line is not {journal.name}'s)")
    if len(continuation.line_before) != last_bytes or digest(continuation.line_before) != recorded.get("last_line"):
        raise ValueError(f"{journal.name} does not hold the events it covers (cut short or rewritten)")
    return content, continuation.events, position.events


def resume(journal: Path, say: Say = say_on_stderr) -> Resumed:
    """The journal's state from its snapshot and the tail after it; from the whole journal when the snapshot
    is missing, or ignored (said) for not fitting. JournalError when the journal cannot be read."""
    try:
        found = _read_snapshot(journal)
        if found is not None:
            content, tail, covered = found
            state = state_from_plain(content["state"])
            recent = RecentEvents()
            for number, event in content["recent"]:
                recent.add(number, ev.event_from_dict(event))
    except OSError as error:
        raise JournalError(f"{journal}: cannot read: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        say(f"{snapshot_path(journal)} ignored ({error}); reading the whole journal {journal}")
        found = None
    if found is None:
        return _folded(read_events(journal), Resumed(RolloutState(), 0, RecentEvents()))
    judge = content.get("judge")
    return _folded(tail, Resumed(state, covered, recent, covered, judge if isinstance(judge, dict) else None))


def _folded(events: Iterable[ev.Event], resumed: Resumed) -> Resumed:
    """`resumed` with `events` folded on."""
    state, recent = resumed.state, resumed.recent
    for event in events:
        state.apply(event)
        recent.add(resumed.events, event)
        resumed.events += 1
        if resumed.judge is not None and isinstance(event, ev.SampleTaken):
            resumed.samples_after.append(event)
    return resumed
