"""A flagd flag definition document kept as text, so edits touch only the flags that change.

Every byte outside a changed flag's value stays as it was: the other flags, "$schema",
"$evaluators", "metadata", key order, spacing and line endings. Changed flags are written
in the style of the flag they replace (one line, or indented like their neighbours).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from console import strict_json
from console.flags.errors import FlagFileError, UnknownFlagError
from console.flags.model import Flag, flag_from_definition

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
_EMPTY_DOCUMENT = f'{{\n  "$schema": "{SCHEMA_URL}",\n  "flags": {{}}\n}}\n'
_WHITESPACE = " \t\n\r"
_DEFAULT_INDENT = "  "
_LINE_WIDTH = 88
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class _Member:
    """One `"key": value` of a JSON object, by position in the text."""

    key: str
    key_start: int
    value_start: int
    value_end: int


@dataclass(frozen=True)
class _Object:
    """A JSON object by position: `start` at its "{", `end` just past its "}"."""

    start: int
    end: int
    members: tuple[_Member, ...]

    def member(self, key: str) -> _Member | None:
        # The last one wins, as in json.loads.
        return next((member for member in reversed(self.members) if member.key == key), None)


@dataclass(frozen=True)
class _Splice:
    """The document's text from `start` to `end` replaced by `text`."""

    start: int
    end: int
    text: str


class FlagDocument:
    """The flags of one document, and the document's text with some flags replaced or added."""

    def __init__(self, text: str | None, source: str):
        """Parse `text` (None or blank: no document yet); FlagFileError names the line of any problem."""
        self.source = source
        self.text = text or ""
        self._newline = "\r\n" if "\r\n" in self.text else "\n"
        self._root: _Object | None = None
        self._flags: _Object | None = None
        self.definitions: dict[str, dict[str, Any]] = {}
        if self.text.strip():
            self._parse()

    @property
    def flags(self) -> list[Flag]:
        """Every flag, in document order."""
        return [flag_from_definition(name, definition) for name, definition in self.definitions.items()]

    def flag(self, name: str) -> Flag:
        if name not in self.definitions:
            raise UnknownFlagError(f"no flag named {name!r}{_did_you_mean(name, self.definitions)}")
        return flag_from_definition(name, self.definitions[name])

    def edited(self, definitions: Mapping[str, dict[str, Any]]) -> str:
        """The document's text with these flag definitions in place of (or added after) the current ones."""
        if self._root is None:
            return FlagDocument(_EMPTY_DOCUMENT, self.source).edited(definitions)
        splices = []
        additions = {}
        members = {member.key: member for member in self._flags.members} if self._flags else {}
        for name, definition in definitions.items():
            member = members.get(name)
            if member is None:
                additions[name] = definition
            else:
                splices.append(self._replacement(member, definition))
        if additions:
            if self._flags is None:
                root_indent = self._line_indent(self._root.start)
                splices.append(self._insertion(self._root, root_indent, {"flags": additions}))
            else:
                owner = self._root.member("flags")
                splices.append(self._insertion(self._flags, self._line_indent(owner.key_start), additions))
        return _apply(self.text, splices)

    def _parse(self) -> None:
        try:
            data = json.loads(self.text)
        except json.JSONDecodeError as error:
            message = f"invalid JSON: {error.msg} (column {error.colno})"
            raise FlagFileError(self.source, message, error.lineno) from error
        start = _skip_whitespace(self.text, 0)
        if not isinstance(data, dict):
            raise FlagFileError(self.source, "a flag document is a JSON object", self._line(start))
        self._root = _scan_object(self.text, start)
        flags_member = self._root.member("flags")
        if flags_member is None:
            return
        if not isinstance(data["flags"], dict):
            raise FlagFileError(self.source, '"flags" must be an object of flags', self._line(flags_member.value_start))
        self._flags = _scan_object(self.text, flags_member.value_start)
        maybe_not_json = "NaN" in self.text or "Infinity" in self.text  # Python's json reads them, flagd does not; a flag walked only then
        for member in self._flags.members:
            name, definition = member.key, data["flags"][member.key]
            if name in self.definitions:
                raise FlagFileError(self.source, f"flag {name!r} is defined twice", self._line(member.key_start))
            if not isinstance(definition, dict):
                raise FlagFileError(self.source, f"flag {name!r} must be an object", self._line(member.value_start))
            if maybe_not_json and (problem := strict_json.what_is_not_json(definition)) is not None:
                raise FlagFileError(self.source, f"flag {name!r}: {problem}", self._line(member.value_start))
            self.definitions[name] = definition

    def _replacement(self, member: _Member, definition: dict[str, Any]) -> _Splice:
        one_line = "\n" not in self.text[member.value_start : member.value_end]
        value = self._render(definition, self._line_indent(member.key_start), one_line)
        return _Splice(member.value_start, member.value_end, value)

    def _insertion(self, target: _Object, owner_indent: str, values: Mapping[str, Any]) -> _Splice:
        """New members at the end of `target`, indented like its members (or one level below its owner's line)."""
        one_line = "\n" not in self.text[self._root.start : self._root.end]
        if target.members:
            last = target.members[-1]
            indent = self._line_indent(last.key_start)
            start = end = last.value_end
            opening, closing = ",", ""
        else:
            indent = owner_indent + self._indent_unit()
            start, end = target.start + 1, target.end - 1
            opening, closing = "", ("" if one_line else self._newline + owner_indent)
        separator = " " if one_line else self._newline + indent
        members = ",".join(f"{separator}{_json(key)}: {self._render(value, indent, one_line)}" for key, value in values.items())
        return _Splice(start, end, opening + members + closing)

    def _render(self, value: Any, indent: str, one_line: bool) -> str:
        if one_line:
            return _json(value)
        return _layout(value, indent, self._indent_unit(), self._newline, always_break=True)

    def _indent_unit(self) -> str:
        """The file's indentation step: how far its first top-level key is indented."""
        if self._root is None or not self._root.members:
            return _DEFAULT_INDENT
        first_key = self._root.members[0].key_start
        on_own_line = self.text.rfind("\n", 0, first_key) > self._root.start
        return (self._line_indent(first_key) if on_own_line else "") or _DEFAULT_INDENT

    def _line_indent(self, index: int) -> str:
        """The whitespace that starts the line holding `index`."""
        line = self.text[self.text.rfind("\n", 0, index) + 1 : index]
        return line[: len(line) - len(line.lstrip(" \t"))]

    def _line(self, index: int) -> int:
        return self.text.count("\n", 0, index) + 1


