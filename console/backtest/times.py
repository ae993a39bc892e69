"""--at TIME: ISO 8601 (a naive time is UTC) or relative to now, `-3d`, `-36h`, `-90m`, `-1h30m`."""

from __future__ import annotations

from datetime import UTC, datetime

from console.units import UnitError, parse_duration


class TimeError(ValueError):
    """A TIME that cannot be read, or one not in the past."""


def parse_time(text: str, now: float, option: str = "--at") -> float:
    """Epoch seconds of `text`, whole seconds (the grid of the range queries); TimeError, naming `option`, when unreadable or not past."""
    stripped = text.strip()
    if stripped.startswith("-"):
        try:
            ago = parse_duration(stripped[1:])
        except UnitError:
            raise TimeError(f"{option} {text!r}: a relative time is a duration before now, like -3d, -36h, -90m or -1h30m") from None
        at = now - ago
    else:
        try:
            moment = datetime.fromisoformat(stripped)
        except ValueError:
            raise TimeError(f"{option} {text!r}: expected ISO 8601 (2026-12-01T10:00, a time without a zone is UTC) or a time before now like -36h") from None
        at = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    at = float(int(at))
    if at >= now:
        raise TimeError(f"{option} {text!r}: {format_wall(at)} is not in the past (now is {format_wall(now)}): a backtest replays history")
    return at


def format_wall(at: float) -> str:
    """`2026-12-01T10:00:00Z`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
