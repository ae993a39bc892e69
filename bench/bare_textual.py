"""The yardstick of bench_tui.py: a bare Textual app, one line of text, started and drawn as the console is."""

from textual.app import App, ComposeResult
from textual.widgets import Static

SHOWN = "READY"


class BareApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static(SHOWN)


if __name__ == "__main__":
    BareApp().run()
