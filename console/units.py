"""Parsing of the human units plans are written in: durations, percentages, latencies."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from console.metric_catalogue import FRACTION_METRICS, LATENCY_METRICS

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
    """The short form people read: 45s, 10m, 1h30m, 2h; days apart, as a week-long schedule reads: 2d 4h, 7d."""
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    within_day = "".join([f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""])
    return " ".join(part for part in (f"{days}d" if days else "", within_day) if part) or "0s"


def parse_percentage(value: object) -> float:
    """A fraction from a percentage written with its %, "20%" → 0.2; a bare number is refused, since 20 would be 2000%."""
    match = _NUMBER.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or match.group(2) is None:
        raise UnitError(f'expected a percentage with its %, such as "20%", got {value!r}')
    return float(match.group(1)) / 100


LIMIT_UNITS = ("percent", "fraction")
"""How a plan may say a percentage metric's limits are written (metrics.units): with their % (the
built-ins' way), or as fractions from 0 to 1. Either way the values are fractions, shown as percentages."""

_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)(%)?")


def limit_unit(metric: str, declared: Mapping[str, str]) -> str | None:
    """How the metric's limits are written: as declared, "percent" for a built-in percentage, None for a plain number."""
    return declared.get(metric) or ("percent" if metric in FRACTION_METRICS else None)


def shown_as_percent(metric: str, declared: Mapping[str, str]) -> bool:
    """Whether the metric's values are fractions shown as percentages (the built-ins', or declared so)."""
    return limit_unit(metric, declared) is not None


def parse_metric_value(metric: str, value: object, unit: str | None = None) -> float:
    """A limit in the metric's canonical unit: fractions for percentages, milliseconds for latency.

    `unit` is how the plan writes the metric's limits (limit_unit): "percent" takes "5%" only, since a
    bare 5 (five percent, or five hundred percent read as a fraction?) or 0.05 cannot be told apart;
    "fraction" takes 0 to 1 (or "5%"). None: the metric's own (built-in percentages "percent",
    latencies in ms or s, other metrics plain numbers).
    """
    unit = unit or limit_unit(metric, {})
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnitError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)) and not math.isfinite(value):
        raise UnitError(f"expected a finite number, got {value!r}")
    text = str(value).strip().replace(" ", "")
    if metric in LATENCY_METRICS:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text)
        if not match:
            raise UnitError(f"expected a latency like 500ms or 0.5s, got {value!r}")
        number = float(match.group(1))
        return number * 1000.0 if match.group(2) == "s" else number
    match = _NUMBER.fullmatch(text)
    if unit is None:
        if not match or match.group(2):
            raise UnitError(f"expected a number, got {value!r}")
        return float(match.group(1))
    if not match:
        raise UnitError(f"expected a percentage like 1%{' or a fraction like 0.01' if unit == 'fraction' else ''}, got {value!r}")
    number, percent = float(match.group(1)), bool(match.group(2))
    if percent:
        if not 0 <= number <= 100:
            raise UnitError(f"a percentage is from 0% to 100%, got {value!r}")
        return round(number / 100.0, 12)
    if unit == "fraction":
        if not 0 <= number <= 1:
            raise UnitError(
                f"{metric}'s limits are fractions from 0 to 1 (metrics.units.{metric}: fraction), got {value!r}: "
                f'write {_shown(number / 100)} for {_shown(number)}%, or "{_shown(number)}%"'
            )
        return number
    raise UnitError(_bare_percentage(metric, number, value))


def _bare_percentage(metric: str, number: float, value: object) -> str:
    """Why a bare number is no percentage, and what to write instead."""
    unitless = f"{metric} is a percentage and {value!r} has no unit"
    if not 0 <= number <= 100:
        return f"{unitless}; a percentage is from 0% to 100%"
    if number > 1 or number == 0:
        return f'{unitless}: write "{_shown(number)}%" for {_shown(number)} percent'
    return (
        f'{unitless}: write "{_shown(number * 100)}%" if {_shown(number)} is a fraction, "{_shown(number)}%" if it is a '
        f"percentage, or declare metrics.units.{metric}: fraction to write this metric's limits as fractions"
    )


def _shown(number: float) -> str:
    return f"{round(number, 10):g}"


def format_metric_value(metric: str, value: float | None, percent: bool = False) -> str:
    """A value as the console and the report show it; `percent`: a fraction shown as a percentage,
    whatever its name (a business metric the plan declares one)."""
    if value is None:
        return "—"
    if metric in LATENCY_METRICS:
        return f"{value:.0f}ms"
    if percent or metric in FRACTION_METRICS:
        percent = value * 100
        return f"{percent:.3g}%" if percent < 10 else f"{percent:.2f}".rstrip("0").rstrip(".") + "%"
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"
