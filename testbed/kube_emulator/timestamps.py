"""Timestamps as the API writes them: RFC 3339 in UTC, whole seconds."""

from __future__ import annotations

import calendar
import time

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(seconds: float) -> str:
    return time.strftime(_FORMAT, time.gmtime(seconds))


def parse_time(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, _FORMAT)))
