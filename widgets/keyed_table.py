"""A DataTable whose rows have keys and are updated in place, cell by cell, only when they change."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class KeyedTable(DataTable):
    """The base of the console's tables: rows keyed by name, redrawn only where they changed.

    Tables with fixed column widths set `FIXED_WIDTHS`: then an update repaints one row, not the
    whole table, which is most of the bytes a refresh sends over a slow link.
    """

    FIXED_WIDTHS = False

    DEFAULT_CSS = """
    KeyedTable {
        height: auto;
        max-height: 100%;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._values: dict[str, tuple] = {}

    def upsert(self, key: str, cells: Sequence[Text]) -> None:
        """Add the row `key`, or update it when what it shows changed (not merely the data behind it)."""
        value = tuple((cell.plain, str(cell.style), tuple(cell.spans)) for cell in cells)
        if key not in self._values:
            self.add_row(*cells, key=key)
        elif self._values[key] != value and self.FIXED_WIDTHS:
            self._replace_row(key, cells)
        elif self._values[key] != value:
            for column, cell in zip(self.columns, cells):
                self.update_cell(key, column, cell, update_width=True)
        self._values[key] = value

    def _replace_row(self, key: str, cells: Sequence[Text]) -> None:
        # DataTable.update_cell repaints the whole table; with widths fixed only this row can change,
        # so its cells are set and just its line is repainted (DataTable's own data, textual pinned).
        row = self._data[RowKey(key)]
        for column, cell in zip(self.columns, cells):
            row[column] = cell
        self._update_count += 1
        self.refresh_row(self.get_row_index(key))

    def clear_rows(self) -> None:
        """Every row gone (the columns stay)."""
        self.clear()
        self._values.clear()

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
