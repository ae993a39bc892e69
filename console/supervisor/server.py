"""The detached controller (`brahma supervise`): runs one rollout headless and serves it on a Unix socket.

Protocol: newline-delimited JSON. A client sends
  {"op": "attach", "from": N}                      -> journal events from the N-th on, then new ones live
  {"op": "command", "name": "rollback", "actor": A, "argument": ""} -> {"reply": "command", "ok": true}
Events are the journal's own dicts. The socket is created 0600 in the state dir: only its owner (and
root) may connect, and every command is journaled with the actor the client names.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from console.controller import events as ev
from console.controller.controller import COMMANDS, EXIT_ERROR, RollbackFailed
from console.controller.journal import read_events
from console.headless import printer
from console.runner import Rollout, close_rollout
from console.supervisor.files import RolloutFiles

CLIENT_BACKLOG = 10_000
"""Events queued for one client; a client that falls this far behind is dropped (it can attach again)."""
READ_LIMIT = 64 * 1024
CLOSE_TIMEOUT_S = 5.0


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

    def __init__(self, rollout: Rollout, files: RolloutFiles):
        self.rollout, self.files = rollout, files
        self.fanout = EventFanout()
        rollout.controller.subscribe(self.fanout)

    async def run(self) -> int:
        controller = self.rollout.controller
        controller.subscribe(printer(sys.stdout, json_lines=False))  # the log in the state dir tells the story
        server = await self._listen()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, controller.stop)
        try:
            code = await controller.run()
        except RollbackFailed as error:
            print(f"brahma: {error}; attach again to retry the rollback", file=sys.stderr)
            code = EXIT_ERROR
        finally:
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
            server = await asyncio.start_unix_server(self._serve_client, path=str(path), limit=READ_LIMIT)
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
                writer.write(encode(self._command(request)))
                await writer.drain()
        except (ValueError, AttributeError, ConnectionError):
            pass  # a malformed request or a client gone: drop this client only
        finally:
            writer.close()

    def _command(self, request: dict[str, Any]) -> dict[str, Any]:
        name, actor = request.get("name"), request.get("actor")
        if request.get("op") != "command" or name not in COMMANDS or not actor:
            return {"reply": "command", "ok": False, "error": f"expected a command ({', '.join(COMMANDS)}) with an actor"}
        self.rollout.controller.submit(name, str(actor), str(request.get("argument", "")))
        return {"reply": "command", "ok": True}

    async def _stream(self, start: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The journal from `start`, then live events; commands on the same connection are taken too."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(CLIENT_BACKLOG)
        # Read the journal and subscribe with no await between: no event can fall in the gap.
        backlog = [event.to_dict() for event in read_events(self.files.journal)][max(0, start):]
        self.fanout.clients.add(queue)
        commands = asyncio.create_task(self._read_commands(reader, writer, queue))
        try:
            for message in backlog:
                writer.write(encode(message))
            await writer.drain()
            while (message := await queue.get()) is not None:
                writer.write(encode(message))
                await writer.drain()
        finally:
            self.fanout.clients.discard(queue)
            commands.cancel()

    async def _read_commands(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Commands from an attached client; its hang-up (EOF) ends its stream."""
        try:
            while line := await reader.readline():
                try:
                    reply = self._command(json.loads(line))
                except ValueError:
                    reply = {"reply": "command", "ok": False, "error": "not JSON"}
                writer.write(encode(reply))
        except ConnectionError:
            pass  # the client is gone: its stream ends below
        self.fanout.end(queue)
