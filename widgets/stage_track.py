"""The stages of a release as a track: done, current and next, with the window's progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.console import RenderableType
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

StageStatus = Literal["done", "current", "next", "failed"]


@dataclass(frozen=True)
class StageInfo:
    name: str
    weight: int
    status: StageStatus


@dataclass(frozen=True)
class TrackState:
    stages: tuple[StageInfo, ...] = ()
    elapsed_s: float = 0.0
    """Time into the current observation window."""
    window_s: float = 0.0
    state: str = ""
    """running, paused: why, waiting for promote, rolling back, rolled back, complete."""
    tone: Literal["ok", "warn", "bad", "idle"] = "idle"


BAR_WIDTH = 16
MARKS = {"done": "✓", "current": "●", "next": "○", "failed": "✗"}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


class StageTrack(Widget):
    """A two-line track: `✓ 5% ── ● 25% ── ○ 50% ── ○ 100%`, then the window bar and the state."""

    DEFAULT_CSS = """
    StageTrack {
        height: 2;
        padding: 0 1;
    }
    StageTrack .stage-track--done { color: $success; }
    StageTrack .stage-track--current { color: $accent; text-style: bold; }
    StageTrack .stage-track--next { color: $text-muted; }
    StageTrack .stage-track--failed { color: $error; text-style: bold; }
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
        "stage-track--ok",
        "stage-track--warn",
        "stage-track--bad",
        "stage-track--idle",
    }

    track: reactive[TrackState] = reactive(TrackState, layout=False)

    def render(self) -> RenderableType:
        track = self.track
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, stage in enumerate(track.stages):
            if index:
                line.append(" ── ", style=self.get_component_rich_style("stage-track--next"))
            style = self.get_component_rich_style(f"stage-track--{stage.status}")
            line.append(f"{MARKS[stage.status]} {stage.weight}%", style=style)
        width = BAR_WIDTH
        bar = Text(no_wrap=True, overflow="ellipsis")
        if track.window_s > 0:
            done = min(1.0, track.elapsed_s / track.window_s)
            filled = int(done * width)
            bar.append("█" * filled, style=self.get_component_rich_style("stage-track--current"))
            bar.append("░" * (width - filled), style=self.get_component_rich_style("stage-track--next"))
            bar.append(f" {_clock(track.elapsed_s)}/{_clock(track.window_s)}  ")
        bar.append(track.state, style=self.get_component_rich_style(f"stage-track--{track.tone}"))
        return Text("\n").join([line, bar])
