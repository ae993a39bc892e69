"""The big rollback control: always visible, always the same place, and it shows the rollback happen."""

from __future__ import annotations

from typing import Literal, get_args

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

Phase = Literal["ready", "rolling_back", "unverified", "rolled_back", "read_only", "idle"]
PRESSABLE = ("ready", "unverified")


class RollbackBar(Widget):
    """A full-width red band: `⟲ ROLL BACK  ctrl+r`. Clicking it asks for a rollback (still confirmed).

    `unverified`: a rollback the target does not read back as done, shown as loud as the key itself;
    the key (or a click) tries it again at once.
    """

    DEFAULT_CSS = """
    RollbackBar {
        height: 3;
        width: 100%;
        content-align: center middle;
        text-style: bold;
        background: $error;
        color: $text;
    }
    RollbackBar.-rolling-back {
        background: $warning;
        color: $background;
    }
    RollbackBar.-unverified {
        background: $error-darken-2;
        color: $text;
    }
    RollbackBar.-rolled-back {
        background: $success-darken-2;
    }
    RollbackBar.-read-only, RollbackBar.-idle {
        background: $surface;
        color: $text-muted;
        text-style: none;
    }
    """

    phase: reactive[Phase] = reactive("ready")
    key: reactive[str] = reactive("ctrl+r")
    detail: reactive[str] = reactive("")

    class Pressed(Message):
        """The bar was clicked."""

    def watch_phase(self, phase: Phase) -> None:
        for name in get_args(Phase):
            self.set_class(phase == name, f"-{name.replace('_', '-')}")

    def render(self) -> Text:
        label = {
            "ready": f"⟲  ROLL BACK   [{self.key}]",
            "rolling_back": "⟲  ROLLING BACK…",
            "unverified": f"✗  ROLLBACK NOT VERIFIED · retrying   [{self.key}] try again now",
            "rolled_back": "✓  ROLLED BACK",
            "read_only": "read-only: rollback is for the operators",
            "idle": "nothing to roll back",
        }[self.phase]
        return Text(f"{label}   {self.detail}" if self.detail else label, no_wrap=True, overflow="ellipsis")

    def on_click(self) -> None:
        if self.phase in PRESSABLE:
            self.post_message(self.Pressed())
