"""AssessmentPanel: the think step (`brahma assess`) at the head of the pre-flight pane: the risk, and why."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

RISK_STYLES = {"low": "bold green", "medium": "bold yellow", "high": "bold red"}
KEY_LINES = ("Rollback: ", "What changes: ")
"""Of the assessment's lines, those the panel shows under the risk (Enter shows them all)."""


class AssessmentPanel(Widget, can_focus=True):
    """The risk level and the key answers of the release's assessment; until it is made, that it is being made."""

    BINDINGS = [Binding("enter", "open", "Assessment", id="preflight.assessment", tooltip="The whole think step")]

    DEFAULT_CSS = """
    AssessmentPanel {
        height: auto;
        max-height: 4;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border-bottom: solid $foreground 20%;
    }
    AssessmentPanel:focus {
        background: $boost;
    }
    """

    risk: reactive[str] = reactive("")
    """low, medium or high; "" while the assessment is being made (or when it could not be)."""
    lines: reactive[tuple[str, ...]] = reactive(())
    """The assessment's lines (console/history/assess.py's Assessment.lines), or the one that says why there are none."""

    class Opened(Message):
        """Enter on the panel: the whole assessment asked for."""

        def __init__(self, lines: tuple[str, ...]) -> None:
            super().__init__()
            self.lines = lines

    def show(self, risk: str, lines: list[str]) -> None:
        self.risk, self.lines = risk, tuple(lines)

    def render(self) -> Text:
        if not self.lines:
            return Text("Assessing the release (brahma assess)…", style="dim")
        if not self.risk:
            return Text(self.lines[0], style="dim")
        head = self.lines[0]
        text = Text(f"Risk {self.risk.upper()}", style=RISK_STYLES.get(self.risk, "bold"))
        why = head.partition(": ")[2].partition(": ")[2]
        if why:
            text.append(f" · {why}", style="")
        for line in self.lines[1:]:
            if line.startswith(KEY_LINES):
                text.append("\n" + line, style="dim")
        return text

    def action_open(self) -> None:
        if self.lines:
            self.post_message(self.Opened(self.lines))
