"""JSON as Brahma writes it, everywhere: journal lines, the controller's socket both ways, `--json` output,
the pre-flight's JSON, webhooks, the launch record, the simulator's state and flag documents.

JSON has no NaN or Infinity. Python's json writes them as bare words that jq, flagd, Go and JSON.parse
refuse, so here they are refused before anything is written, and the error names the field. A value
that is not JSON at all (a set, a Path, an object) is refused the same way rather than written as its
str(): a journal line must read back as what was journaled. Values that may be missing (a metric with
no data) are made None with `finite_or_none` where they are made, so a refusal is a bug's symptom.
"""

from __future__ import annotations

import json
import math
from typing import Any

COMPACT = (",", ":")
"""Journal lines and the socket: no spaces."""
SPACED = (", ", ": ")
"""Text people read on one line (a flag's value in its document, a value in a message)."""
INDENTED = (",", ": ")
"""Files written with an indent."""

_compact = json.JSONEncoder(separators=COMPACT, allow_nan=False)
"""The encoder of every JSON line, made once: a journal append is the hot path."""


class NotJSON(ValueError):
    """A value JSON cannot hold; the message says where it is in what was being written."""


def dumps(value: Any, *, indent: int | None = None, separators: tuple[str, str] | None = None, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """`value` as JSON text: compact unless `separators` or `indent` say otherwise; NotJSON for what JSON cannot hold."""
    try:
        if indent is None and separators is None and not sort_keys and ensure_ascii:
            return _compact.encode(value)
        return json.dumps(
            value,
            indent=indent,
            separators=separators or (COMPACT if indent is None else INDENTED),
            sort_keys=sort_keys,
            ensure_ascii=ensure_ascii,
            allow_nan=False,
        )
    except (ValueError, TypeError, RecursionError) as error:
        raise NotJSON(what_is_not_json(value) or f"not JSON: {error}") from None


def line(value: Any) -> bytes:
    """`value` as one JSON line: compact, newline-terminated, UTF-8."""
    return (dumps(value) + "\n").encode()


def loads(text: str | bytes) -> Any:
    """JSON read as strictly as it is written: NaN, Infinity and -Infinity, which Python's json reads, are NotJSON."""
    return json.loads(text, parse_constant=_refuse_constant)


def finite_or_none(value: float | None) -> float | None:
    """A number JSON can hold, or None for one it cannot (NaN, an infinity): a value that is not there."""
    return value if value is not None and math.isfinite(value) else None


def what_is_not_json(value: Any) -> str | None:
    """Where in `value` the first thing JSON cannot hold is, and what it is ("metrics.error_rate.canary: nan is
    not a number JSON can hold"); None when all of it is JSON."""
    try:
        found = _first_problem(value, "")
    except RecursionError:  # nested past Python's stack, or circular
        return "the value: nested too deep (or circular)"
    if found is None:
        return None
    where, problem = found
    return f"{where or 'the value'}: {problem}"


def _refuse_constant(name: str) -> None:
    raise NotJSON(f"{name} is not JSON (it has no NaN or Infinity)")


def _first_problem(value: Any, where: str) -> tuple[str, str] | None:
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, f"{value} is not a number JSON can hold (it has no NaN or Infinity)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float))) or (isinstance(key, float) and not math.isfinite(key)):
                return (where, f"the key {key!r} is not JSON")
            found = _first_problem(item, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _first_problem(item, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    return (where, f"a {type(value).__name__} is not JSON")
