"""The console on one rollout (`brahma run`, `attach`, `demo`): an app whose screen is the rollout's console.

The console itself is a screen (rollout_screen.py), which the fleet hosts too.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from textual import work
from textual.app import App
from textual.screen import Screen

from console.journal.state import Phase
from console.tui.rollout_screen import CONSOLE_BINDINGS, ConsoleKeys, RolloutScreen
from console.tui.starting_screen import StartingScreen

if TYPE_CHECKING:
    from console.rollout import Rollout


class Arriving(Protocol):
    """A rollout the console opens before it is known (its controller being started): what the console waits for,
    and the rollout once its controller answers (None when none will)."""

    waiting_for: str
    arrived: Callable[[], Rollout | None]
    """The rollout if it has arrived already, without waiting: the console then opens on it, with no starting screen."""
    rollout: Callable[[], Awaitable[Rollout | None]]


class BrahmaApp(ConsoleKeys, App[str]):
    """One rollout, supervised from the keyboard. It returns the rollout's phase as it left it."""

    CSS_PATH = "brahma.tcss"
    TITLE = "Brahma"
    BINDINGS = CONSOLE_BINDINGS
    ENABLE_COMMAND_PALETTE = True
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    def __init__(
        self,
        rollout: Rollout | None,
        *,
        read_only: bool = False,
        demo: bool = False,
        actor: str | None = None,
        keymap: dict[str, str] | None = None,
        arriving: Arriving | None = None,
    ):
        """The console on `rollout`; or, with `arriving` (and no rollout), opened at once on a screen saying what it
        waits for (StartingScreen), and on the rollout `arriving` gives once it comes (none: the app leaves)."""
        super().__init__()
        self._read_only, self._demo, self._actor = read_only, demo, actor
        self._console_keymap = keymap_with_resume(keymap) if keymap else {}
        self._arriving = arriving
        self.rollout_screen: RolloutScreen | None = None
        self.rollout: Rollout | None = None
        self.on_leaving: Callable[[Phase], None] = lambda phase: None
        """Told the phase once the console has done its own leaving, just before Textual's shutdown, which a dead
        terminal can hold forever: the application arms its last resort here."""
        if self._console_keymap:
            self.set_keymap(self._console_keymap)
        if rollout is not None:
            self._take(rollout)

    def _take(self, rollout: Rollout) -> None:
        self.rollout_screen = RolloutScreen(rollout, self._left, read_only=self._read_only, demo=self._demo, actor=self._actor)
        self.rollout_screen.keymap = self._console_keymap
        self.rollout = rollout
        self.controller = rollout.controller
        self.plan = rollout.controller.plan
        self.title = self.rollout_screen.title or self.TITLE

    def get_default_screen(self) -> Screen:
        if self.rollout_screen is None and self._arriving is not None and (rollout := self._arriving.arrived()) is not None:
            self._take(rollout)
        if self.rollout_screen is not None:
            return self.rollout_screen
        assert self._arriving is not None, "a console is opened on a rollout, or on one arriving"
        return StartingScreen(self._arriving.waiting_for)

    def on_mount(self) -> None:
        if self.rollout_screen is not None:
            self.watch(self.rollout_screen, "sub_title", self._show_sub_title)
        else:
            self.sub_title = ""
            self.await_rollout()
        self.call_after_refresh(self._collect_from_now_on)

    @work(exit_on_error=False, group="arrival")
    async def await_rollout(self) -> None:
        """The rollout once it arrives, shown in place of the starting screen; none: the app leaves (its opener says why)."""
        assert self._arriving is not None
        rollout = await self._arriving.rollout()
        if rollout is None:
            self.call_after_refresh(self.exit)  # once the starting screen is up: one leaving as it mounts can break it
            return
        self._take(rollout)
        assert self.rollout_screen is not None
        # Over the starting screen, which stays under it unseen: replaced, it would leave the stack empty a moment.
        await self.push_screen(self.rollout_screen)
        self.watch(self.rollout_screen, "sub_title", self._show_sub_title)

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
        return self.rollout_screen.flag_store if self.rollout_screen is not None else None

    def refresh_view(self) -> None:
        if self.rollout_screen is not None:
            self.rollout_screen.refresh_view()

    def refresh_flags(self) -> None:
        if self.rollout_screen is not None:
            self.rollout_screen.refresh_flags()


def binding_ids() -> set[str]:
    """The bindings a keymap may move keys of."""
    return {b.id for b in CONSOLE_BINDINGS if b.id}


def make_app(
    rollout: Rollout | None,
    *,
    read_only: bool = False,
    demo: bool = False,
    keymap: dict[str, str] | None = None,
    actor: str | None = None,
    arriving: Arriving | None = None,
) -> BrahmaApp:
    """The console for a rollout (or for one `arriving`); the CLI and the tests build it the same way."""
    return BrahmaApp(rollout, read_only=read_only, demo=demo, actor=actor, keymap=keymap, arriving=arriving)


def keymap_with_resume(keymap: dict[str, str]) -> dict[str, str]:
    """Pause and resume share a key: moving the pause key moves resume too, unless it is moved apart."""
    return {"rollout.resume": keymap["rollout.pause"], **keymap} if "rollout.pause" in keymap else dict(keymap)
