"""A check is one comparison on one metric: "< 1%", "> 99.9%", "<= 1.2x stable"."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from console.metric_catalogue import FRACTION_METRICS
from console.units import UnitError, format_metric_value, parse_metric_value

_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CHECK = re.compile(r"^\s*(<=|>=|<|>)\s*(.+?)\s*$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*stable$", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """A comparison that holds when `canary OP value` (or `canary OP value × stable`)."""

    metric: str
    op: str
    value: float
    relative: bool = False
    consecutive: int = 1
    """Breaches in a row before a trigger acts (Argo's failureLimit + 1, Flagger's threshold)."""
    percent: bool = False
    """A business metric the plan declares a percentage: its fractions are shown as percentages."""

    def holds(self, canary: float | None, stable: float | None) -> bool | None:
        """True or False, or None when the data needed to tell is missing."""
        if canary is None or not math.isfinite(canary):
            return None
        if self.relative:
            if stable is None or not math.isfinite(stable):
                return None
            return _OPERATORS[self.op](canary, self.value * stable)
        return _OPERATORS[self.op](canary, self.value)

    def limit(self, stable: float | None) -> float | None:
        """The number the canary is compared with."""
        if not self.relative:
            return self.value
        return None if stable is None else self.value * stable

    def describe(self) -> str:
        if self.relative:
            return f"{self.op} {self.value:g}× stable"
        return f"{self.op} {format_metric_value(self.metric, self.value, self.percent)}"


def parse_check(metric: str, text: object, consecutive: int = 1, unit: str | None = None) -> Check:
    """Read "< 1%", ">= 99.9%", "< 500ms", "<= 1.2x stable"; raise UnitError when it cannot.

    `unit`: how the plan writes this metric's limits (console.units.limit_unit)."""
    if not isinstance(text, str):
        raise UnitError(f'expected a comparison like "< 1%" or "<= 1.2x stable", got {text!r}')
    match = _CHECK.match(text)
    if not match:
        raise UnitError(f'expected a comparison like "< 1%" or "<= 1.2x stable", got {text!r}')
    op, operand = match.groups()
    percent = unit is not None and metric not in FRACTION_METRICS
    relative = _RELATIVE.match(operand)
    if relative:
        return Check(metric, op, float(relative.group(1)), relative=True, consecutive=consecutive, percent=percent)
    return Check(metric, op, parse_metric_value(metric, operand, unit), consecutive=consecutive, percent=percent)
