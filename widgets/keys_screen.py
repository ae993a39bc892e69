"""Every key of the screen below, with what it does: the `?` screen."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class KeysScreen(ModalScreen[None]):
    """A table of key → description, built from the live bindings (so keymap overrides show)."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss_keys", "Close", id="keys.close")]

    DEFAULT_CSS = """
    KeysScreen {
        align: center middle;
    }
    KeysScreen > VerticalScroll {
        width: 70;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, expand=True, padding=(0, 1))
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        for key, description in self.keys:
            table.add_row(key, description)
        with VerticalScroll():
            yield Static(table)

    def action_dismiss_keys(self) -> None:
        self.dismiss()
