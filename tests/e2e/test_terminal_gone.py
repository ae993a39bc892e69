"""A console whose terminal is gone leaves within a second, whatever started it.

`make demo` in tmux, then the tmux server killed: make gets the hang-up and waits for its child, so
`brahma demo` gets none, and spun at ~95% of a core on a deleted pty with its controller inside.
The timings below allow for a loaded machine (two shared cores): the console checks every 0.25 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from console.app.console import SHUTDOWN_GRACE_S
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state_dir import RolloutFiles
from console.supervisor.client import SupervisorClient
from console.supervisor.files import lock_held, lock_holder
from testbed.supervisor_support import ROLLOUT, wait_for_event, wait_until_gone
from testbed.tmux_terminal import TmuxTerminal
from tests.conftest import ROOT

GONE_WITHIN_S = 3.0
"""The console leaves in about a second; the rest is room for a busy machine."""
ENDED_WITHIN_S = GONE_WITHIN_S + SHUTDOWN_GRACE_S
"""Then its process ends: Textual's shutdown, which a dead terminal can hold forever, is cut short after SHUTDOWN_GRACE_S."""


def processes_of(marker: str) -> list[int]:
    """Python processes running brahma with `marker` (a test's own state dir) among their arguments: not the
    tmux server, nor a make or a shell that started them."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and b"python" in os.path.basename(argv[0]) and b"console.app" in argv and any(marker.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def console_pid(state_dir: Path) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = [p for p in processes_of(str(state_dir)) if b"supervise" not in Path(f"/proc/{p}/cmdline").read_bytes()]
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("the console never started")


def under_make(tmp_path: Path, *command: str) -> TmuxTerminal:
    """`make` running `brahma COMMAND` in a tmux terminal at 80x24: make, not brahma, is the session's leader."""
    makefile = tmp_path / "Makefile"
    makefile.write_text(".PHONY: brahma\nbrahma:\n\t" + " ".join([sys.executable, "-m", "console.app", *command]) + "\n")
    return TmuxTerminal(["make", "-s", "-f", str(makefile), "brahma"], 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"})


def gone_within(pid: int, seconds: float) -> float | None:
    """How long `pid` took to end (a zombie counts as ended), or None if it still runs after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return time.monotonic() - started
        if state == "Z":
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def ended_or_killed(pid: int) -> bool:
    """Whether `pid` ended within ENDED_WITHIN_S; one that did not is killed, so no test leaves it holding its state dir."""
    if gone_within(pid, ENDED_WITHIN_S) is not None:
        return True
    os.kill(pid, signal.SIGKILL)
    return False


def journal(state_dir: Path) -> list[ev.Event]:
    return list(read_events(next(state_dir.glob("*.jsonl"))))


def said_gone(state_dir: Path) -> str:
    [error] = [e for e in journal(state_dir) if isinstance(e, ev.ErrorRaised) and e.where == "console"]
    return error.message


def test_the_demo_under_make_leaves_when_the_tmux_server_is_killed_and_its_controller_stops_with_it(tmp_path):
    state_dir = tmp_path / "state"
    terminal = under_make(tmp_path, "demo", "--state-dir", str(state_dir))
    try:
        terminal.wait_for("RUNNING · new 5%")
        pid = console_pid(state_dir)
    finally:
        terminal.close()  # the tmux server killed: the pty is gone, the hang-up reaches make only
    assert gone_within(pid, ENDED_WITHIN_S) is not None, "the demo ran on with no terminal"
    assert said_gone(state_dir).startswith("the console's terminal is gone (its terminal answers Input/output error): the controller inside it stops with it")
    assert (state_dir / f"{ROLLOUT}.md").read_text().startswith(f"# Release {ROLLOUT}: unfinished"), "the report is written"


def test_the_demo_sent_sighup_leaves_with_its_journal_and_report(tmp_path):
    state_dir = tmp_path / "state"
    with TmuxTerminal([sys.executable, "-m", "console.app", "demo", "--state-dir", str(state_dir)], 80, 24, cwd=ROOT) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        pid = console_pid(state_dir)
        os.kill(pid, signal.SIGHUP)
        assert gone_within(pid, ENDED_WITHIN_S) is not None
    assert "(it was sent SIGHUP)" in said_gone(state_dir)
    assert (state_dir / f"{ROLLOUT}.md").exists()


def test_the_demo_whose_parent_is_killed_leaves_though_its_terminal_stays(tmp_path):
    state_dir = tmp_path / "state"
    parent = f"import subprocess, sys; subprocess.call([sys.executable, '-m', 'console.app', 'demo', '--state-dir', {str(state_dir)!r}])"
    with TmuxTerminal(["sh", "-c", f'{sys.executable} -c "{parent}"; sleep 30'], 80, 24, cwd=ROOT) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        pid = console_pid(state_dir)
        parent_pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(parent_pid, signal.SIGKILL)
        assert gone_within(pid, ENDED_WITHIN_S) is not None
    assert f"(the process that started it (pid {parent_pid}) is gone)" in said_gone(state_dir)


def test_an_attached_console_under_make_only_detaches_when_its_terminal_goes(tmp_path):
    files = RolloutFiles(tmp_path, ROLLOUT)
    terminal = under_make(tmp_path, "run", str(ROOT / "sample_configs" / "canary.yaml"), "--state-dir", str(tmp_path), "--speed", "60")
    try:
        terminal.wait_for("RUNNING · new 5%")
        pid = console_pid(tmp_path)
        terminal.close()
        assert gone_within(pid, ENDED_WITHIN_S) is not None
        left = wait_for_event(tmp_path, lambda e: isinstance(e, ev.ConsoleDetached), timeout_s=10)
        assert left.consoles == 0 and not [e for e in journal(tmp_path) if isinstance(e, ev.ErrorRaised) and e.where == "console"]
        controller = lock_holder(files)
        assert controller is not None and not wait_until_gone(controller, 1.0), "the controller goes on supervising"
    finally:
        terminal.close()
        controller = lock_holder(files)
        if controller is not None:
            with SupervisorClient(files.socket) as client:
                assert client.command("rollback", "tester@host")["ok"]
            assert wait_until_gone(controller)


def test_the_flag_editor_under_make_leaves_when_its_terminal_goes(tmp_path):
    flags = tmp_path / "flags.json"
    flags.write_text('{"flags": {}}\n')
    terminal = under_make(tmp_path, "flags", "--state-dir", str(tmp_path / "state"), str(flags))
    try:
        terminal.wait_for("Brahma flags")
        pid = console_pid(tmp_path)
    finally:
        terminal.close()
    assert gone_within(pid, GONE_WITHIN_S) is not None


def test_a_demo_whose_terminal_dies_as_it_quits_ends_all_the_same(tmp_path):
    """q, then the tmux server killed at once: Textual's writer thread died on the dead pty, its queue filled and
    the shutdown waited on it forever (0% CPU, the state dir's lock held). The console's last resort ends it."""
    state_dir = tmp_path / "state"
    with TmuxTerminal(
        [sys.executable, "-m", "console.app", "demo", "--state-dir", str(state_dir)], 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"}
    ) as terminal:
        terminal.wait_for("RUNNING · new 5%")
        pid = console_pid(state_dir)
        terminal.press("C-r")
        terminal.wait_for("Roll back checkout-2.4.1?")
        terminal.press("Enter")
        terminal.wait_for("ROLLED BACK")
        terminal.press("q")  # a finished rollout quits without asking; the server is killed as it does
    assert ended_or_killed(pid), "the console hung in its shutdown"
    files, deadline = RolloutFiles(state_dir, ROLLOUT), time.monotonic() + 1.0
    while lock_held(files) and time.monotonic() < deadline:  # a zombie's threads may still be dropping its descriptors
        time.sleep(0.02)
    assert not lock_held(files), "nobody holds the state dir any more"
    assert (state_dir / f"{ROLLOUT}.md").read_text().startswith(f"# Release {ROLLOUT}: rolled back"), "the report was written before"


def test_the_last_resort_ends_a_process_that_would_wait_forever_with_the_code_given():
    code = "import threading; from console.app.console import end_unless_gone_within; end_unless_gone_within(0.2, 7); threading.Event().wait()"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=30).returncode == 7
