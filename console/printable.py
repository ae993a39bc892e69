"""Text from outside Brahma (a check's output) made safe to print on a terminal, in a journal, in a report.

A program's output can carry terminal control: colours, a window title, a cursor move that
overwrites the line above, a lone carriage return that prints "PASS" over "FAIL". None of it may
reach the operator's terminal. Whole escape sequences (CSI, OSC, DCS and the other strings, and
the short ESC forms) are removed: they are formatting, and their text is noise in a log. Every
other control character is shown where it was, as its Unicode control picture (ESC as ␛, BEL
as ␇, a lone CR as ␍, DEL as ␡); a C1 control as ␛ and the character its 7-bit form ends with.
Newlines and tabs stay; CR LF becomes LF.
"""

from __future__ import annotations

import re

_ESCAPE_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS, SOS, PM, APC strings
    r"|\x1b(?![\[\]PX^_])[ -/]*[0-~]"  # the short forms: ESC c (reset), ESC ( B (character set), ESC 7 ...
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_DELETE_PICTURE = "\u2421"
_C1_START = 0x80


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x7F:
        return _DELETE_PICTURE
    if code >= _C1_START:  # C1 n is ESC followed by chr(0x40 + n)
        return "\u241b" + chr(code - _C1_START + 0x40)
    return chr(0x2400 + code)


def printable(text: str) -> str:
    """`text` with no terminal control left in it but newlines and tabs."""
    return _CONTROLS.sub(_picture, _ESCAPE_SEQUENCES.sub("", text.replace("\r\n", "\n")))
