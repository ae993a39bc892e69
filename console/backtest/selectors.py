"""PromQL label matchers given on the command line (--canary-selector, --stable-selector), checked as
Prometheus parses them: `name op "value"` separated by commas, op one of = != =~ !~, the value in
double, single or back quotes; braces around the whole are allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATOR = re.compile(r"=~|!~|!=|=")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "r": "\r"}


class SelectorError(ValueError):
    """A selector Prometheus would refuse; the message says where."""


@dataclass(frozen=True)
class LabelMatcher:
    name: str
    operator: str
    value: str

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.operator}"{escaped}"'

    def matches_empty(self) -> bool:
        if self.operator in ("=", "!="):
            return (self.value == "") == (self.operator == "=")
        return (re.fullmatch(self.value, "") is not None) == (self.operator == "=~")


@dataclass(frozen=True)
class Selector:
    """A track's label matchers, in place of the plan's {matchers} (app, track and prometheus.labels)."""

    text: str
    """As given on the command line."""
    parts: tuple[LabelMatcher, ...]
    equal: dict[str, str] = field(default_factory=dict)
    """The labels pinned to one value (`=`): an answer's series labelled otherwise is not this track's."""

    @property
    def matchers(self) -> str:
        return ",".join(part.promql() for part in self.parts)


def parse_selector(text: str, option: str = "selector") -> Selector:
    """The matchers in `text`, or SelectorError naming `option` and the column where it goes wrong."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    parts: list[LabelMatcher] = []
    position = 0

    def fail(why: str) -> SelectorError:
        return SelectorError(f'{option} {text!r}: {why} at column {position + 1} (expected PromQL label matchers, e.g. pod="checkout-7f9",env!="dev")')

    while True:
        position = _skip_space(body, position)
        name = _NAME.match(body, position)
        if not name:
            raise fail("a label name")
        position = _skip_space(body, name.end())
        operator = _OPERATOR.match(body, position)
        if not operator:
            raise fail(f"an operator (=, !=, =~, !~) after {name.group()}")
        position = _skip_space(body, operator.end())
        value, position = _quoted(body, position, fail)
        matcher = LabelMatcher(name.group(), operator.group(), value)
        if matcher.operator in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise SelectorError(f"{option} {text!r}: {matcher.name}{matcher.operator}: not a regular expression ({error})") from None
        parts.append(matcher)
        position = _skip_space(body, position)
        if position == len(body):
            break
        if body[position] != ",":
            raise fail("a comma between matchers")
        position += 1
        if _skip_space(body, position) == len(body):
            break  # PromQL allows a trailing comma
    if all(part.matches_empty() for part in parts):
        raise SelectorError(f"{option} {text!r}: every matcher matches the empty label, so it would select every series: pin at least one label")
    equal = {part.name: part.value for part in parts if part.operator == "="}
    return Selector(text, tuple(parts), equal)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _quoted(text: str, position: int, fail) -> tuple[str, int]:
    """The string value starting at `position` (escapes resolved) and where it ends."""
    if position >= len(text) or text[position] not in "\"'`":
        raise fail("a quoted value")
    quote = text[position]
    position += 1
    value = []
    while position < len(text):
        char = text[position]
        if char == quote:
            return "".join(value), position + 1
        if char == "\\" and quote != "`":
            position += 1
            if position >= len(text) or text[position] not in _ESCAPES:
                raise fail("a known escape (\\n, \\t, \\\\, \\\", \\')")
            value.append(_ESCAPES[text[position]])
        elif char == "\n":
            raise fail("the closing quote")
        else:
            value.append(char)
        position += 1
    raise fail("the closing quote")
