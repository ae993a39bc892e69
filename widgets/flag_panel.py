"""Feature flags: state, rollout percentage, allowed users; keys to change them.

The panel only asks (it posts messages); the app decides, confirms what is destructive,
writes the flag store and journals the change.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from widgets.keyed_table import KeyedTable

STEP = 5
"""Percentage points the +/- keys move a rollout by."""


@dataclass(frozen=True)
class FlagRow:
    name: str
    enabled: bool
    percentage: int
    allowed: int = 0
    read_only: bool = False
    new: bool = False


class FlagPanel(KeyedTable):
    """One row per flag; the state is a word as well as a colour."""

    BINDINGS = [
        Binding("t,enter", "toggle", "Toggle", id="flags.toggle", tooltip="Switch the highlighted flag on or off"),
        Binding("plus", "step(5)", "+5%", id="flags.more", key_display="+"),
        Binding("minus", "step(-5)", "-5%", id="flags.less", key_display="-"),
        Binding("equals_sign", "enter_percentage", "Set %", id="flags.percentage", key_display="="),
        Binding("u", "edit_users", "Users", id="flags.users", tooltip="Edit the users who always get the flag"),
        Binding("slash", "filter", "Filter", id="flags.filter", key_display="/"),
    ]

    filter_text: reactive[str] = reactive("")
    """Only flags whose name contains this are listed."""

    class ToggleRequested(Message):
        def __init__(self, flag: FlagRow) -> None:
            self.flag = flag
            super().__init__()

    class StepRequested(Message):
        def __init__(self, flag: FlagRow, delta: int) -> None:
            self.flag, self.delta = flag, delta
            super().__init__()

    class PercentageRequested(Message):
        def __init__(self, flag: FlagRow) -> None:
            self.flag = flag
            super().__init__()

    class UsersRequested(Message):
        def __init__(self, flag: FlagRow) -> None:
            self.flag = flag
            super().__init__()

    class FilterRequested(Message):
        pass

    def __init__(self, **kwargs) -> None:
        super().__init__(show_header=False, **kwargs)
        self._rows: dict[str, FlagRow] = {}

    def on_mount(self) -> None:
        self.add_columns("flag", "state", "share")

    def show(self, rows: list[FlagRow]) -> None:
        self._rows = {row.name: row for row in rows}
        for row in rows:
            if self.filter_text.lower() in row.name.lower():
                self.upsert(row.name, self._cells(row))

    def watch_filter_text(self) -> None:
        self.clear_rows()
        self.show(list(self._rows.values()))

    @staticmethod
    def _cells(row: FlagRow) -> tuple[Text, Text, Text]:
        return (
            Text(row.name + (" (ro)" if row.read_only else "")),
            Text("ON" if row.enabled else "off", style="bold green" if row.enabled else "dim"),
            Text(f"{row.percentage}%" + (f" +{row.allowed}" if row.allowed else ""), style="dim"),
        )

    @property
    def highlighted_flag(self) -> FlagRow | None:
        return self._rows.get(self.highlighted_key or "")

    def _ask(self, make_message) -> None:
        flag = self.highlighted_flag
        if flag is not None:
            self.post_message(make_message(flag))

    def action_toggle(self) -> None:
        self._ask(self.ToggleRequested)

    def action_step(self, delta: int) -> None:
        self._ask(lambda flag: self.StepRequested(flag, delta))

    def action_enter_percentage(self) -> None:
        self._ask(self.PercentageRequested)

    def action_edit_users(self) -> None:
        self._ask(self.UsersRequested)

    def action_filter(self) -> None:
        self.post_message(self.FilterRequested())
