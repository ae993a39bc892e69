"""A rollout's controller as a console sees it, wherever it runs.

`Controller` (in the console's own process: `brahma demo`, the tests) and the supervisor's
`RemoteController` (a detached controller followed over its socket: `brahma run`, `brahma attach`)
both are one. The console reads the state they fold from the same journal, and talks to them only
through what is here; what one of them can do beside it is a protocol of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the console's first frame imports this
    from pathlib import Path

    from console.controller.controller import FlagChangeRecord
    from console.journal.events import Event
    from console.journal.state import Phase, RolloutState
    from console.plan.model import RolloutPlan
    from console.samples import HistoryPoint


class MetricHistory(Protocol):
    """What a console asks of the controller's metric source: past values for its charts."""

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]: ...


@runtime_checkable
class ControllerHandle(Protocol):
    """The face every controller shows a console: its plan, the state folded from its events, its
    events as they come, and the operators' commands going in."""

    @property
    def plan(self) -> RolloutPlan: ...

    @property
    def state(self) -> RolloutState:
        """The fold of every event so far: what the console shows, verdicts included, is read here."""
        ...

    @property
    def metrics(self) -> MetricHistory: ...

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """`listener` is told of every event after it is journaled."""

    def submit(self, name: str, actor: str, argument: str = "") -> None:
        """An operator's command (controller.COMMANDS), journaled with its actor."""

    def record_flag_changes(self, changes: list[FlagChangeRecord]) -> None:
        """Journal flag changes a console made beside the rollout (the kill switch, the flag editor)."""

    def now(self) -> float:
        """The rollout's clock: seconds since the first stage started (t <= 0 before)."""
        ...

    @property
    def state_dir(self) -> Path | None:
        """Where the rollout's journal (and its app's past ones) can be read from here; None for a pod's."""
        ...

    def stop(self) -> None:
        """The console is leaving: one in this process stops at its next step, one over a socket is
        only left, and goes on supervising."""

    async def run(self) -> Phase:
        """Supervise (or follow) the rollout until it ends or `stop()`; the phase it is in then."""
        ...


@runtime_checkable
class JournalingHandle(ControllerHandle, Protocol):
    """A controller in the console's own process: the console journals through it why it stops."""

    def emit(self, event: Event) -> None: ...


@runtime_checkable
class ConnectedHandle(ControllerHandle, Protocol):
    """A controller followed over its socket: it also tells the operator about the connection."""

    def on_notice(self, listener: Callable[[str], None]) -> None: ...
