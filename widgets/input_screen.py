"""Ask for one value: Enter gives it, Escape gives None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from widgets.ordered_input import OrderedInput


class InputScreen(ModalScreen[str | None]):
    """One line of input, its current value selected so that typing replaces it.

    Open it from a priority binding (or any action that runs as its key arrives): the keys typed
    after that one then land here, in order, however fast they come.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="input.cancel")]

    DEFAULT_CSS = """
    InputScreen {
        align: center middle;
    }
    InputScreen > Vertical {
        width: 60;
        max-width: 100%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, prompt: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.prompt, self.value, self.placeholder = prompt, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.prompt)
            yield OrderedInput(self.value, placeholder=self.placeholder)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
