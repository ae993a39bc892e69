"""Every rollout in some state dirs, one row each, ordered by what needs a person first (`brahma fleet`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from console.journal import events as ev
from console.journal.journal import JournalError, read_events
from console.journal.snapshot import Say, resume, say_on_stderr
from console.journal.state import Phase, RolloutState
from console.journal.state_dir import RolloutFiles, StateDir

RECENT = timedelta(hours=24)
"""A finished rollout stays in the fleet this long after its last event."""


@dataclass(frozen=True)
class FleetRow:
    """One rollout as the fleet shows it."""

    files: RolloutFiles
    state: RolloutState
    phase_since: datetime | None
    """When the rollout entered its phase (the journal's wall time)."""
    unreadable: str = ""
    """FILE:LINE: why the journal cannot be read (the row then says so, and sorts first)."""

    @property
    def key(self) -> str:
        """Unique across state dirs: one release name may run in two of them."""
        return f"{self.files.state_dir}/{self.files.name}"

    @property
    def needs(self) -> int:
        """The row's place in the order: 0 rolling back, 1 paused, 2 waiting for a person, 3 running, 4 finished."""
        state = self.state
        if self.unreadable or state.phase == Phase.ROLLING_BACK or state.rollback_failure:
            return 0
        if state.phase == Phase.PAUSED:
            return 1
        if state.phase == Phase.AWAITING_PROMOTE or any(item.status == "waiting" for item in state.preflight.values()):
            return 2
        return 4 if state.finished else 3

    @property
    def attached(self) -> str:
        """Who is at a console on it, from the journal's attached and detached events."""
        return ", ".join(sorted({actor for actor, _ in self.state.consoles})) or "-"

    def matches(self, text: str) -> bool:
        """`/` in the fleet: a row whose release, app, strategy, phase or state dir has the text."""
        words = (self.files.name, self.state.app, self.state.strategy, self.state.phase, str(self.files.state_dir), self.attached)
        return text.lower() in " ".join(words).lower()


def read_row(files: RolloutFiles, say: Say = say_on_stderr) -> FleetRow:
    """The row of one rollout: its snapshot and the journal's tail after it, or without a snapshot the journal
    with, of its samples, only the last (its verdict is the row's). `say` is told of a snapshot ignored."""
    try:
        if files.snapshot.exists():
            resumed = resume(files.journal, say)
            state, since = resumed.state, phase_since((event for _, event in resumed.recent.in_order()), RolloutState())
        else:
            state = RolloutState()
            since = phase_since(read_events(files.journal, last_sample_only=True), state)
    except JournalError as error:
        return FleetRow(files, RolloutState(rollout=files.name), None, str(error))
    return FleetRow(files, state, datetime.fromisoformat(since) if since else None)


def phase_since(events: Iterable[ev.Event], state: RolloutState) -> str | None:
    """The wall time (ts) at which `state`, folding `events`, entered the phase it ends in. From a snapshot's
    recent events (the samples, which never change a phase, left out) folded afresh: the phase an event sets
    does not depend on the state before it, so the fresh fold changes phase where the rollout did."""
    since, phase = None, None
    for event in events:
        state.apply(event)
        if state.phase != phase:
            phase, since = state.phase, event.ts
    return since


def fleet_rows(state_dirs: list[Path], now: datetime, say: Say = say_on_stderr) -> list[FleetRow]:
    """Every current rollout in the state dirs (a finished one while it is recent), ordered by `ordered`."""
    rows = []
    for state_dir in state_dirs:
        for journal in sorted(state_dir.glob("*.jsonl")) if state_dir.is_dir() else ():
            if journal == StateDir(state_dir).flags_journal:
                continue
            row = read_row(RolloutFiles(state_dir, journal.stem), say)
            # An archived run (name.STAMP.jsonl) names another rollout than its file.
            if row.unreadable or (row.state.started and row.state.rollout == journal.stem and is_current(row, now)):
                rows.append(row)
    return ordered(rows)


def is_current(row: FleetRow, now: datetime) -> bool:
    return not row.state.finished or (row.phase_since is not None and now - row.phase_since <= RECENT)


def ordered(rows: list[FleetRow]) -> list[FleetRow]:
    """Rolling back, paused, waiting for a person, running, finished; the longest in its phase first within each."""
    return sorted(rows, key=lambda row: (row.needs, row.phase_since.timestamp() if row.phase_since else 0.0, row.key))
