"""Parsing of the human units plans are written in: durations, percentages, latencies."""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class UnitError(ValueError):
    """A value that cannot be read in the unit its field expects."""


def parse_duration(value: object) -> float:
    """Seconds from "10m", "1h30m", "0.5s", "250ms" or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration like 10m or 1h30m, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise UnitError(f"a duration is a finite number of seconds, not {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a duration like 10m or 1h30m, got {value!r}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise UnitError(f"expected a duration like 10m, 1h30m or 500ms, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """The short form people read: 45s, 10m, 1h30m, 2h."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


# Metrics measured as fractions (thresholds may be written "1%") and in milliseconds.
FRACTION_METRICS = frozenset({"error_rate", "success_rate", "cpu", "memory"})
LATENCY_METRICS = frozenset({"latency_p50", "latency_p95", "latency_p99"})


def parse_metric_value(metric: str, value: object) -> float:
    """A threshold in the metric's canonical unit: fractions for rates, milliseconds for latency."""
    if isinstance(value, bool):
        raise UnitError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UnitError(f"expected a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a number, got {value!r}")
    text = value.strip().replace(" ", "")
    if metric in LATENCY_METRICS:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text)
        if not match:
            raise UnitError(f"expected a latency like 500ms or 0.5s, got {value!r}")
        number = float(match.group(1))
        return number * 1000.0 if match.group(2) == "s" else number
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)(%)?", text)
    if not match:
        unit_hint = "a percentage like 1% or a fraction like 0.01" if metric in FRACTION_METRICS else "a number"
        raise UnitError(f"expected {unit_hint}, got {value!r}")
    number = float(match.group(1))
    return round(number / 100.0, 12) if match.group(2) else number


def format_metric_value(metric: str, value: float | None) -> str:
    """A value as the console and the report show it."""
    if value is None:
        return "—"
    if metric in LATENCY_METRICS:
        return f"{value:.0f}ms"
    if metric in FRACTION_METRICS:
        percent = value * 100
        return f"{percent:.3g}%" if percent < 10 else f"{percent:.2f}".rstrip("0").rstrip(".") + "%"
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"