def _scan_object(text: str, start: int) -> _Object:
    """The members of the object whose "{" is at `start`, in text already known to be valid JSON."""
    members = []
    index = _skip_whitespace(text, start + 1)
    while text[index] != "}":
        key, after_key = json.decoder.scanstring(text, index + 1)
        value_start = _skip_whitespace(text, _skip_whitespace(text, after_key) + 1)
        _, value_end = _decoder.raw_decode(text, value_start)
        members.append(_Member(key, index, value_start, value_end))
        index = _skip_whitespace(text, value_end)
        if text[index] == ",":
            index = _skip_whitespace(text, index + 1)
    return _Object(start, index + 1, tuple(members))


def _layout(value: Any, indent: str, unit: str, newline: str, always_break: bool = False) -> str:
    """`value` as JSON whose continuation lines start with `indent`: short containers on one line, long ones broken."""
    compact = _json(value)
    fits = len(indent) + len(compact) <= _LINE_WIDTH
    if not isinstance(value, (dict, list)) or not value or (fits and not always_break):
        return compact
    inner = indent + unit
    if isinstance(value, dict):
        items = [f"{_json(key)}: {_layout(item, inner, unit, newline)}" for key, item in value.items()]
        opening, closing = "{", "}"
    else:
        items = [_layout(item, inner, unit, newline) for item in value]
        opening, closing = "[", "]"
    separator = "," + newline + inner
    return f"{opening}{newline}{inner}{separator.join(items)}{newline}{indent}{closing}"


def _json(value: Any) -> str:
    """`value` as one line of JSON, non-ASCII text kept as it is."""
    return strict_json.dumps(value, separators=strict_json.SPACED, ensure_ascii=False)


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _apply(text: str, splices: list[_Splice]) -> str:
    pieces, position = [], 0
    for splice in sorted(splices, key=lambda splice: splice.start):
        pieces += [text[position : splice.start], splice.text]
        position = splice.end
    pieces.append(text[position:])
    return "".join(pieces)


def _did_you_mean(name: str, names: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
