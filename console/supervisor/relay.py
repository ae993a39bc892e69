"""A controller's socket over a pipe: `brahma relay` in the controller's pod, `brahma attach --pod` on the operator's machine.

In the pod, `brahma relay NAME --state-dir D` connects to the rollout's socket, says so in one line of its own
({"relay": {"rollout": NAME, "pid": PID}}) and then copies stdin to the socket and the socket to stdout, byte for
byte, until the controller hangs up. On the operator's machine, `kubectl exec -i POD -- brahma relay ...` runs it
(PodLink): the console speaks the socket's protocol over kubectl's pipes, through the API server and the
operator's own credentials, so the pod opens no port and holds no credential for it. Only the pod's user may
connect to the socket (0600), and `kubectl exec` runs the relay as that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

from console import strict_json
from console.journal.state_dir import RolloutFiles
from console.plan.model import RolloutPlan, plan_from_plain
from console.supervisor.client import CONNECT_TIMEOUT_S, START_TIMEOUT_S, SupervisorUnavailable
from console.supervisor.files import lock_holder, socket_address

CHUNK = 64 * 1024
_DRAINING: set[asyncio.Future[bytes]] = set()
KUBECTL_ENV = "BRAHMA_KUBECTL"
"""The kubectl to run (default: kubectl on PATH)."""


def relay(files: RolloutFiles, stdin: int = 0, stdout: int = 1) -> None:
    """Bridge `stdin`/`stdout` to the rollout's socket until the controller hangs up; SupervisorUnavailable when none answers."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(CONNECT_TIMEOUT_S)
    try:
        with socket_address(files.socket) as address:
            connection.connect(address)
    except OSError as error:
        connection.close()
        raise SupervisorUnavailable(f"no controller answers on {files.socket}: {error.strerror or error}") from None
    connection.setblocking(True)
    with connection:
        _write_all(stdout, strict_json.line({"relay": {"rollout": files.name, "pid": lock_holder(files)}}))
        reading = [connection, stdin]
        while True:
            for ready in select.select(reading, [], [])[0]:
                if ready is connection:
                    data = connection.recv(CHUNK)
                    if not data:
                        return  # the controller hung up: so does the relay
                    _write_all(stdout, data)
                else:
                    data = os.read(stdin, CHUNK)
                    if data:
                        connection.sendall(data)
                    else:  # the console is done asking; what it asked for is still answered
                        connection.shutdown(socket.SHUT_WR)
                        reading.remove(stdin)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True)
class PodLink:
    """A rollout's controller in a pod, reached with `kubectl exec` running `brahma relay` there."""

    namespace: str
    pod: str
    """A pod's name, or `deployment/NAME` (kubectl picks its pod: the name a Deployment's pod has changes as it is replaced)."""
    state_dir: str
    """The state dir in the pod, as the relay there reads it (relative to the container's working directory)."""
    rollout: str | None = None

    @property
    def where(self) -> str:
        return f"pod {self.namespace}/{self.pod}"

    def argv(self) -> list[str]:
        relayed = ["brahma", "relay", *([self.rollout] if self.rollout else []), "--state-dir", self.state_dir]
        kubectl = os.environ.get(KUBECTL_ENV) or "kubectl"
        return [kubectl, "exec", "-i", "--namespace", self.namespace, self.pod, "--", *relayed]

    async def open(self, limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
        """The relay started and connected: its streams and what it said of itself. OSError when no controller
        answers there (kubectl's or the relay's reason), or none has within START_TIMEOUT_S."""
        process = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, limit=limit, start_new_session=True
        )
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        said = _relay_said(line)
        if said is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            errors = await process.stderr.read()
            await process.wait()
            reason = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"nothing within {START_TIMEOUT_S:g}s"]
            raise OSError(f"{self.where}: {reason[0].removeprefix('brahma: ')}")
        # Drained, so that kubectl never blocks on a full pipe nobody reads.
        draining = asyncio.ensure_future(process.stderr.read())
        _DRAINING.add(draining)
        draining.add_done_callback(_DRAINING.discard)
        return process.stdout, process.stdin, said

    def request(self, message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One request and its answer (with what the relay said of itself), blocking; SupervisorUnavailable when none comes."""
        try:
            done = subprocess.run(self.argv(), input=strict_json.line(message), capture_output=True, timeout=START_TIMEOUT_S + CONNECT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SupervisorUnavailable(f"{self.where}: {error}") from None
        lines = done.stdout.splitlines()
        said = _relay_said(lines[0]) if lines else None
        if said is None or len(lines) < 2:
            reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"kubectl exited {done.returncode}"]
            raise SupervisorUnavailable(f"{self.where}: {reason[0].removeprefix('brahma: ')}")
        return said, json.loads(lines[1])

    def plan(self) -> RolloutPlan:
        """The plan the pod's controller runs, as it gives it."""
        _, reply = self.request({"op": "plan"})
        if not reply.get("ok"):
            raise SupervisorUnavailable(f"the controller in {self.where} did not give its plan: {reply.get('error', 'no reason given')}")
        return plan_from_plain(reply["plan"])

    def ensure_running(self, undo: bool = False) -> int | None:
        """The controller's pid once it answers again: the cluster restarts it (the Deployment), never this console."""
        said, _ = self.request({"op": "plan"})
        return said.get("pid")


def _relay_said(line: bytes) -> dict[str, Any] | None:
    try:
        said = json.loads(line)
    except ValueError:
        return None
    return said.get("relay") if isinstance(said, dict) and isinstance(said.get("relay"), dict) else None
