"""`brahma demo` in a real terminal at 80x24, driven the way a person drives it."""

from __future__ import annotations

import sys

from console.controller import events as ev
from console.controller.journal import read_events
from tests.conftest import ROOT
from tests.e2e.tmux_terminal import TmuxTerminal


def demo(state_dir) -> TmuxTerminal:
    return TmuxTerminal([sys.executable, "-m", "console.cli", "demo", "--state-dir", str(state_dir)], 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"})


def rollback_of(state_dir) -> ev.RollbackStarted:
    journal = next(state_dir.glob("*.jsonl"))
    return next(e for e in read_events(journal) if isinstance(e, ev.RollbackStarted))


def test_fault_injection_leads_to_an_automatic_rollback_on_screen(tmp_path):
    with demo(tmp_path) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        assert "ROLL BACK" in terminal.screen()
        terminal.press("e")
        screen = terminal.wait_for("ROLLED BACK", timeout_s=30)
        assert "error_rate" in screen
        terminal.press("q")
    rollback = rollback_of(tmp_path)
    assert rollback.trigger == "error_rate"


def test_the_rollback_key_asks_then_rolls_back(tmp_path):
    with demo(tmp_path) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        terminal.press("C-r")
        screen = terminal.wait_for("Roll back checkout-2.4.1?")
        assert "Roll back (Enter / y)" in screen
        terminal.press("Enter")
        terminal.wait_for("ROLLED BACK")
        terminal.press("q")
        assert terminal.wait_closed(), "a finished rollout quits without asking"
    assert rollback_of(tmp_path).trigger == "operator"
