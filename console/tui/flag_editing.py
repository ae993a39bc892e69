"""Flag changes asked for in a FlagPanel: confirmed where it matters, written to the store in a thread,
journaled with who did it, and a conflict with another writer said plainly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from console.flags.errors import FlagError, VersionConflict
from console.flags.model import Flag, FlagChange
from console.flags.store import ChangeResult, FlagStore
from widgets.confirm_screen import ConfirmScreen

if TYPE_CHECKING:  # the flags pane is mounted once the console's first frame shows: its module is loaded then
    from widgets.flag_panel import FlagPanel, FlagRow

Operation = Callable[[FlagStore], ChangeResult]


def flag_rows(flags: tuple[Flag, ...]) -> list[FlagRow]:
    from widgets.flag_panel import FlagRow

    return [FlagRow(f.name, f.enabled, f.percentage or 0, tuple(f.allowed_users), f.read_only, f.new) for f in flags]


class FlagEditing:
    """Mixed into an App or a Screen that has `flag_store`, `actor`, `record_flag_changes` and `refresh_flags`."""

    flag_store: FlagStore | None
    _flag_writes: asyncio.Lock | None = None
    """Flag writes one at a time, in the order asked (made on first use, in the app's loop)."""
    actor: str
    read_only: bool = False

    def record_flag_changes(self, changes: list[FlagChange]) -> None:
        raise NotImplementedError

    def refresh_flags(self) -> None:
        raise NotImplementedError

    async def change_flags(self, operation: Operation, what: str) -> None:
        if self.flag_store is None:
            return
        if self._flag_writes is None:
            self._flag_writes = asyncio.Lock()
        try:
            async with self._flag_writes:  # one write at a time, in the order asked: `+ +` is +10%
                result = await asyncio.to_thread(operation, self.flag_store)
        except (FlagError, VersionConflict, OSError) as error:
            self.notify(str(error), title=f"{what}: not changed", severity="error", timeout=15)
            return
        self.record_flag_changes(list(result.changes))
        if result.note:
            self.notify(f"{what}: {result.note}", title="Another writer changed the flags", severity="warning")
        self.refresh_flags()

    def on_flag_panel_edit_refused(self, message: FlagPanel.EditRefused) -> None:
        self.notify(f"{message.flag.name}: its targeting was not written by Brahma; change it where it was written.", title="Read-only flag")

    def on_flag_panel_toggle_requested(self, message: FlagPanel.ToggleRequested) -> None:
        flag, actor = message.flag, self.actor
        if flag.enabled:  # switching off is the safe direction: no question asked
            self.run_change(lambda store: store.disable(flag.name, actor=actor, reason="flag editor"), f"{flag.name} off")
            return
        users = f" and {flag.allowed} allowed users" if flag.allowed else ""
        self.app.push_screen(
            ConfirmScreen(f"Switch {flag.name} on?", f"{flag.percentage}% of users{users} get it within a second.", "Switch on (Enter / y)"),
            lambda ok: self.run_change(lambda store: store.enable(flag.name, actor=actor, reason="flag editor"), f"{flag.name} on") if ok else None,
        )

    def on_flag_panel_step_requested(self, message: FlagPanel.StepRequested) -> None:
        # From the store's share when the step is written, not the row's: a second `+` typed before the
        # first landed steps on from it.
        name, delta, actor = message.flag.name, message.delta, self.actor

        def step(store: FlagStore) -> ChangeResult:
            return store.set_percentage(name, max(0, min(100, store.get(name).percentage + delta)), actor=actor, reason="flag editor")

        self.run_change(step, f"{name} {delta:+d}%")

    def on_flag_panel_percentage_requested(self, message: FlagPanel.PercentageRequested) -> None:
        flag, percentage, actor = message.flag, message.percentage, self.actor
        self.run_change(lambda store: store.set_percentage(flag.name, percentage, actor=actor, reason="flag editor"), f"{flag.name} {percentage}%")

    def on_flag_panel_users_requested(self, message: FlagPanel.UsersRequested) -> None:
        # Against the users shown when the list was opened: another writer's additions since then stay.
        flag, wanted, shown, actor = message.flag, message.users, message.flag.users, self.actor

        def edit(store: FlagStore) -> ChangeResult:
            results = [store.allow(flag.name, u, actor=actor, reason="flag editor") for u in wanted if u not in shown]
            results += [store.disallow(flag.name, u, actor=actor, reason="flag editor") for u in shown if u not in wanted]
            return ChangeResult(tuple(c for r in results for c in r.changes), sum(r.conflicts for r in results))

        self.run_change(edit, f"{flag.name} users")

    def run_change(self, operation: Operation, what: str) -> None:
        if self.read_only:
            self.notify("This console is read-only.", title=what)
            return
        self.run_worker(self.change_flags(operation, what), group="flags", exit_on_error=False)
