"""The console on one rollout (`brahma run`, `attach`, `demo`): an app whose screen is the rollout's console.

The console itself is a screen (rollout_screen.py), which the fleet hosts too.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import App

from console.journal.state import Phase
from console.tui.rollout_screen import CONSOLE_BINDINGS, ConsoleKeys, RolloutScreen

if TYPE_CHECKING:
    from console.rollout import Rollout


class BrahmaApp(ConsoleKeys, App[str]):
    """One rollout, supervised from the keyboard. It returns the rollout's phase as it left it."""

    CSS_PATH = "brahma.tcss"
    TITLE = "Brahma"
    BINDINGS = CONSOLE_BINDINGS
    ENABLE_COMMAND_PALETTE = True
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    def __init__(self, rollout: Rollout, *, read_only: bool = False, demo: bool = False, actor: str | None = None):
        super().__init__()
        self.rollout_screen = RolloutScreen(rollout, self._left, read_only=read_only, demo=demo, actor=actor)
        self.rollout = rollout
        self.controller = rollout.controller
        self.plan = rollout.controller.plan
        self.on_leaving: Callable[[Phase], None] = lambda phase: None
        """Told the phase once the console has done its own leaving, just before Textual's shutdown, which a dead
        terminal can hold forever: the application arms its last resort here."""
        self.title = self.rollout_screen.title or self.TITLE

    def get_default_screen(self) -> RolloutScreen:
        return self.rollout_screen

    def on_mount(self) -> None:
        self.watch(self.rollout_screen, "sub_title", self._show_sub_title)
        self.call_after_refresh(self._collect_from_now_on)

    def _show_sub_title(self, sub_title: str | None) -> None:
        self.sub_title = sub_title or ""

    def _collect_from_now_on(self) -> None:
        """`brahma` pauses the cyclic collector until the first frame shows (entry.py). What start-up made (modules,
        classes, the widgets) lives as long as the console: frozen, the first collections do not search it all
        while the first frame is still on its way to the terminal."""
        gc.freeze()
        gc.enable()

    def _left(self, phase: Phase) -> None:
        self.on_leaving(phase)
        self.exit(phase)

    @property
    def flag_store(self):
        return self.rollout_screen.flag_store

    def refresh_view(self) -> None:
        self.rollout_screen.refresh_view()

    def refresh_flags(self) -> None:
        self.rollout_screen.refresh_flags()


def binding_ids() -> set[str]:
    """The bindings a keymap may move keys of."""
    return {b.id for b in CONSOLE_BINDINGS if b.id}


def make_app(rollout: Rollout, *, read_only: bool = False, demo: bool = False, keymap: dict[str, str] | None = None, actor: str | None = None) -> BrahmaApp:
    """The console for a rollout; the CLI and the tests build it the same way."""
    app = BrahmaApp(rollout, read_only=read_only, demo=demo, actor=actor)
    if keymap:
        app.rollout_screen.keymap = keymap_with_resume(keymap)
        app.set_keymap(app.rollout_screen.keymap)
    return app


def keymap_with_resume(keymap: dict[str, str]) -> dict[str, str]:
    """Pause and resume share a key: moving the pause key moves resume too, unless it is moved apart."""
    return {"rollout.resume": keymap["rollout.pause"], **keymap} if "rollout.pause" in keymap else dict(keymap)
