"""The fleet: every rollout of some state dirs on one screen, the ones that need a person first (`brahma fleet`).

Enter opens a rollout's console (rollout_screen.py) in this app, attached as `brahma attach` is; Escape comes back.
ctrl+r rolls the highlighted rollout back once a confirm naming it is answered; `/` filters.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from console.file_watch import DirectoryWatch
from console.journal.fleet import FleetRow, fleet_rows, is_current, ordered, read_row
from console.journal.state import Phase, RolloutState
from console.journal.state_dir import RolloutFiles
from console.tui.rollout_screen import CONSOLE_BINDINGS, ConsoleKeys, RolloutScreen
from console.units import format_duration
from widgets.confirm_screen import ConfirmScreen
from widgets.fleet_table import FleetLine, FleetTable

if TYPE_CHECKING:
    from console.rollout import Rollout

CLOCK_S = 1.0
"""How often the rows are drawn again from what was read (the time in phase moves on; a finished rollout ages out)."""
READ_GAP_S = 2.0
"""A written journal's row is read again at most this often: a row from a day-long journal's snapshot and tail costs
some 20 ms, and 50 controllers each write a sample a second (a pause or a rollback shows within this)."""
RESCAN_S = 30.0
"""Without file notifications (no inotify): how often the state dirs' journals are looked at for a change."""
NEEDS_STYLES = ("bold red", "yellow", "bold yellow", "", "dim")
"""A row's style by what it needs (FleetRow.needs)."""


@dataclass(frozen=True)
class FleetActions:
    """What the fleet does through the application (console/app/fleet.py), which owns the controllers' sockets."""

    open_rollout: Callable[[RolloutFiles], Rollout | None]
    """The rollout attached to its controller (started again if it died), or None once the problem is said."""
    roll_back: Callable[[RolloutFiles, str], str | None]
    """Send a rollback with its actor; None when the controller took it, otherwise why not."""


def fleet_line(row: FleetRow, now: datetime) -> FleetLine:
    state = row.state
    stage = f"{state.stage + 1} · {state.weight}%" if state.stage >= 0 else "-"
    since = format_duration(max(0.0, (now - row.phase_since).total_seconds())) if row.phase_since else "-"
    phase = f"unreadable: {row.unreadable}" if row.unreadable else ("rollback unverified" if state.rollback_failure else str(state.phase))
    cells = (row.files.name, state.app or "-", state.strategy or "-", stage, phase, since, state.last_verdict or "-", row.attached)
    return FleetLine(row.key, cells, " ".join((*cells, str(row.files.state_dir))), NEEDS_STYLES[row.needs])


