"""Sparklines as text, so a whole metric row is one cheap line to redraw."""

from __future__ import annotations

from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
GAP = "·"


def sparkline(values: Sequence[float | None], width: int, band: tuple[float, float] | None = None) -> str:
    """The last `width` values as bars; gaps (no data) as dots.

    Bars are scaled within `band` (low, high), values beyond it drawn at its edge, so a band set by
    a limit draws noise far inside the limit flat, not as spikes. Without a band: from zero (or the
    lowest value, when below zero) to the highest value.
    """
    recent = list(values)[-width:]
    known = [v for v in recent if v is not None]
    if not known:
        return GAP * len(recent)
    low, high = band if band is not None else (min(0.0, *known), max(known))
    span = high - low
    top = len(BARS) - 1
    return "".join(GAP if v is None else BARS[0 if span <= 0 else max(0, min(top, int((v - low) / span * top + 0.5)))] for v in recent)
