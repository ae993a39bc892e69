"""The detached controller (`brahma supervise`): runs one rollout and serves it on a Unix socket.

Protocol: newline-delimited JSON. A client sends
  {"op": "attach", "from": N}     -> journal events from the N-th on, {"hello": {pid, speed, now,
                                     attended}}, then new events live; requests on the same connection
  {"op": "command", "name": "rollback", "actor": A, "argument": "", "id": I}
                                  -> {"reply": "command", "id": I, "ok": true}
  {"op": "flags", "changes": [{flag, old, new, actor, reason}], "id": I}   (a console changed the flag file)
                                  -> {"reply": "flags", "id": I, "ok": true}
  {"op": "history", "metric": M, "start": T, "id": I}
                                  -> {"reply": "history", "id": I, "points": [[t, canary, stable], ...]}
Events are the journal's own dicts. The socket is created 0600 in the state dir: only its owner (and
root) may connect, and every command is journaled with the actor the client names.

An attended controller (started for a console) waits for people as the console does: sign-offs,
promotes in manual mode, pauses with no timeout. When its rollout has finished it stays while a
console is attached (one may still undo the release), and exits once the last one leaves.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from types import SimpleNamespace
from typing import Any

from console.controller import events as ev
from console.controller.controller import COMMANDS, EXIT_ROLLBACK_UNVERIFIED
from console.headless import printer
from console.runner import Rollout, close_rollout, run_controller, say_rollback_unverified
from console.supervisor.files import RolloutFiles, socket_address

CLIENT_BACKLOG = 10_000
"""Events queued for one client; a client that falls this far behind is dropped (it can attach again)."""
READ_LIMIT = 64 * 1024
REPLAY_CHUNK = 512
"""Journal lines written to a client between two waits for it to read them."""
CLOSE_TIMEOUT_S = 5.0
UNDO_GRACE_S = 30.0
"""How long a controller taken up to undo a finished release waits for the console that asked for it."""


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


class EventFanout:
    """Hands every controller event to each attached client's queue (the controller has one listener: this)."""

    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def __call__(self, event: ev.Event) -> None:
        message = event.to_dict()
        for queue in list(self.clients):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.end(queue)

    def end(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop one client's stream: what it has not read yet is dropped, then the end marker."""
        self.clients.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def close_all(self) -> None:
        for queue in list(self.clients):
            self.end(queue)


class SupervisorServer:
    """Serves one rollout's controller to any number of clients until the rollout finishes."""

    def __init__(self, rollout: Rollout, files: RolloutFiles, attended: bool = False):
        self.rollout, self.files, self.attended = rollout, files, attended
        self.fanout = EventFanout()
        rollout.controller.subscribe(self.fanout)
        if attended:
            rollout.controller.subscribe(lambda event: self._leave_when_finished_and_alone())

    def _leave_when_finished_and_alone(self) -> None:
        controller = self.rollout.controller
        if controller.state.finished and not self.fanout.clients:
            controller.stop()

    async def run(self) -> int:
        controller = self.rollout.controller
        controller.subscribe(printer(sys.stdout, json_lines=False))  # the log in the state dir tells the story
        server = await self._listen()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, controller.stop)
        if self.attended and controller.state.finished:
            # Taken up to be undone: the console that asked attaches at once; without it, nobody needs this.
            loop.call_later(UNDO_GRACE_S, self._leave_when_finished_and_alone)
        try:
            code = await run_controller(self.rollout)
            if code == EXIT_ROLLBACK_UNVERIFIED:
                say_rollback_unverified(controller)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            self.fanout.close_all()
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=CLOSE_TIMEOUT_S)
            except TimeoutError:
                pass  # a client that does not hang up must not keep the rollout from closing
            self.files.socket.unlink(missing_ok=True)
            await close_rollout(self.rollout)
        return code

    async def _listen(self) -> asyncio.AbstractServer:
        path = self.files.socket
        path.unlink(missing_ok=True)  # we hold the lock: a socket file left here belongs to a dead controller
        previous = os.umask(0o177)  # created 0600: no moment when another user could connect
        try:
            with socket_address(path) as address:
                server = await asyncio.start_unix_server(self._serve_client, path=address, limit=READ_LIMIT)
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        return server

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                if request.get("op") == "attach":
                    await self._stream(int(request.get("from", 0)), reader, writer)
                    return
                writer.write(encode(await self._answer(request)))
                await writer.drain()
        except (ValueError, AttributeError, ConnectionError):
            pass  # a malformed request or a client gone: drop this client only
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "command":
                reply = self._command(request)
            elif op == "flags":
                reply = self._flags(request)
            elif op == "history":
                reply = await self._history(request)
            else:
                reply = {"reply": str(op), "ok": False, "error": "expected op attach, command, flags or history"}
        except (KeyError, TypeError, ValueError) as error:
            reply = {"reply": str(op), "ok": False, "error": f"malformed request: {error}"}
        if "id" in request:
            reply["id"] = request["id"]
        return reply

    def _command(self, request: dict[str, Any]) -> dict[str, Any]:
        name, actor = request.get("name"), request.get("actor")
        if name not in COMMANDS or not actor:
            return {"reply": "command", "ok": False, "error": f"expected a command ({', '.join(COMMANDS)}) with an actor"}
        self.rollout.controller.submit(name, str(actor), str(request.get("argument", "")))
        return {"reply": "command", "ok": True}

    def _flags(self, request: dict[str, Any]) -> dict[str, Any]:
        """Flag changes a console made in the flag file itself: journaled here, where the journal is written."""
        changes = [SimpleNamespace(flag=str(c["flag"]), old=c.get("old"), new=dict(c["new"]), actor=str(c["actor"]), reason=str(c.get("reason", "")))
                   for c in request["changes"]]
        self.rollout.controller.record_flag_changes(changes)
        return {"reply": "flags", "ok": True}

    async def _history(self, request: dict[str, Any]) -> dict[str, Any]:
        controller = self.rollout.controller
        points = await controller.metrics.history(str(request["metric"]), float(request["start"]), controller.now(), controller.plan.interval)
        return {"reply": "history", "ok": True, "points": [[p.t, p.canary, p.stable] for p in points]}

    def _hello(self) -> dict[str, Any]:
        controller = self.rollout.controller
        return {"hello": {"pid": os.getpid(), "speed": controller.clock.speed, "now": controller.now(), "attended": self.attended}}

    async def _stream(self, start: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The journal from `start`, then live events; requests on the same connection are answered too."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(CLIENT_BACKLOG)
        # Subscribe and count the journal's events with no await between: the queue takes every event
        # after the first `written`, and the replay sends those lines, so none is lost or sent twice.
        self.fanout.clients.add(queue)
        written = self.rollout.controller.journal.count
        requests = asyncio.create_task(self._read_requests(reader, queue))
        try:
            await self._replay(max(0, start), written, writer)
            writer.write(encode(self._hello()))  # after the story so far: "now" is read as it is sent
            await writer.drain()
            while (message := await queue.get()) is not None:
                writer.write(encode(message))
                await writer.drain()
        finally:
            self.fanout.clients.discard(queue)
            requests.cancel()
            if self.attended:
                self._leave_when_finished_and_alone()

    async def _replay(self, start: int, end: int, writer: asyncio.StreamWriter) -> None:
        """Journal lines start..end as they are on disk, read as they are sent: a day's journal is never in memory."""
        with open(self.files.journal, "rb") as journal:
            for number, line in enumerate(journal):
                if number >= end:
                    break
                if number >= start:
                    writer.write(line)
                    if number % REPLAY_CHUNK == 0:
                        await writer.drain()

    async def _read_requests(self, reader: asyncio.StreamReader, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Requests from an attached client, answered through its stream; its hang-up (EOF) ends the stream."""
        answering: set[asyncio.Task[None]] = set()

        async def answer(line: bytes) -> None:
            try:
                reply = await self._answer(json.loads(line))
            except ValueError:
                reply = {"reply": "error", "ok": False, "error": "not JSON"}
            except Exception as error:  # a history query that failed: the client hears why
                reply = {"reply": "error", "ok": False, "error": str(error)}
            try:
                queue.put_nowait(reply)
            except asyncio.QueueFull:
                self.fanout.end(queue)

        try:
            while line := await reader.readline():
                # Each request in its own task: a slow history query never holds up a rollback.
                task = asyncio.create_task(answer(line))
                answering.add(task)
                task.add_done_callback(answering.discard)
        except ConnectionError:
            pass  # the client is gone: its stream ends below
        self.fanout.end(queue)
