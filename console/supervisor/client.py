"""Talking to a rollout's detached controller: attach, send commands, start it when it is not running."""

from __future__ import annotations

import gc
import json
import os
import select
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from console import strict_json
from console.journal.journal import JournalError
from console.journal.state import RolloutState, read_state
from console.journal.state_dir import RolloutFiles
from console.plan.model import RolloutPlan, plan_from_plain
from console.plan.names import release_name_problem
from console.private_files import make_state_dir, open_private
from console.supervisor.files import Launch, lock_holder, socket_address

CONNECT_TIMEOUT_S = 2.0
START_TIMEOUT_S = 15.0
POLL_S = 0.01
"""How often a controller being started is asked whether it answers: a console opens as soon as it does (a try is one connect)."""


class SupervisorUnavailable(Exception):
    """No controller answers on the rollout's socket (and none could be started)."""

    def __init__(self, message: str, exit_code: int | None = None, refused: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        """The exit code of the controller started, when it ended at once (having refused its plan or arguments, say)."""
        self.refused = refused
        """No controller could be started from this shell for want of what only the operator can give (a credential)."""


class SupervisorClient:
    """One connection to a controller's socket; blocking calls, each bounded by `timeout`."""

    def __init__(self, socket_path: Path, timeout: float = CONNECT_TIMEOUT_S):
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            with socket_address(socket_path) as address:
                self._socket.connect(address)
        except OSError as error:
            self._socket.close()
            raise SupervisorUnavailable(f"{socket_path}: {error.strerror or error}") from None
        self._lines = self._socket.makefile("rb")

    def _send(self, message: dict[str, Any]) -> None:
        self._socket.sendall(strict_json.line(message))

    def _receive(self) -> dict[str, Any] | None:
        line = self._lines.readline()
        return json.loads(line) if line else None

    def command(self, name: str, actor: str, argument: str = "") -> dict[str, Any]:
        """Send one command; the reply says whether the controller took it (it acts at its next step)."""
        self._send({"op": "command", "name": name, "actor": actor, "argument": argument})
        return self._receive() or {"reply": "command", "ok": False, "error": "the controller hung up"}

    def plan(self) -> RolloutPlan:
        """The plan the controller runs, as it compiled it."""
        self._send({"op": "plan"})
        reply = self._receive() or {"ok": False, "error": "the controller hung up"}
        if not reply.get("ok"):
            raise SupervisorUnavailable(f"the controller did not give its plan: {reply.get('error', 'no reason given')}")
        return plan_from_plain(reply["plan"])

    def attach(self, start: int = 0, actor: str | None = None) -> Iterator[dict[str, Any]]:
        """Journal events from the `start`-th, then live ones; ends when the rollout finishes.

        `actor`: who follows, journaled as attached (watching only: a follower cannot act).
        Raises TimeoutError when nothing arrives within the timeout (set it with `settimeout`).
        """
        self._send({"op": "attach", "from": start} | ({"actor": actor, "watch_only": True} if actor else {}))
        while (message := self._receive()) is not None:
            if "event" in message:
                yield message

    def settimeout(self, timeout: float | None) -> None:
        self._socket.settimeout(timeout)

    def close(self) -> None:
        self._lines.close()
        self._socket.close()

    def __enter__(self) -> SupervisorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def answers(files: RolloutFiles) -> bool:
    try:
        SupervisorClient(files.socket, timeout=CONNECT_TIMEOUT_S).close()
    except SupervisorUnavailable:
        return False
    return True


class Forked:
    """A controller started as a fork of this process (fork_controller): its pid, and its exit code once it has
    ended, as Popen's poll gives, told through a pipe (it is not this process's child: nothing here need reap it)."""

    def __init__(self, pid: int, told: int):
        self.pid = pid
        self.returncode: int | None = None
        self._told = told

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._told], [], [], 0)[0]:
            said = os.read(self._told, 64)
            self.returncode = int(said) if said.strip().lstrip(b"-").isdigit() else 1
            self.close()
        return self.returncode

    def close(self) -> None:
        if self._told >= 0:
            os.close(self._told)
            self._told = -1


def fork_controller(argv: list[str], environment: dict[str, str], log: BinaryIO, brahma: Callable[[list[str]], int]) -> Forked:
    """`brahma(["supervise", *argv])` in a fork of this process, in its own session, its output in `log`: as
    `python -m console.app supervise` would run, without starting an interpreter and importing it all again.
    Only for a process with no thread and no event loop yet (a console about to open, not one that is open).

    Forked twice, as a daemon is, so that the controller is nobody's child here; it tells its pid and, when it
    ends, its exit code through a pipe (whose end closes with it however it ends)."""
    sys.stdout.flush()
    sys.stderr.flush()
    told, telling = os.pipe()
    first = os.fork()
    if first:
        os.close(telling)
        os.waitpid(first, 0)  # it forks the controller and leaves at once
        line = b""
        while not line.endswith(b"\n") and (said := os.read(told, 1)):
            line += said
        forked = Forked(int(line) if line.endswith(b"\n") else first, told)
        if not line.endswith(b"\n"):  # the second fork failed (and said why on stderr)
            forked.returncode = 1
            forked.close()
        return forked
    code = 1
    try:
        os.close(told)
        os.setsid()
        if os.fork():
            os._exit(0)
        os.write(telling, f"{os.getpid()}\n".encode())
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        log.close()
        # Nothing else of the process it was forked from stays open in it (as Popen's close_fds): a pipe another
        # process reads to its end (a console waiting on the fork that starts its controller) ends with that fork.
        os.closerange(3, telling)
        os.closerange(telling + 1, os.sysconf("SC_OPEN_MAX"))
        os.environ.update(environment)
        # What the forking process made (its imports, the plan it read) lives as long as the controller: frozen, the
        # controller's collections (it collects from the start) neither search it all nor copy the pages it shares.
        gc.freeze()
        code = brahma(["supervise", *argv])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.write(telling, str(code).encode())
        finally:
            os._exit(code)  # never back into the stack of the process it was forked from


