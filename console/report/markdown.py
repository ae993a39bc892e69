"""Markdown that reads as plain text in a terminal (`less`) and renders on GitHub: tables whose
columns line up, prose wrapped, commands whole in code blocks, values never shown as Python reprs."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

WIDTH = 100
"""Prose is wrapped here; commands sit in code blocks, whole, to be copied."""
SUMMARY_WIDTH = 120
"""The three opening lines stay one line each, shortened past this."""


def plain(value: Any) -> str:
    """A journal value as a person reads it: never a Python repr."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return "; ".join(plain(v) for v in value) or "—"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table whose columns line up in a terminal (cells padded to their column's width)."""
    cells = [[_cell(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return [line.rstrip() for line in lines]


def bullet(text: str, mark: str = "-") -> list[str]:
    lead = f"{mark} "
    return textwrap.wrap(text, WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead), break_long_words=False, break_on_hyphens=False) or [lead.rstrip()]


def paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def code_block(commands: list[str]) -> list[str]:
    return ["```sh", *commands, "```"]


def wall(ts: str, weekday: bool = False) -> str:
    """The wall time of an event, HH:MM:SS (the date is given once, in Changes); with `weekday`, `Fri 14:00:00`,
    for a rollout that lasts days."""
    try:
        return datetime.fromisoformat(ts).strftime("%a %H:%M:%S" if weekday else "%H:%M:%S")
    except ValueError:
        return ts or "—"


def wall_span(first: str, last: str) -> str:
    try:
        start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
    except ValueError:
        return f"{first} → {last}"
    zone = start.strftime("%Z") or ""
    shown_end = end.strftime("%H:%M:%S") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M:%S")
    return f"{start:%Y-%m-%d %H:%M:%S} → {shown_end} {zone}".rstrip()
