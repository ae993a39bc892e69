"""The pre-flight checklist: each item's state, duration and who signed it off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from widgets.keyed_table import KeyedTable

ItemState = Literal["pending", "running", "pass", "fail", "waiting", "error"]
STATE_MARKS = {"pending": "·", "running": "…", "pass": "✓", "fail": "✗", "waiting": "⧗", "error": "✗"}
STATE_STYLES = {"pending": "dim", "running": "cyan", "pass": "green", "fail": "bold red", "waiting": "yellow", "error": "bold red"}
STATE_WORDS = {
    "pending": "not run yet",
    "running": "running",
    "pass": "passed",
    "fail": "failed",
    "waiting": "waiting for a sign-off (s)",
    "error": "could not run",
}
COLUMNS = (("mark", "", 2), ("item", "", None), ("time", "", 6))


@dataclass(frozen=True)
class ChecklistItem:
    name: str
    state: ItemState
    required: bool = True
    duration_s: float = 0.0
    by: str = ""
    output: str = ""


class Checklist(KeyedTable):
    """Items of a gate; `s` asks to sign off the highlighted one, Enter to read its output.

    Advisory items are marked (opt): they are shown and recorded but never hold the gate. A name
    too long for its row is cut; the highlighted item is said in full by `detail_of`.
    """

    BINDINGS = [
        Binding("s", "sign_off", "Sign off", id="preflight.sign_off", tooltip="Sign off the highlighted manual item"),
        Binding("enter", "open_output", "Output", id="preflight.output", tooltip="Show the highlighted item's output"),
    ]

    class SignOffRequested(Message):
        def __init__(self, item: str) -> None:
            self.item = item
            super().__init__()

    class OutputRequested(Message):
        def __init__(self, item: ChecklistItem) -> None:
            self.item = item
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(show_header=False, cell_padding=0, **kwargs)
        self._items: dict[str, ChecklistItem] = {}

    def columns_for(self, width: int) -> tuple:
        return COLUMNS

    def show(self, items: list[ChecklistItem]) -> None:
        for item in items:
            self.upsert(item.name, self._cells(item))
            self._items[item.name] = item

    @staticmethod
    def _cells(item: ChecklistItem) -> tuple[Text, Text, Text]:
        style = STATE_STYLES[item.state]
        label = item.name + ("" if item.required else " (opt)")
        if item.by and item.by != "brahma":
            label += f" · {item.by}"
        duration = f"{item.duration_s:.1f}s" if item.duration_s else ""
        return (
            Text(f" {STATE_MARKS[item.state]}", style=style),
            Text(f" {label}", style=style if item.state != "pass" else "", no_wrap=True, overflow="ellipsis"),
            Text(duration, style="dim", justify="right"),
        )

    def detail_of(self, key: str) -> str:
        """`all tests pass: passed in 1.5s` or `code review: waiting for a sign-off (s)`, the name in full."""
        item = self._items.get(key)
        if item is None:
            return ""
        by = f" by {item.by}" if item.by and item.by != "brahma" else ""
        took = f" in {item.duration_s:.1f}s" if item.duration_s else ""
        return f"{item.name}{'' if item.required else ' (advisory)'}: {STATE_WORDS[item.state]}{by}{took}"

    def _highlighted(self) -> ChecklistItem | None:
        return self._items.get(self.highlighted_key or "")

    def action_sign_off(self) -> None:
        item = self._highlighted()
        if item is not None:
            self.post_message(self.SignOffRequested(item.name))

    def action_open_output(self) -> None:
        item = self._highlighted()
        if item is not None:
            self.post_message(self.OutputRequested(item))