class Started(NamedTuple):
    """The controller that answers once one was started: its pid, and whether it is the one this process started
    (another may have won the rollout's lock meanwhile, with a plan of its own)."""

    pid: int
    ours: bool


def start_detached(
    files: RolloutFiles,
    launch: Launch,
    timeout: float = START_TIMEOUT_S,
    fork_with: Callable[[list[str]], int] | None = None,
) -> Started:
    """Start `brahma supervise` in its own session (it outlives this terminal) and wait until it answers.

    Returns the controller that answers. Its output goes to the rollout's log in the state dir.
    `fork_with` (the command line's main) starts it as a fork of this process (fork_controller).
    """
    make_state_dir(files.state_dir)
    with os.fdopen(open_private(files.log, os.O_WRONLY | os.O_APPEND), "ab") as log:
        said_before = log.tell()
        if fork_with is not None:
            process: subprocess.Popen[bytes] | Forked = fork_controller(launch.argv, launch.environment, log, fork_with)
        else:
            process = subprocess.Popen(
                [sys.executable, "-m", "console.app", "supervise", *launch.argv],
                env={**os.environ, **launch.environment},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    try:
        return _await_answer(files, process, said_before, timeout)
    finally:
        if isinstance(process, Forked):
            process.close()


def _await_answer(files: RolloutFiles, process: subprocess.Popen[bytes] | Forked, said_before: int, timeout: float) -> Started:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(files):
            return _answering(files, process)
        if process.poll() is not None:
            if answers(files):  # another controller won the lock meanwhile: it serves this rollout
                return _answering(files, process)
            said = "\n".join(line.removeprefix("brahma: ") for line in files.log.read_bytes()[said_before:].decode(errors="replace").strip().splitlines())
            raise SupervisorUnavailable(said or f"the controller exited ({process.returncode}); see {files.log}", process.returncode)
        time.sleep(POLL_S)
    raise SupervisorUnavailable(f"the controller did not answer within {timeout:g}s; see {files.log}")


def _answering(files: RolloutFiles, process: subprocess.Popen[bytes] | Forked) -> Started:
    holder = lock_holder(files)
    return Started(holder or process.pid, holder in (None, process.pid))


def ensure_running(files: RolloutFiles, undo: bool = False) -> int | None:
    """The controller's pid, restarting it from its launch record when it died; None if it is not needed.

    A finished rollout needs none, unless it is to be undone (`undo`): then one takes its journal up again.
    """
    if answers(files):
        return lock_holder(files)
    if read_state(files.journal).finished and not undo:
        return None
    launch = Launch.read(files.launch)
    if launch is None:
        raise SupervisorUnavailable(f"no controller answers for {files.name} and there is no {files.launch.name} to restart it from")
    missing = launch.missing()
    if missing:  # started without it, the controller would run blind (or as nobody): say what to give it
        needed = "; ".join(f"{name} ({what})" for name, what in missing.items())
        raise SupervisorUnavailable(
            f"the controller of {files.name} cannot be restarted from this shell: it needs {needed}, "
            "which is never written down; set it in this shell and attach again",
            refused=True,
        )
    return start_detached(files, replace(launch, argv=[*launch.argv, "--undo"]) if undo else launch).pid


@dataclass
class RolloutListing:
    """A rollout in a state dir (`brahma ls`): where it is, and whether a controller supervises it."""

    name: str
    state: RolloutState
    running: bool
    pid: int | None
    unreadable: str | None = None
    """FILE:LINE: what is wrong, when the journal cannot be read (its state is then empty)."""


def list_rollouts(state_dir: Path) -> list[RolloutListing]:
    """The rollouts whose current journal is in `state_dir` (archived journals of finished runs are left out);
    one whose journal cannot be read is listed with why, so the others are still seen."""
    listings = []
    for journal in sorted(state_dir.glob("*.jsonl")):
        if release_name_problem(journal.stem):
            continue  # another journal (flags.jsonl) or an archived run (name.STAMP.jsonl)
        try:
            state = read_state(journal)
        except JournalError as error:
            listings.append(RolloutListing(journal.stem, RolloutState(), False, None, str(error)))
            continue
        if not state.started or state.rollout != journal.stem:
            continue  # an archived run whose name is a release's too (name.old.jsonl)
        files = RolloutFiles(state_dir, state.rollout)
        running = answers(files)
        listings.append(RolloutListing(state.rollout, state, running, lock_holder(files) if running else None))
    return listings
