"""A scrollable page of text, for a check's output or a dry run's diff."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class TextScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="text.close")]

    DEFAULT_CSS = """
    TextScreen {
        align: center middle;
    }
    TextScreen > VerticalScroll {
        width: 90%;
        height: 80%;
        border: round $accent;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.page_title, self.text = title, text

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = self.page_title
        with scroll:
            yield Static(self.text, markup=False)

    def action_close(self) -> None:
        self.dismiss()
