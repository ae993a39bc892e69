"""`brahma flags FILE`: the flag editor on its own, for an incident with no rollout."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header

from console.actor import current_actor
from console.flags.errors import FlagError
from console.flags.model import FlagChange
from console.flags.store import FlagStore
from console.journal import events as ev
from console.journal.journal import Journal
from console.tui.flag_editing import FlagEditing, flag_rows
from console.tui.terminal_watch import watch_terminal
from widgets.confirm_screen import ConfirmScreen
from widgets.flag_panel import FlagPanel

RELOAD_S = 1.0
"""How often the list is read again, so changes by other operators show up."""


class FlagEditorApp(FlagEditing, App[None]):
    """Every flag of one flagd file: toggle, percentages, allowed users, the kill switch."""

    TITLE = "Brahma flags"
    BINDINGS = [
        Binding("k", "kill", "Kill switch", id="flags.kill", tooltip="Switch off every flag marked new (asks first)"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]
    CSS = "FlagPanel { height: 1fr; }"

    def __init__(self, store: FlagStore, journal: Journal, actor: str | None = None):
        super().__init__()
        self.flag_store, self.journal = store, journal
        self.actor = actor or current_actor()
        self.sub_title = store.backend.source

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield FlagPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_flags()
        self.set_interval(RELOAD_S, self.refresh_flags)
        self.query_one(FlagPanel).focus()
        watch_terminal(self, lambda why: self.exit())  # nobody sees it: what it wrote is in the file and journaled

    def refresh_flags(self) -> None:
        try:
            flags = self.flag_store.list()
        except FlagError as error:
            self.sub_title = f"{self.flag_store.backend.source}: {error}"
            return
        self.query_one(FlagPanel).show(flag_rows(flags))

    def record_flag_changes(self, changes: list[FlagChange]) -> None:
        for change in changes:
            self.journal.append(ev.FlagChanged.of(0.0, change))

    def action_kill(self) -> None:
        new = [f.name for f in self.flag_store.list() if f.new and f.enabled]
        if not new:
            self.notify("No flag marked new is on.", title="Kill switch")
            return
        actor = self.actor
        self.push_screen(
            ConfirmScreen("Kill switch", f"Switch off: {', '.join(new)}. Apps see it within a second.", "Switch off (Enter / y)"),
            lambda ok: self.run_change(lambda store: store.kill(new, actor=actor, reason="kill switch"), "kill switch") if ok else None,
        )
