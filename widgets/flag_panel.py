"""Feature flags at a glance: state, rollout percentage, allowed users."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from widgets.keyed_table import KeyedTable


@dataclass(frozen=True)
class FlagRow:
    name: str
    enabled: bool
    percentage: int
    allowed: int = 0
    read_only: bool = False


class FlagPanel(KeyedTable):
    """One row per flag; the state is a word as well as a colour."""

    def __init__(self, **kwargs) -> None:
        super().__init__(show_header=False, **kwargs)

    def on_mount(self) -> None:
        self.add_columns("flag", "state", "share")

    def show(self, rows: list[FlagRow]) -> None:
        for row in rows:
            cells = (
                Text(row.name + (" (ro)" if row.read_only else "")),
                Text("ON" if row.enabled else "off", style="bold green" if row.enabled else "dim"),
                Text(f"{row.percentage}%" + (f" +{row.allowed}" if row.allowed else ""), style="dim"),
            )
            self.upsert(row.name, cells)
