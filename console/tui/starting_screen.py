"""What the console shows while its controller starts (`brahma run` opens it before the controller answers): the
header and footer the rollout's console will have, and a calm line saying what it waits for. Nothing is judged
and no key acts on the rollout until the controller answers with it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header

from widgets.stage_track import StageTrack, TrackState


class StartingScreen(Screen[None]):
    """Until the rollout's controller answers; q leaves (a controller started meanwhile goes on supervising)."""

    BINDINGS = [Binding("q", "leave", "Quit", id="app.quit")]

    def __init__(self, waiting_for: str):
        super().__init__()
        self.waiting_for = waiting_for
        """What the console waits for, as the state line says it: "waiting for the controller of canary.yaml"."""

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⟲")
        yield StageTrack(id="track")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StageTrack).track = TrackState(state=f"STARTING · {self.waiting_for}…", tone="idle")

    def action_leave(self) -> None:
        self.app.exit()