class FleetScreen(Screen[None]):
    """Every rollout, one row each, kept current from the journals as they grow."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="fleet.filter", key_display="/"),
        Binding("q", "quit_fleet", "Quit Brahma", id="fleet.quit"),
    ]

    class Changed(Message):
        """Rows were read again: journals the state dirs' notifications (or a rescan) named."""

        def __init__(self, journals: list[Path]) -> None:
            super().__init__()
            self.journals = journals

    def __init__(self, state_dirs: list[Path], actions: FleetActions, actor: str):
        super().__init__()
        self.state_dirs, self.actions, self.actor = state_dirs, actions, actor
        self.rows: dict[str, FleetRow] = {}
        self._seen: dict[Path, tuple[int, int]] = {}
        """Each journal's (size, mtime) at the last rescan (used without notifications only)."""
        self.watch: DirectoryWatch | None = None
        self._read_at: dict[Path, float] = {}
        """When each journal's row was last read again (monotonic)."""
        self._waiting: set[Path] = set()
        """Journals written since, whose rows are read once READ_GAP_S has passed."""
        self.live = ""
        """How the rows keep current, for the status line."""
        self.title = "Brahma · fleet"

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⟲")
        yield FleetTable(id="fleet")
        yield Static(id="fleet-status", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        now = datetime.now(UTC)
        for row in fleet_rows(self.state_dirs, now, self.log.warning):
            self.rows[row.key] = row
        self.watch_state_dirs()
        self.show_rows()
        self.set_interval(CLOCK_S, self.show_rows)

    def watch_state_dirs(self) -> None:
        """Journals read again when the kernel says they were written; where it cannot, a rescan every RESCAN_S."""
        try:
            self.watch = DirectoryWatch(self.state_dirs)
        except OSError as error:
            self.live = f"rescanned every {RESCAN_S:.0f} s (no file notifications: {error})"
            self._seen = self._journals()
            self.set_interval(RESCAN_S, self.rescan)
            return
        asyncio.get_running_loop().add_reader(self.watch.fileno(), self.take_notifications)
        self.live = "live"

    def on_unmount(self) -> None:
        if self.watch is not None:
            asyncio.get_running_loop().remove_reader(self.watch.fileno())
            self.watch.close()

    def take_notifications(self) -> None:
        assert self.watch is not None
        changes = self.watch.changes()
        if changes.overflowed:  # some were lost: every journal is read again
            self.take_changes(list(self._journals()))
        else:
            self.take_changes([path for path in changes.paths if path.name.endswith(".jsonl")])

    def _journals(self) -> dict[Path, tuple[int, int]]:
        seen = {}
        for state_dir in self.state_dirs:
            try:
                entries = list(os.scandir(state_dir))
            except OSError:
                continue
            for entry in entries:
                if entry.name.endswith(".jsonl"):
                    try:
                        stat = entry.stat()
                    except OSError:  # removed since it was listed
                        continue
                    seen[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns)
        return seen

    def rescan(self) -> None:
        """Without notifications: the journals whose size or time changed (or that appeared, or went) read again."""
        seen = self._journals()
        changed = [journal for journal, mark in seen.items() if self._seen.get(journal) != mark] + [journal for journal in self._seen if journal not in seen]
        self._seen = seen
        self.take_changes(changed)

    def take_changes(self, journals: list[Path]) -> None:
        """The rows of these journals read again: at once, unless read less than READ_GAP_S ago (then once,
        READ_GAP_S after that read: a controller writes a sample a second, a row need not be read as often)."""
        now, due = time.monotonic(), []
        for journal in journals:
            if journal.stem == "flags" or journal.stem.count("."):  # the flags' journal, an archived run
                continue
            if journal in self._waiting:
                continue
            wait = self._read_at.get(journal, -READ_GAP_S) + READ_GAP_S - now
            if wait <= 0 or not journal.exists():  # a row gone costs no reading
                due.append(journal)
            else:
                self._waiting.add(journal)
                self.set_timer(wait, functools.partial(self._read_waiting, journal))
        if due:
            self.read_rows(due)

    def _read_waiting(self, journal: Path) -> None:
        self._waiting.discard(journal)
        self.read_rows([journal])

    def read_rows(self, journals: list[Path]) -> None:
        """The rows of these journals read again (a journal gone: its row too); the rest as they were."""
        now = datetime.now(UTC)
        for journal in journals:
            self._read_at[journal] = time.monotonic()
            files = RolloutFiles(journal.parent, journal.stem)
            row = read_row(files, self.log.warning) if journal.exists() else None
            if row is not None and (row.unreadable or (row.state.started and is_current(row, now))):
                self.rows[row.key] = row
            else:
                self.rows.pop(FleetRow(files, RolloutState(), None).key, None)
        self.show_rows()
        self.post_message(self.Changed(journals))

    def show_rows(self) -> None:
        now = datetime.now(UTC)
        self.rows = {key: row for key, row in self.rows.items() if row.unreadable or is_current(row, now)}
        table = self.query_one(FleetTable)
        table.show([fleet_line(row, now) for row in ordered(list(self.rows.values()))])
        shown = len(table.shown_keys)
        status = f"{shown} of {len(self.rows)} rollouts" + (f" · filter: {table.filter}" if table.filter else "")
        self.query_one("#fleet-status", Static).update(status + f" · {', '.join(map(str, self.state_dirs))} · {self.live}")

    def action_filter(self) -> None:
        from widgets.input_screen import InputScreen

        table = self.query_one(FleetTable)

        def filtered(text: str | None) -> None:
            if text is not None:
                table.filter = text.strip()
                self.show_rows()

        self.app.push_screen(InputScreen("Show the rows that contain", table.filter, "release, app, strategy, phase, who"), filtered)

    def action_quit_fleet(self) -> None:
        self.app.exit()

    def on_fleet_table_opened(self, message: FleetTable.Opened) -> None:
        row = self.rows[message.key]
        rollout = self.actions.open_rollout(row.files)
        if rollout is None:
            self.notify(f"{row.files.name}: no console can be opened (see the terminal's messages)", severity="error")
            return

        def left(phase: Phase) -> None:
            self.app.pop_screen()
            self.read_rows([row.files.journal])

        self.app.push_screen(RolloutScreen(rollout, left, actor=self.actor, in_fleet=True))

    def on_fleet_table_rollback_requested(self, message: FleetTable.RollbackRequested) -> None:
        row = self.rows[message.key]
        state = row.state
        if state.phase in (Phase.ROLLED_BACK, Phase.GATE_FAILED):
            self.notify(f"Nothing to roll back in {row.files.name}: stable already serves all traffic.", title="Roll back")
            return
        where = f"the new version serves {state.weight}%" if state.active else f"it is {state.phase}"
        body = f"{row.files.name} ({state.app}, {state.strategy}) in {row.files.state_dir}: {where}. All traffic goes back to stable."
        self.app.push_screen(
            ConfirmScreen(f"Roll back {row.files.name}?", body, "Roll back (Enter / y)"),
            lambda confirmed: self.send_rollback(row.files) if confirmed else None,
        )

    @work(thread=True, exit_on_error=False, group="fleet-rollback")
    def send_rollback(self, files: RolloutFiles) -> None:
        refused = self.actions.roll_back(files, self.actor)
        if refused is None:
            self.app.call_from_thread(self.notify, f"{files.name}: rollback sent", title="Roll back")
        else:
            self.app.call_from_thread(self.notify, f"{files.name}: {refused}", title="Roll back not sent", severity="error", timeout=15)


class FleetApp(ConsoleKeys, App[None]):
    """Every rollout of some state dirs; a rollout's console opens over them and closes back to them."""

    CSS_PATH = "brahma.tcss"
    TITLE = "Brahma"
    ENABLE_COMMAND_PALETTE = True
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [replace(binding, description="Quit Brahma") if binding.id == "app.quit" else binding for binding in CONSOLE_BINDINGS]
    """A console's q quits the whole app here, and its footer says so (Escape goes back to the fleet)."""

    def __init__(self, state_dirs: list[Path], actions: FleetActions, actor: str):
        super().__init__()
        self.fleet = FleetScreen(state_dirs, actions, actor)

    def get_default_screen(self) -> FleetScreen:
        return self.fleet
