"""A confirm step whose default is the action: Enter or y confirms, Escape or n cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks once, plainly; the confirm button has the focus so Enter does what was asked."""

    BINDINGS = [
        Binding("y", "confirm", "Yes", id="confirm.yes"),
        Binding("n,escape", "cancel", "No", id="confirm.no"),
    ]

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ConfirmScreen .confirm--title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    ConfirmScreen .confirm--body {
        margin: 1 0;
    }
    ConfirmScreen Horizontal {
        height: auto;
        align: center middle;
    }
    ConfirmScreen Button {
        margin: 0 1;
    }
    """

    def __init__(self, title: str, body: str, confirm_label: str, cancel_label: str = "Cancel (n)") -> None:
        super().__init__()
        self.title_text, self.body, self.confirm_label, self.cancel_label = title, body, confirm_label, cancel_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="confirm--title")
            yield Static(self.body, classes="confirm--body")
            with Horizontal():
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button(self.cancel_label, id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
