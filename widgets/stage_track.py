"""The stages of a release as a track: done, current and next, with the window's progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

StageStatus = Literal["done", "current", "next", "failed", "skipped"]
"""done: its window held; skipped: a promote went past it first; failed: the rollback happened in it."""


@dataclass(frozen=True)
class StageInfo:
    """One stage as the track shows it: its name, its label and how it went."""

    name: str
    label: str
    """What the track shows: the traffic weight ("25%"), or a flag step ("⚑5%")."""
    status: StageStatus


@dataclass(frozen=True)
class TrackState:
    """What the track shows: the stages, the window's progress, the state and the keys that act on it."""

    stages: tuple[StageInfo, ...] = ()
    elapsed_s: float = 0.0
    """Time into the current observation window."""
    window_s: float = 0.0
    state: str = ""
    """running, paused: why, waiting for promote, rolling back, rolled back, complete."""
    tone: Literal["ok", "warn", "bad", "idle"] = "idle"
    hint: tuple[tuple[str, str], ...] = ()
    """The keys that act on the state now, with what they do: (("space", "resume"), ("p", "promote to 50%"))."""


BAR_WIDTH = 16
MARKS = {"done": "✓", "current": "●", "next": "○", "failed": "✗", "skipped": "»"}


def _clock(seconds: float, days: bool = False) -> str:
    """mm:ss, or for a window of days `1d 04:12` (hours and minutes: a day-long window moves on a minute at a time)."""
    if days:
        day, into = divmod(int(seconds), 86400)
        return f"{day}d {into // 3600:02d}:{into % 3600 // 60:02d}"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


class StageTrack(Widget):
    """The track `✓ 5% ── » 25% ── ● 50% ── ○ 100%`, then the window's bar and the state, in full.

    A stage a promote went past before its window held is marked » and struck through, never ✓.
    The state wraps at words beside the bar (a pause reason is never cut); the keys that act on it
    get a line of their own below. Each part is its own child and is repainted only when its text changes: the track
    changes a few times a rollout, the bar once a sample.
    """

    DEFAULT_CSS = """
    StageTrack {
        height: auto;
        padding: 0 1;
    }
    StageTrack Static {
        height: auto;
    }
    StageTrack Horizontal {
        height: auto;
    }
    StageTrack #window {
        width: auto;
    }
    StageTrack #state {
        width: 1fr;
    }
    StageTrack .stage-track--done { color: $success; }
    StageTrack .stage-track--current { color: $accent; text-style: bold; }
    StageTrack .stage-track--next { color: $text-muted; }
    StageTrack .stage-track--failed { color: $error; text-style: bold; }
    StageTrack .stage-track--skipped { color: $warning; text-style: strike; }
    StageTrack .stage-track--ok { color: $success; text-style: bold; }
    StageTrack .stage-track--warn { color: $warning; text-style: bold; }
    StageTrack .stage-track--bad { color: $error; text-style: bold reverse; }
    StageTrack .stage-track--idle { color: $text-muted; }
    """
    COMPONENT_CLASSES = {
        "stage-track--done",
        "stage-track--current",
        "stage-track--next",
        "stage-track--failed",
        "stage-track--skipped",
        "stage-track--ok",
        "stage-track--warn",
        "stage-track--bad",
        "stage-track--idle",
    }

    track: reactive[TrackState] = reactive(TrackState, layout=False, repaint=False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: dict[str, Text] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="stages")
        with Horizontal():
            yield Static(id="window")
            yield Static(id="state")
        yield Static(id="hint")

    def watch_track(self, track: TrackState) -> None:
        if not self.is_mounted:
            return
        lines = (
            ("stages", self._stages_line(track)),
            ("window", self._window_bar(track)),
            ("state", Text(track.state, style=self._style(track.tone))),
            ("hint", self._hint_line(track)),
        )
        for child_id, text in lines:
            if self._shown.get(child_id) != text:
                self._shown[child_id] = text
                self.query_one(f"#{child_id}", Static).update(text)
        self.query_one("#hint").display = bool(track.hint)

    def on_mount(self) -> None:
        self.watch_track(self.track)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"stage-track--{name}")

    def _stages_line(self, track: TrackState) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, stage in enumerate(track.stages):
            if index:
                line.append(" ── ", style=self._style("next"))
            line.append(f"{MARKS[stage.status]} {stage.label}", style=self._style(stage.status))
        return line

    def _window_bar(self, track: TrackState) -> Text:
        bar = Text(no_wrap=True)
        if track.window_s > 0:
            filled = int(min(1.0, track.elapsed_s / track.window_s) * BAR_WIDTH)
            bar.append("█" * filled, style=self._style("current"))
            bar.append("░" * (BAR_WIDTH - filled), style=self._style("next"))
            days = track.window_s >= 86400
            bar.append(f" {_clock(track.elapsed_s, days)}/{_clock(track.window_s, days)}  ")
        return bar

    def _hint_line(self, track: TrackState) -> Text:
        line = Text()
        for index, (key, what) in enumerate(track.hint):
            line.append(" · " if index else "")
            line.append(key, style="bold")
            line.append(f" {what}")
        return line
