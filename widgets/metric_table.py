"""Live metrics: one row per metric with its trend, canary beside stable, the limits, the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message

from widgets.keyed_table import KeyedTable
from widgets.sparkline_text import sparkline

Verdict = Literal["pass", "warn", "fail", "nodata", "idle"]
"""idle: nothing judges it (before the first stage, or no limit on it in this stage)."""
VERDICT_MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "nodata": "?", "idle": "·"}
VERDICT_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "nodata": "yellow", "idle": "dim"}
ROLLS_BACK, PAUSES = "⟲", "⏸"
"""What a trigger does, where one column shows the first of them (narrow tables)."""

# (key, header, width): the trend takes what the others leave. Narrow tables (80 columns) show one
# trigger, marked with what it does; wide ones show what pauses and what rolls back apart.
LEADING = (("metric", "metric", 10),)
VALUES = (("canary", "canary", 8), ("stable", "stable", 8), ("must", "must", 8))
NARROW_LIMITS = (("trigger", f"{ROLLS_BACK}/{PAUSES} at", 9),)
WIDE_LIMITS = (("pauses", "pauses", 9), ("rolls_back", "rolls back", 11))
VERDICT = (("verdict", "", 2),)
MIN_TREND = 6
MIN_SPARKLINE = 3
"""Fewer cells than this beside a judged metric's ratio show no sparkline at all: the ratio takes the cell."""
WIDE_TREND = 12
"""The trend a wide table keeps: below it the table goes narrow and the trend keeps its room."""


@dataclass(frozen=True)
class MetricRow:
    name: str
    label: str
    """The short name shown (the table must fit 80 columns)."""
    history: tuple[float | None, ...]
    canary: str
    stable: str
    must: str = ""
    """The stage's pass condition ("<1%"; "<400ms+" when there are more): a goal."""
    pauses: str = ""
    """The warning trigger (">0.5%"): crossing it pauses the rollout. Never a goal."""
    rolls_back: str = ""
    """The critical trigger (">1%"): crossing it rolls back. Never a goal."""
    verdict: Verdict = "idle"
    detail: str = ""
    """Every limit in words, for the line under the table ("errors: pauses >0.5% ×2 · rolls back >1% · must <1%")."""
    band: tuple[float, float] | None = None
    """The band the trend is drawn in (from the limits); None: from zero to the highest value."""
    ratio: tuple[str, ...] = ()
    """The sequential judge's rate ratio to stable in less and less room: with its interval ("×2.8 [1.1–5.8]"),
    the interval ("×1.1–5.8"), the ratio ("×2.8"); none when the judge weighs no such metric."""


def layout(width: int) -> tuple[tuple[str, str, int], ...]:
    """The columns for a table `width` cells wide, the trend's width filled in."""
    for limits in (WIDE_LIMITS, NARROW_LIMITS):
        fixed = LEADING + VALUES + limits + VERDICT
        trend = width - sum(w for _, _, w in fixed)
        if limits is NARROW_LIMITS or trend >= WIDE_TREND:
            return LEADING + (("trend", "trend", max(MIN_TREND, trend)),) + VALUES + limits + VERDICT
    raise AssertionError("unreachable")


def trend_cell(row: MetricRow, width: int, gap: bool) -> Text:
    """The trend in `width` cells after a space, a judged metric's ratio at its end: the first of its
    forms that fits, the sparkline taking what is left, or none when that is too little. With no
    sparkline the ratio may take the space too, when the name before it leaves a `gap` in its column."""
    said = next((form for form in row.ratio if cell_len(form) <= width + (1 if gap else 0)), "")
    if not said:
        return Text(" " + sparkline(row.history, width, row.band).rjust(width), style="cyan")
    room = width - cell_len(said) - 1
    if room < MIN_SPARKLINE:
        return Text(" " * (width + 1 - cell_len(said)) + said)
    return Text.assemble((" " + sparkline(row.history, room, row.band).rjust(room), "cyan"), " " + said)


class MetricTable(KeyedTable):
    """A row per metric; Enter asks for a chart of the highlighted one.

    The verdict is a mark as well as a colour, so the table reads the same without colour. The
    stage's pass condition ("must") has a column apart from the triggers, which are never goals.
    Columns have fixed widths so a new sample repaints only the rows that changed; they are laid
    out again when the table's width changes, the trend taking the room. A metric the sequential
    judge weighs shows its ratio to stable at the trend's end, taking the cell when it is narrow.
    """

    DEFAULT_CSS = """
    MetricTable {
        overflow-x: hidden;
    }
    """

    BINDINGS = [Binding("enter", "chart", "Chart", id="metrics.chart", tooltip="Chart canary vs stable for this metric")]

    class ChartRequested(Message):
        """The operator asked for a metric's chart."""

        def __init__(self, metric: str) -> None:
            self.metric = metric
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(cell_padding=0, **kwargs)
        self._rows: dict[str, MetricRow] = {}

    FIXED_WIDTHS = True

    def columns_for(self, width: int) -> tuple[tuple[str, str, int], ...]:
        return tuple((key, f" {header}" if header else "", w) for key, header, w in layout(width))

    def on_resize(self, event: events.Resize) -> None:
        if self.lay_out():
            self.show(list(self._rows.values()))  # the trend is as wide as its new column

    def show(self, rows: list[MetricRow]) -> None:
        """Update in place: only cells that changed are redrawn (a poor SSH link will thank us)."""
        if not self._layout:
            self.lay_out()
        for row in rows:
            self._rows[row.name] = row
            self.upsert(row.name, self._cells(row))

    def detail_of(self, key: str) -> str:
        """Every limit of the metric, in words."""
        row = self._rows.get(key)
        return row.detail if row else ""

    def _cells(self, row: MetricRow) -> tuple[Text, ...]:
        style = VERDICT_STYLES[row.verdict]
        cells = {
            "metric": Text(f" {row.label}", no_wrap=True, overflow="ellipsis"),
            "canary": Text(f" {row.canary}", style=style, justify="right"),
            "stable": Text(f" {row.stable}", justify="right"),
            "must": Text(f" {row.must}", style="bold"),
            "trigger": Text(f" {ROLLS_BACK}{row.rolls_back}" if row.rolls_back else f" {PAUSES}{row.pauses}" if row.pauses else "", style="dim"),
            "pauses": Text(f" {row.pauses}", style="dim"),
            "rolls_back": Text(f" {row.rolls_back}", style="dim"),
            "verdict": Text(f" {VERDICT_MARKS[row.verdict]}", style=style),
        }
        widths = {key: width for key, _, width in self._layout}
        cells["trend"] = trend_cell(row, widths["trend"] - 1, gap=cell_len(cells["metric"].plain) < widths["metric"])
        return tuple(cells[key] for key, _, _ in self._layout)

    def action_chart(self) -> None:
        if self.highlighted_key is not None:
            self.post_message(self.ChartRequested(self.highlighted_key))
