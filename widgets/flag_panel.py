"""Feature flags: state, rollout percentage, allowed users; keys to change them.

The panel only asks (it posts messages); the app decides, confirms what is destructive,
writes the flag store and journals the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from widgets.input_screen import InputScreen
from widgets.keyed_table import KeyedTable

STEP = 5
"""Percentage points the +/- keys move a rollout by."""


@dataclass(frozen=True)
class FlagRow:
    name: str
    enabled: bool
    percentage: int
    users: tuple[str, ...] = ()
    """Targeting keys that always get the flag while it is on."""
    read_only: bool = False
    new: bool = False

    @property
    def allowed(self) -> int:
        return len(self.users)


def parse_users(text: str) -> tuple[str, ...]:
    """Targeting keys from "alice, bob" (commas or new lines), each once, in the order given."""
    return tuple(dict.fromkeys(user.strip() for user in text.replace("\n", ",").split(",") if user.strip()))


class FlagPanel(KeyedTable):
    """One row per flag; the state is a word as well as a colour.

    The keys that open an input are priority bindings, so the input opens as the key arrives and
    the keys typed right after it (`= 30 Enter` in one burst) go into the input, not to this table.
    """

    BINDINGS = [
        Binding("t,enter", "toggle", "Toggle", id="flags.toggle", tooltip="Switch the highlighted flag on or off"),
        Binding("plus", "step(5)", "+5%", id="flags.more", key_display="+"),
        Binding("minus", "step(-5)", "-5%", id="flags.less", key_display="-"),
        Binding("equals_sign", "enter_percentage", "Set %", id="flags.percentage", key_display="=", priority=True),
        Binding("u", "edit_users", "Users", id="flags.users", tooltip="Edit the users who always get the flag", priority=True),
        Binding("slash", "filter", "Filter", id="flags.filter", key_display="/", priority=True),
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
        """A rollout percentage was typed for the flag."""

        def __init__(self, flag: FlagRow, percentage: int) -> None:
            self.flag, self.percentage = flag, percentage
            super().__init__()

    class UsersRequested(Message):
        """The flag's allowed users were edited: `users` is the whole new list, `flag.users` the one shown."""

        def __init__(self, flag: FlagRow, users: tuple[str, ...]) -> None:
            self.flag, self.users = flag, users
            super().__init__()

    class EditRefused(Message):
        """A change of a read-only flag was asked for: nothing was opened or sent."""

        def __init__(self, flag: FlagRow) -> None:
            self.flag = flag
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(show_header=False, cell_padding=0, **kwargs)
        self._rows: dict[str, FlagRow] = {}

    def columns_for(self, width: int) -> tuple:
        # The state keeps its room ("ON 40% +2"): a name too long is cut, and said in full by detail_of.
        state = max((len(self._state(row)) for row in self._rows.values()), default=6)
        return (("flag", "", None), ("state", "", state + 2))

    def show(self, rows: list[FlagRow]) -> None:
        self._rows = {row.name: row for row in rows}
        self.lay_out()
        for row in rows:
            if self.filter_text.lower() in row.name.lower():
                self.upsert(row.name, self._cells(row))

    def watch_filter_text(self) -> None:
        self.clear_rows()
        self.show(list(self._rows.values()))

    @staticmethod
    def _state(row: FlagRow) -> str:
        """ON 40%, or off 40% (the share it returns to when switched on); +2 allowed users."""
        return f"{'ON' if row.enabled else 'off'} {row.percentage}%" + (f" +{row.allowed}" if row.allowed else "")

    def _cells(self, row: FlagRow) -> tuple[Text, Text]:
        return (
            Text(f" {row.name}" + (" (ro)" if row.read_only else ""), no_wrap=True, overflow="ellipsis"),
            Text(f" {self._state(row)}", style="bold green" if row.enabled else "dim"),
        )

    def detail_of(self, key: str) -> str:
        row = self._rows.get(key)
        if row is None:
            return ""
        users = f" + {row.allowed} allowed user{'' if row.allowed == 1 else 's'}" if row.allowed else ""
        notes = (" · read-only: not written by Brahma" if row.read_only else "") + (" · new (the kill switch)" if row.new else "")
        return f"{row.name}: {'on' if row.enabled else 'off'}, {row.percentage}%{users}{notes}"

    @property
    def highlighted_flag(self) -> FlagRow | None:
        return self._rows.get(self.highlighted_key or "")

    def _edit(self, ask: Callable[[FlagRow], None]) -> None:
        flag = self.highlighted_flag
        if flag is None:
            return
        if flag.read_only:
            self.post_message(self.EditRefused(flag))
            return
        ask(flag)

    def action_toggle(self) -> None:
        self._edit(lambda flag: self.post_message(self.ToggleRequested(flag)))

    def action_step(self, delta: int) -> None:
        self._edit(lambda flag: self.post_message(self.StepRequested(flag, delta)))

    def action_enter_percentage(self) -> None:
        def ask(flag: FlagRow) -> None:
            def chosen(text: str | None) -> None:
                if text is None:
                    return
                try:
                    percentage = int(text.strip().rstrip("%"))
                except ValueError:
                    self.notify(f"{text!r} is not a whole percentage", severity="error")
                    return
                self.post_message(self.PercentageRequested(flag, percentage))

            self.app.push_screen(InputScreen(f"Rollout of {flag.name} (0-100%)", str(flag.percentage)), chosen)

        self._edit(ask)

    def action_edit_users(self) -> None:
        def ask(flag: FlagRow) -> None:
            def chosen(text: str | None) -> None:
                if text is not None:
                    self.post_message(self.UsersRequested(flag, parse_users(text)))

            prompt = f"Users who always get {flag.name} (targeting keys, comma separated)"
            self.app.push_screen(InputScreen(prompt, ", ".join(flag.users), "alice, bob"), chosen)

        self._edit(ask)

    def action_filter(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.filter_text = text.strip()

        self.app.push_screen(InputScreen("Show flags whose name contains", self.filter_text), chosen)
