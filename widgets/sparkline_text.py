"""Sparklines as text, so a whole metric row is one cheap line to redraw."""

from __future__ import annotations

from typing import Sequence

BARS = "▁▂▃▄▅▆▇█"
GAP = "·"


def sparkline(values: Sequence[float | None], width: int) -> str:
    """The last `width` values as bars scaled between their min and max; gaps (no data) as dots."""
    recent = list(values)[-width:]
    known = [v for v in recent if v is not None]
    if not known:
        return GAP * len(recent)
    low, high = min(known), max(known)
    span = high - low
    return "".join(
        GAP if v is None else BARS[0 if span == 0 else min(len(BARS) - 1, int((v - low) / span * (len(BARS) - 1) + 0.5))]
        for v in recent
    )
