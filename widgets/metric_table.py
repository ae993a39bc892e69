"""Live metrics: one row per metric with its trend, canary beside stable, the limit, the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from widgets.keyed_table import KeyedTable
from widgets.sparkline_text import sparkline

Verdict = Literal["pass", "warn", "fail", "nodata", "idle"]
"""idle: nothing is judged yet (before the first stage)."""
VERDICT_MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "nodata": "?", "idle": "·"}
VERDICT_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "nodata": "yellow", "idle": "dim"}
TREND_WIDTH = 8
COLUMNS = (("metric", 13), ("trend", TREND_WIDTH + 1), ("canary", 9), ("stable", 9), ("limit", 9), ("", 2))


@dataclass(frozen=True)
class MetricRow:
    name: str
    label: str
    """The short name shown (the table must fit 80 columns)."""
    history: tuple[float | None, ...]
    canary: str
    stable: str
    limit: str
    verdict: Verdict


class MetricTable(KeyedTable):
    """A row per metric; Enter asks for a chart of the highlighted one.

    The verdict is a mark as well as a colour, so the table reads the same without colour.
    Columns have fixed widths so a new sample repaints only the rows that changed.
    """

    BINDINGS = [Binding("enter", "chart", "Chart", id="metrics.chart", tooltip="Chart canary vs stable for this metric")]

    class ChartRequested(Message):
        """The operator asked for a metric's chart."""

        def __init__(self, metric: str) -> None:
            self.metric = metric
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(cell_padding=0, **kwargs)

    FIXED_WIDTHS = True

    def on_mount(self) -> None:
        for label, width in COLUMNS:
            self.add_column(f" {label}", key=label or "verdict", width=width)

    def show(self, rows: list[MetricRow]) -> None:
        """Update in place: only cells that changed are redrawn (a poor SSH link will thank us)."""
        for row in rows:
            self.upsert(row.name, self._cells(row))

    @staticmethod
    def _cells(row: MetricRow) -> tuple[Text, ...]:
        style = VERDICT_STYLES[row.verdict]
        return (
            Text(f" {row.label}"),
            Text(" " + sparkline(row.history, TREND_WIDTH).rjust(TREND_WIDTH), style="cyan"),
            Text(f" {row.canary}", style=style, justify="right"),
            Text(f" {row.stable}", justify="right"),
            Text(f" {row.limit}", style="dim"),
            Text(f" {VERDICT_MARKS[row.verdict]}", style=style),
        )

    def action_chart(self) -> None:
        if self.highlighted_key is not None:
            self.post_message(self.ChartRequested(self.highlighted_key))
