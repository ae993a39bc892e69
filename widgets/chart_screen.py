"""A metric over time, canary against stable, with its limits drawn as lines (plotext)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen

LimitKind = Literal["must", "pauses", "rolls back"]
LIMIT_COLORS = {"must": "green", "pauses": "yellow", "rolls back": "red"}
MARGIN = 0.05
"""Share of the y range left free above and below what is drawn."""


@dataclass(frozen=True)
class Limit:
    label: str
    """As the legend says it: "rolls back >1%"."""
    value: float
    kind: LimitKind


@dataclass(frozen=True)
class ChartData:
    metric: str
    unit: str
    times: tuple[float, ...]
    """Minutes on the rollout's clock."""
    canary: tuple[float | None, ...]
    stable: tuple[float | None, ...]
    limits: tuple[Limit, ...] = ()
    """Drawn as horizontal lines, each named in the legend."""


def _points(times: tuple[float, ...], values: tuple[float | None, ...]) -> tuple[list[float], list[float]]:
    pairs = [(t, v) for t, v in zip(times, values) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


def y_range(data: ChartData) -> tuple[float, float] | None:
    """The y axis: every value and every limit inside it, a margin around; from zero up when
    nothing drawn is negative. None when there is nothing to draw."""
    drawn = [v for v in (*data.canary, *data.stable) if v is not None] + [limit.value for limit in data.limits]
    if not drawn:
        return None
    low, high = min(drawn), max(drawn)
    margin = (high - low) * MARGIN or abs(high) * MARGIN or 1.0
    return (max(0.0, low - margin) if low >= 0 else low - margin), high + margin


class ChartScreen(ModalScreen[None]):
    """Canary and stable over the rollout's minutes; the limits as lines named in the legend
    (never as labels written over the plot), the y axis fitted to the data and the limits."""

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
        from textual_plotext import PlotextPlot  # plotext loads with the first chart, not with the screen that offers it

        self.plot = PlotextPlot()
        yield self.plot

    def on_mount(self) -> None:
        self.draw(self.data)

    def draw(self, data: ChartData) -> None:
        """Redraw with new data (the console calls this as samples arrive)."""
        self.data = data
        plot = self.plot
        plt = plot.plt
        plt.clear_data()
        plt.title(f"{data.metric} ({data.unit}) — canary vs stable")
        plt.xlabel("minutes")
        for label, values, color in (("canary", data.canary, "orange"), ("stable", data.stable, "cyan")):
            xs, ys = _points(data.times, values)
            if xs:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
        if data.times:
            span = [data.times[0], data.times[-1]]
            for limit in data.limits:
                plt.plot(span, [limit.value] * 2, label=limit.label, color=LIMIT_COLORS[limit.kind], marker="braille")
        fitted = y_range(data)
        if fitted is not None:
            plt.ylim(*fitted)
        plot.refresh()

    def action_close(self) -> None:
        self.dismiss()
