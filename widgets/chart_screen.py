"""A metric over time, canary against stable, with its limits drawn as lines (plotext); under it, for a
metric weighed by a ratio to stable, that ratio and its interval over time, with the line that acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
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
class Band:
    """A ratio of canary to stable over time, with the interval around it (narrowing as evidence comes)."""

    times: tuple[float, ...]
    """Minutes on the rollout's clock."""
    ratio: tuple[float | None, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    """The interval's ends; None where it is unbounded (drawn at the chart's edge)."""
    line: float
    """The ratio the interval must lie above to act (1 + tolerance)."""
    line_label: str
    """As the legend says it: "rolls back once sure >×1.2"."""


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
    band: Band | None = None
    """A ratio to stable to draw under the values; None: the values alone."""


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


def band_range(band: Band) -> tuple[float, float]:
    """The y axis of a ratio: from zero to past the interval's highest bounded end and the line that acts."""
    high = max([v for v in (*band.high, *band.ratio) if v is not None] + [band.line])
    return 0.0, high * (1 + MARGIN)


class ChartScreen(ModalScreen[None]):
    """Canary and stable over the rollout's minutes; the limits as lines named in the legend
    (never as labels written over the plot), the y axis fitted to the data and the limits. A ratio
    to stable (the sequential judge's) has a plot of its own under it: its interval as two lines, an
    end not yet bounded drawn at the top or at zero, beside the line it must lie above to act."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="chart.close")]

    DEFAULT_CSS = """
    ChartScreen {
        align: center middle;
    }
    ChartScreen #charts {
        width: 95%;
        height: 90%;
        border: round $accent;
    }
    ChartScreen #values {
        height: 1fr;
    }
    ChartScreen #band {
        height: 1fr;
        display: none;
    }
    ChartScreen #band.shown {
        display: block;
    }
    """

    def __init__(self, data: ChartData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot  # plotext loads with the first chart, not with the screen that offers it

        with Vertical(id="charts"):
            self.plot = PlotextPlot(id="values")
            self.band_plot = PlotextPlot(id="band")
            yield self.plot
            yield self.band_plot

    def on_mount(self) -> None:
        self.draw(self.data)

    def draw(self, data: ChartData) -> None:
        """Redraw with new data (the console calls this as samples arrive)."""
        self.data = data
        self._draw_values(self.plot.plt, data)
        self.plot.refresh()
        self.band_plot.set_class(data.band is not None, "shown")
        if data.band is not None:
            self._draw_band(self.band_plot.plt, data.band)
            self.band_plot.refresh()

    @staticmethod
    def _draw_values(plt, data: ChartData) -> None:
        plt.clear_data()
        plt.title(f"{data.metric} ({data.unit}) — canary vs stable")
        if data.band is None:  # else the ratio's plot under it says it
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

    @staticmethod
    def _draw_band(plt, band: Band) -> None:
        plt.clear_data()
        # Said in the title, not a legend: a legend would cover the start, where the interval is widest.
        plt.title(f"canary ÷ stable in its interval · {band.line_label}")
        plt.xlabel("minutes")
        bottom, top = band_range(band)
        low = tuple(bottom if v is None else v for v in band.low)
        high = tuple(top if v is None else v for v in band.high)
        for values, color in ((high, "cyan"), (low, "cyan"), (band.ratio, "orange")):
            xs, ys = _points(band.times, values)
            if xs:
                plt.plot(xs, ys, color=color, marker="braille")
        plt.plot([band.times[0], band.times[-1]], [band.line] * 2, color=LIMIT_COLORS["rolls back"], marker="braille")
        plt.ylim(bottom, top)

    def action_close(self) -> None:
        self.dismiss()
