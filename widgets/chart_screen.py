"""A metric over time, canary against stable, with its limits drawn as lines (plotext)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual_plotext import PlotextPlot


@dataclass(frozen=True)
class ChartData:
    metric: str
    unit: str
    times: tuple[float, ...]
    """Minutes on the rollout's clock."""
    canary: tuple[float | None, ...]
    stable: tuple[float | None, ...]
    limits: tuple[tuple[str, float], ...] = ()
    """(label, value) pairs drawn as horizontal lines."""


def _points(times: tuple[float, ...], values: tuple[float | None, ...]) -> tuple[list[float], list[float]]:
    pairs = [(t, v) for t, v in zip(times, values) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


class ChartScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="chart.close")]

    DEFAULT_CSS = """
    ChartScreen {
        align: center middle;
    }
    ChartScreen PlotextPlot {
        width: 95%;
        height: 90%;
        border: round $accent;
    }
    """

    def __init__(self, data: ChartData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.draw(self.data)

    def draw(self, data: ChartData) -> None:
        """Redraw with new data (the console calls this as samples arrive)."""
        self.data = data
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title(f"{data.metric} ({data.unit}) — canary vs stable")
        plt.xlabel("minutes")
        for label, values, color in (("canary", data.canary, "orange"), ("stable", data.stable, "cyan")):
            xs, ys = _points(data.times, values)
            if xs:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
        for label, value in data.limits:
            plt.hline(value, color="red")
            if data.times:
                plt.text(label, x=data.times[0], y=value, color="red")
        plot.refresh()

    def action_close(self) -> None:
        self.dismiss()
