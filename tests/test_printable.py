"""Terminal control in text from outside Brahma, neutralised: sequences removed, other controls shown."""

from __future__ import annotations

import pytest

from console.printable import printable


@pytest.mark.parametrize(
    "text, shown",
    [
        ("\x1b[1;31mFAILED\x1b[0m", "FAILED"),  # CSI: colours
        ("50%\x1b[2K\x1b[1G60%", "50%60%"),  # CSI: erase the line, back to its start
        ("\x9b31mred", "red"),  # the 8-bit CSI
        ("\x1b]0;owned\x07title", "title"),  # OSC ended by BEL
        ("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink ended by ST
        ("\x1bP+q544e\x1b\\after", "after"),  # DCS
        ("\x1bc\x1b(B\x1b7kept", "kept"),  # the short forms: reset, character set, save cursor
        ("\x1b[31", "␛[31"),  # a sequence cut short is shown, not passed on
        ("\x1b]0;never ended", "␛]0;never ended"),
        ("FAIL\rPASS", "FAIL␍PASS"),  # a lone CR cannot print over the line
        ("one\r\ntwo", "one\ntwo"),
        ("bell\x07 back\x08 nul\x00 del\x7f", "bell␇ back␈ nul␀ del␡"),
        ("next line\x85", "next line␛E"),  # C1 shown as ESC and its 7-bit final
        ("tabs\tand\nnewlines stay", "tabs\tand\nnewlines stay"),
        ("ünïcödé ✓ … 漢字", "ünïcödé ✓ … 漢字"),
    ],
)
def test_terminal_control_is_removed_or_shown(text, shown):
    assert printable(text) == shown


def test_nothing_a_terminal_acts_on_is_left_in_any_character():
    everything = "".join(chr(code) for code in range(0x100))
    controls = {chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n", "\t"}
    assert not controls & set(printable(everything))
