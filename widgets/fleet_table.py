"""FleetTable: every rollout on one row, the ones that need a person first; Enter opens one, ctrl+r rolls it back."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

COLUMNS = ("RELEASE", "APP", "STRATEGY", "STAGE", "PHASE", "FOR", "VERDICT", "ATTACHED")


@dataclass(frozen=True)
class FleetLine:
    """One rollout's row: a key unique across the fleet, its cells (COLUMNS), the text `/` matches, and a style."""

    key: str
    cells: tuple[str, ...]
    searched: str
    style: str = ""


class FleetTable(DataTable):
    """The fleet's rollouts, in the order given; `filter` keeps the lines whose searched text has it."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="fleet.open", tooltip="This rollout's console"),
        Binding("ctrl+r", "rollback", "Roll back", id="fleet.rollback", priority=True, tooltip="Roll this rollout back (asks first)"),
    ]

    DEFAULT_CSS = """
    FleetTable {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    filter: reactive[str] = reactive("")
    """Lower-case text a line must contain to be shown ("" shows every line)."""

    class Opened(Message):
        """Enter on a rollout's row."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class RollbackRequested(Message):
        """ctrl+r on a rollout's row."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._lines: list[FleetLine] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, lines: list[FleetLine]) -> None:
        """The rows again, the cursor kept on the rollout it was on."""
        self._lines = lines
        self._redraw()

    def watch_filter(self) -> None:
        self._redraw()

    @property
    def shown_keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        kept = self.highlighted_key
        self.clear()
        wanted = self.filter.lower()
        for line in self._lines:
            if wanted in line.searched.lower():
                self.add_row(*(Text(cell, style=line.style) for cell in line.cells), key=line.key)
        if kept is not None and kept in self.shown_keys:
            self.move_cursor(row=self.get_row_index(kept))

    def action_open(self) -> None:
        if (key := self.highlighted_key) is not None:
            self.post_message(self.Opened(key))

    def action_rollback(self) -> None:
        if (key := self.highlighted_key) is not None:
            self.post_message(self.RollbackRequested(key))
