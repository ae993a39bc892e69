"""A DataTable whose rows have keys and are updated in place, cell by cell, only when they change."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Column = tuple[str, str, "int | None"]
"""(key, header, width); a width of None takes the room the other columns leave."""


class KeyedTable(DataTable):
    """The base of the console's tables: rows keyed by name, redrawn only where they changed.

    Tables with fixed column widths set `FIXED_WIDTHS`: then an update repaints one row, not the
    whole table, which is most of the bytes a refresh sends over a slow link. Tables that fit
    their width say how in `columns_for`: they are laid out again when it changes, rows kept.
    Each says what its highlighted row is in full (`detail_of`), for a line under the table.
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
        self._layout: tuple[tuple[str, str, int], ...] = ()

    def columns_for(self, width: int) -> Sequence[Column]:
        """The columns for a table `width` cells wide; none: the columns are added by hand."""
        return ()

    def detail_of(self, key: str) -> str:
        """The row `key` in full, for the line under the table."""
        return ""

    @property
    def highlighted_detail(self) -> str:
        key = self.highlighted_key
        return self.detail_of(key) if key is not None else ""

    def on_resize(self, event: events.Resize) -> None:
        self.lay_out()

    def lay_out(self) -> bool:
        """Columns at fixed widths filling the table's width, the rows kept; True when they changed."""
        width = self.scrollable_content_region.width  # 0 before the first layout: a provisional one
        columns = self.columns_for(width)
        if not columns:
            return False
        padding = 2 * self.cell_padding
        rest = width - sum(w + padding for _, _, w in columns if w is not None) - padding
        layout = tuple((key, header, max(1, rest) if w is None else w) for key, header, w in columns)
        if layout == self._layout:
            return False
        same_keys = [key for key, _, _ in layout] == [key for key, _, _ in self._layout]
        rows = {key: self.get_row(key) for key in self._values} if same_keys else {}
        cursor = self.cursor_row
        self._layout = layout
        self.clear(columns=True)
        self._values = {key: self._values[key] for key in rows}
        for key, header, w in layout:
            self.add_column(header, key=key, width=w)
        for key, cells in rows.items():
            self.add_row(*cells, key=key)
        self.move_cursor(row=cursor)
        return True

    def upsert(self, key: str, cells: Sequence[Text]) -> None:
        """Add the row `key`, or update it when what it shows changed (not merely the data behind it)."""
        value = tuple((cell.plain, str(cell.style), tuple(cell.spans)) for cell in cells)
        if not self._layout:
            self.lay_out()
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
