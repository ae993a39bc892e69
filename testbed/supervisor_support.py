"""Driving a detached controller from tests and benchmarks: start it, read its journal, drop its console."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state_dir import RolloutFiles
from console.supervisor.client import answers
from console.supervisor.files import lock_holder
from testbed import ROOT, SAMPLES
from testbed.tmux_terminal import TmuxTerminal

CANARY = SAMPLES / "canary.yaml"
ROLLOUT = "checkout-2.4.1"
SPEED = 60.0
FAULT_AT_S = 180.0
"""Rollout time of the injected fault: 3 minutes into stage 1, 3 s of wall time at SPEED."""
COMMAND_TIMEOUT_S = 30


def brahma(*args: str, env: dict[str, str] | None = None, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        umask=-1 if umask is None else umask,
    )


def write_fault_scenario(directory: Path, at_s: float = FAULT_AT_S) -> Path:
    """A healthy simulator whose canary starts failing 3% of requests at `at_s`: a critical breach."""
    path = directory / "fault.yaml"
    path.write_text(
        "name: fault\nseed: 7\n"
        "stable: {error_rate: 0.0001, latency_p99_ms: 240, rps: 2000}\n"
        "canary: {error_rate: 0.0001, latency_p99_ms: 245}\n"
        f"events:\n  - {{at: {at_s:g}s, track: canary, set: {{error_rate: 0.03}}}}\n"
    )
    return path


def supervise_detached(state_dir: Path, *options: str, env: dict[str, str] | None = None, umask: int | None = None) -> int:
    """`brahma supervise --detach` of the sample canary (from a shell with `env` and `umask`); the controller's pid."""
    result = brahma("supervise", str(CANARY), "--state-dir", str(state_dir), "--detach", *options, env=env, umask=umask)
    assert result.returncode == 0, result.stderr
    pid = lock_holder(RolloutFiles(state_dir, ROLLOUT))
    assert pid is not None
    return pid


def journal_events(state_dir: Path) -> list[ev.Event]:
    journal = RolloutFiles(state_dir, ROLLOUT).journal
    return list(read_events(journal)) if journal.exists() else []


def wait_for_event(state_dir: Path, found: Callable[[ev.Event], bool], timeout_s: float = 30.0) -> ev.Event:
    """Poll the journal until an event matches; TimeoutError with the last events otherwise."""
    deadline = time.monotonic() + timeout_s
    events: list[ev.Event] = []
    while time.monotonic() < deadline:
        events = journal_events(state_dir)
        match = next((e for e in events if found(e)), None)
        if match is not None:
            return match
        time.sleep(0.05)
    raise TimeoutError(f"no such event within {timeout_s:g}s; the last were: {[e.name for e in events[-5:]]}")


def wait_until_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stop_controller(files: RolloutFiles) -> None:
    """The rollout's detached controller stopped by its pid from the lock, if one answers: a failed test must not
    leave it running."""
    pid = lock_holder(files)
    if pid is not None and answers(files):
        os.kill(pid, signal.SIGTERM)
        wait_until_gone(pid)


def console_in_tmux(state_dir: Path, *options: str, width: int = 100) -> TmuxTerminal:
    """`brahma run` of the sample canary in a tmux terminal: a console attached to a detached controller."""
    return TmuxTerminal([sys.executable, "-m", "console.app", "run", str(CANARY), "--state-dir", str(state_dir), *options], width, 24, cwd=ROOT)


def ssh_drop_then_fault(state_dir: Path, drop: str = "kill-session") -> float:
    """`brahma run` in tmux, drop the console, let the fault arrive: wall seconds from the fault's
    scheduled moment to rollback_started, with no console attached.

    `drop` is how the console goes: "kill-session" (the terminal goes, as when SSH drops) or "sighup"
    (the hang-up signal alone, sent to the console).
    """
    scenario = write_fault_scenario(state_dir)
    terminal = console_in_tmux(state_dir, "--speed", f"{SPEED:g}", "--scenario", str(scenario))
    try:
        terminal.wait_for("stage 1 started", timeout_s=15)
        console = terminal.pid()
        if drop == "sighup":
            os.kill(console, signal.SIGHUP)
        else:
            terminal.kill_session()
        dropped = time.time()
    finally:
        terminal.close()
    assert wait_until_gone(console), "the console went with its terminal"
    pid = lock_holder(RolloutFiles(state_dir, ROLLOUT))
    assert pid is not None and pid != console
    stage = wait_for_event(state_dir, lambda e: isinstance(e, ev.StageStarted))
    fault_wall = datetime.fromisoformat(stage.ts).timestamp() + (FAULT_AT_S - stage.t) / SPEED
    assert dropped < fault_wall, "the console must be gone before the fault arrives"
    rollback = wait_for_event(state_dir, lambda e: isinstance(e, ev.RollbackStarted))
    assert wait_until_gone(pid), "the controller exits once the rollback is done"
    assert isinstance(rollback, ev.RollbackStarted) and rollback.trigger == "error_rate", rollback
    return datetime.fromisoformat(rollback.ts).timestamp() - fault_wall


FLOOD_FAULT_AT_S = 6.0
"""Rollout time of the fault under the flood: the flood has reached the socket by then."""
FLOOD_INTERVAL_S = 1.0
FLOOD_LONGEST_S = 60.0


def flood_during_fault(state_dir: Path, descriptors: int | None = None) -> tuple[float, dict[str, int]]:
    """A detached controller of the sample canary sampled every second in real time, its socket flooded
    (testbed/socket_flood.py) from the moment it answers until it has rolled back a fault at
    FLOOD_FAULT_AT_S on its own. With `descriptors`, the controller may open only so many files.

    Returns (seconds from the fault to rollback_started on the rollout clock, what the flood saw).
    """
    plan = state_dir / "every-second.yaml"
    plan.write_text(CANARY.read_text().replace("interval: 10s", f"interval: {FLOOD_INTERVAL_S:g}s", 1))
    scenario = write_fault_scenario(state_dir, FLOOD_FAULT_AT_S)
    files = RolloutFiles(state_dir, ROLLOUT)

    def limit_descriptors() -> None:  # inherited by the detached controller
        resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    started = subprocess.run(
        [sys.executable, "-m", "console.app", "supervise", str(plan), "--state-dir", str(state_dir), "--detach", "--speed", "1", "--scenario", str(scenario)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        preexec_fn=limit_descriptors if descriptors else None,
    )
    assert started.returncode == 0, started.stderr
    pid = lock_holder(files)
    flood = subprocess.run(
        [sys.executable, "-m", "testbed.socket_flood", str(files.socket), str(FLOOD_LONGEST_S)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=FLOOD_LONGEST_S + COMMAND_TIMEOUT_S,
    )
    assert flood.returncode == 0, flood.stderr
    assert pid is not None and wait_until_gone(pid), f"the controller exits once the rollback is done; {flood.stdout}\n{files.log.read_text()[-3000:]}"
    rollback = next(e for e in journal_events(state_dir) if isinstance(e, ev.RollbackStarted))
    assert rollback.trigger in ("error_rate", "judge:error_rate"), rollback  # the limit or the judge, whichever is sure first
    return rollback.t - FLOOD_FAULT_AT_S, json.loads(flood.stdout)
