"""A DataTable whose rows have keys and are updated in place, cell by cell, only when they change."""

from __future__ import annotations

from typing import Hashable, Sequence

from rich.text import Text
from textual.widgets import DataTable


class KeyedTable(DataTable):
    """The base of the console's tables: rows keyed by name, redrawn only where they changed."""

    DEFAULT_CSS = """
    KeyedTable {
        height: auto;
        max-height: 100%;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._values: dict[str, Hashable] = {}

    def upsert(self, key: str, value: Hashable, cells: Sequence[Text]) -> None:
        """Add the row `key`, or update the cells of a row whose value changed."""
        if key not in self._values:
            self.add_row(*cells, key=key)
        elif self._values[key] != value:
            for column, cell in zip(self.columns, cells):
                self.update_cell(key, column, cell, update_width=True)
        self._values[key] = value

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
