"""`brahma demo` in a real terminal at 80x24, driven the way a person drives it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from console.journal import events as ev
from console.journal.journal import read_events
from testbed.tmux_terminal import TmuxTerminal
from tests.conftest import ROOT
from tests.e2e.test_terminal_gone import console_pid, ended_or_killed


@contextlib.contextmanager
def demo(state_dir) -> Iterator[TmuxTerminal]:
    """`brahma demo` in tmux; when the test is done the tmux server is killed, and the console must end with it
    (one that hung in its shutdown held the state dir's lock for good)."""
    with TmuxTerminal(
        [sys.executable, "-m", "console.app", "demo", "--state-dir", str(state_dir)], 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"}
    ) as terminal:
        pid = console_pid(state_dir)
        yield terminal
    assert ended_or_killed(pid), f"the console (pid {pid}) ran on after its terminal was killed"


def rollback_of(state_dir) -> ev.RollbackStarted:
    journal = next(state_dir.glob("*.jsonl"))
    return next(e for e in read_events(journal) if isinstance(e, ev.RollbackStarted))


def test_fault_injection_leads_to_an_automatic_rollback_on_screen(tmp_path):
    with demo(tmp_path) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        assert "ROLL BACK" in terminal.screen()
        terminal.press("e")
        # the limit or the judge, whichever sees the spike first: both speak of errors
        screen = terminal.wait_for("rolled back in", timeout_s=30)
        assert "ROLLED BACK · error" in screen
        terminal.press("q")
    rollback = rollback_of(tmp_path)
    assert rollback.trigger in ("error_rate", "judge:error_rate")


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


def test_a_percentage_typed_in_one_burst_is_set_whole(tmp_path):
    with demo(tmp_path) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        terminal.press("Tab")  # from the metrics to the flags pane
        terminal.wait_for("= Set %")
        terminal.press("=", "BSpace", "4", "0", "Enter")  # one send-keys: the keys arrive in one read
        terminal.wait_for("off, 0% → off, 40%")
        terminal.press("=", "BSpace", "3", "0", "Enter")  # the 40 is selected: backspace takes it
        screen = terminal.wait_for("off, 40% → off, 30%")
        assert "Switch new-checkout-flow on?" not in screen, "the Enter went to the input, not to the toggle"
    journal = next(tmp_path.glob("*.jsonl"))
    changes = [e for e in read_events(journal) if isinstance(e, ev.FlagChanged) and e.reason == "flag editor"]
    assert [(c.old["percentage"], c.new["percentage"]) for c in changes] == [(0, 40), (40, 30)]
    assert not changes[-1].new["enabled"]


def test_make_demo_ends_well_after_the_demo_rolled_back_and_says_where_the_runbook_is(tmp_path):
    """The demo's rollback made `brahma demo` exit 3, and `make demo` ended with a make error."""
    from pathlib import Path

    venv = Path(sys.executable).parent.parent  # the Makefile's own demo recipe, on this interpreter's venv
    shell = f'make -s -C {ROOT} demo VENV={venv} STAMP=; echo "make exited $?"; sleep 30'
    with TmuxTerminal(["sh", "-c", shell], 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"}) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        terminal.press("e")
        terminal.wait_for("ROLLED BACK", timeout_s=30)
        terminal.press("q")
        screen = terminal.wait_for("make exited", timeout_s=15)
    assert "make exited 0" in screen and "Error" not in screen
    assert "brahma: the runbook: /" in screen and "checkout-2.4.1.md" in screen


def test_q_leaves_an_attached_console_with_exit_0_and_says_where_the_runbook_will_be(tmp_path):
    from console.journal.state_dir import RolloutFiles
    from console.supervisor.client import SupervisorClient
    from console.supervisor.files import lock_holder
    from testbed.supervisor_support import ROLLOUT, wait_until_gone

    run = f'{sys.executable} -m console.app run sample_configs/canary.yaml --state-dir {tmp_path} --speed 60; echo "brahma exited $?"; sleep 30'
    files = RolloutFiles(tmp_path, ROLLOUT)
    try:
        with TmuxTerminal(["sh", "-c", run], 240, 24, cwd=ROOT, env={"TERM": "xterm-256color"}) as terminal:  # wide: no line is wrapped
            terminal.wait_for("RUNNING · new 5%", timeout_s=20)
            terminal.press("q")
            screen = terminal.wait_for("brahma exited", timeout_s=15)
        assert "brahma exited 0" in screen
        assert f"the runbook is written to {files.journal.with_suffix('.md')} when the rollout ends" in screen
    finally:
        controller = lock_holder(files)
        if controller is not None:
            with SupervisorClient(files.socket) as client:
                assert client.command("rollback", "tester@host")["ok"]
            assert wait_until_gone(controller)
