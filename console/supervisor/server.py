"""The detached controller (`brahma supervise`): runs one rollout and serves it on a Unix socket.

Protocol: newline-delimited JSON. A client sends
  {"op": "attach", "from": N, "actor": A, "watch_only": W}
                                  -> journal events from the N-th on, {"hello": {pid, speed, now,
                                     attended}}, then new events live; requests on the same connection
  {"op": "command", "name": "rollback", "actor": A, "argument": "", "id": I}
                                  -> {"reply": "command", "id": I, "ok": true}
  {"op": "flags", "changes": [{flag, old, new, actor, reason}], "id": I}   (a console changed the flag file)
                                  -> {"reply": "flags", "id": I, "ok": true}
  {"op": "history", "metric": M, "start": T, "id": I}
                                  -> {"reply": "history", "id": I, "points": [[t, canary, stable], ...]}
  {"op": "plan", "id": I}         -> {"reply": "plan", "id": I, "plan": the compiled plan (model.plan_from_plain)}
Events are the journal's own dicts. The socket is created 0600 in the state dir: only its owner (and
root) may connect, and every command is journaled with the actor the client names. A flags request is
journaled only for the changes the flag file holds ({"ok": false, "journaled": N, "error": ...} names
the rest). A request that is not one gets {"reply": ..., "ok": false, "error": ...}.

The same event loop samples and rolls back: no client may hold it for long. Lines, request rates,
changes per request and connections are bounded (limits.py); a flag change is one journal write per
turn of the loop.

An attended controller (started for a console) waits for people as the console does: sign-offs,
promotes in manual mode, pauses with no timeout, while a console that may act is attached. A client
that names its actor is journaled as it attaches and detaches (`watch_only` for a read-only console
or a follower of the events, which cannot decide a pause); with none that may act attached, a pause
times out as in a headless run. When its rollout has finished it stays while a console is attached
(one may still undo the release), and exits once the last one leaves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
from typing import Any

from console import strict_json
from console.controller.controller import COMMANDS
from console.journal import events as ev
from console.journal.journal import read_lines
from console.journal.state import Phase
from console.journal.state_dir import RolloutFiles
from console.narrate import event_printer, spans_days
from console.rollout import Rollout, close_rollout, run_controller
from console.supervisor.files import socket_address
from console.supervisor.flag_requests import FlagRecords, RequestError, parse_changes
from console.supervisor.limits import (
    IN_FLIGHT,
    LINE_LIMIT,
    NEW_CONNECTIONS_BURST,
    NEW_CONNECTIONS_PER_S,
    SMALL_LINE,
    WRITE_TIMEOUT_S,
    CountedFailures,
    TokenBucket,
    connection_cap,
    long_line_budget,
)

CLIENT_BACKLOG = 10_000
"""Events queued for one client; a client that falls this far behind is dropped (it can attach again)."""
REPLAY_CHUNK = 512
"""Journal lines written to a client between two waits for it to read them."""
CLOSE_TIMEOUT_S = 5.0
LISTEN_BACKLOG = 128
"""Connections the kernel holds for the controller to accept."""
ACCEPT_RETRY_S = 0.5
"""How long accepting waits after a failure (descriptors run out under a flood)."""
UNDO_GRACE_S = 30.0
"""How long a controller taken up to undo a finished release waits for the console that asked for it."""


def encode(message: dict[str, Any]) -> bytes:
    """A message as its line; one JSON cannot hold (a NaN nothing made None) goes as a refusal saying why, so
    the client hears an answer and its connection lives on."""
    try:
        return strict_json.line(message)
    except strict_json.NotJSON as error:
        refused = refusal(message.get("reply", "error"), f"the answer could not be sent: {error}")
        return strict_json.line({**refused, "id": message["id"]} if "id" in message else refused)


def refusal(op: Any, error: str) -> dict[str, Any]:
    return {"reply": op if isinstance(op, str) else "error", "ok": False, "error": error}


class LineTooLong(Exception):
    """A request line over LINE_LIMIT: answered, then the connection is closed (the rest of it is noise)."""


def parse_request(line: bytes) -> dict[str, Any]:
    try:
        request = strict_json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than the parser goes
        raise RequestError("not JSON") from None
    if not isinstance(request, dict):
        raise RequestError("expected a JSON object with an op")
    return request


async def read_request(reader: asyncio.StreamReader, rate: TokenBucket, long_lines: TokenBucket) -> dict[str, Any] | None:
    """The connection's next request, read once its `rate` allows (and, for a long line, the socket's budget
    of `long_lines`); None when it hung up."""
    await rate.take()
    await asyncio.sleep(0)  # one request of a connection per turn of the loop, however many it has sent
    try:
        line = await reader.readline()
    except ValueError:  # the stream's limit: no newline within LINE_LIMIT bytes
        raise LineTooLong(f"a request line is at most {LINE_LIMIT // 1024} KiB") from None
    if len(line) > SMALL_LINE:
        await long_lines.take(len(line))
    return parse_request(line) if line else None


def event_number(value: Any) -> int:
    """The `from` of an attach: how many journal events the client has already."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise RequestError("from: expected a whole number of events, from 0")
    return value


async def drain(writer: asyncio.StreamWriter) -> None:
    """Wait until the client has taken what it was sent; one that takes nothing for WRITE_TIMEOUT_S is cut off."""
    try:
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
    except TimeoutError:
        hang_up(writer)
        raise ConnectionResetError(f"the client read nothing for {WRITE_TIMEOUT_S:g}s") from None


def refuse(connection: socket.socket, error: str) -> None:
    """One line to a connection that is not served, and closed: no stream is made for it."""
    try:
        connection.send(encode(refusal("error", error)))
    except OSError:
        pass  # it could not take even that: closed all the same
    connection.close()


def hang_up(writer: asyncio.StreamWriter) -> None:
    """Close the connection now: what a client has left unread is dropped, its descriptor freed at once."""
    if writer.transport.get_write_buffer_size():
        writer.transport.abort()
    else:
        writer.close()


ACTOR_LIMIT = 200
"""Characters of an attaching console's actor (user@host and the SSH client's address fit)."""


def attach_actor(request: dict[str, Any]) -> tuple[str | None, bool]:
    """Who attaches, and whether they only watch; (None, True) for a client that names nobody."""
    actor, watch_only = request.get("actor"), request.get("watch_only", False)
    if actor is None:
        return None, True
    if not isinstance(actor, str) or not 0 < len(actor) <= ACTOR_LIMIT or not actor.isprintable():
        raise RequestError(f"actor: expected who attaches (user@host), at most {ACTOR_LIMIT} printable characters")
    if not isinstance(watch_only, bool):
        raise RequestError("watch_only: expected true or false")
    return actor, watch_only


def finite_number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1e15 < value < 1e15:
        raise RequestError(f"{field}: expected a number of seconds on the rollout clock")
    return float(value)


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

    def end(self, queue: asyncio.Queue[dict[str, Any] | None], last: dict[str, Any] | None = None) -> None:
        """Stop one client's stream: what it has not read yet is dropped; then `last`, if any, and the end marker."""
        self.clients.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        if last is not None:
            queue.put_nowait(last)
        queue.put_nowait(None)

    def close_all(self) -> None:
        for queue in list(self.clients):
            self.end(queue)


class SupervisorServer:
    """Serves one rollout's controller to any number of clients until the rollout finishes."""

    def __init__(self, rollout: Rollout, files: RolloutFiles, attended: bool = False, stay: bool = False):
        self.rollout, self.files, self.attended = rollout, files, attended
        self.stay = stay
        """Serve until a signal stops it, the rollout finished or not (in a pod: the container must not exit)."""
        rollout.controller.options.consoles_attach = attended
        self.fanout = EventFanout()
        rollout.controller.subscribe(self.fanout)
        self.flag_records = FlagRecords(rollout.controller, rollout.flags)
        if attended and not stay:
            rollout.controller.subscribe(lambda event: self._leave_when_finished_and_alone())
        self._clients: set[asyncio.Task[None]] = set()
        self._connection_cap = connection_cap()
        self._new_connections = TokenBucket(NEW_CONNECTIONS_PER_S, NEW_CONNECTIONS_BURST)
        self._long_lines = long_line_budget()
        self._accept_failures = CountedFailures("accept failed", say)
        self._client_failures = CountedFailures("a client's connection failed", say)

    def _leave_when_finished_and_alone(self) -> None:
        controller = self.rollout.controller
        if controller.state.finished and not self.fanout.clients:
            controller.stop()

    async def run(self) -> Phase:
        """Serve until the rollout has finished and nobody needs it (or a signal stops it); the phase it is in then."""
        controller = self.rollout.controller
        days = spans_days(controller.plan.planned_duration)
        controller.subscribe(event_printer(sys.stdout, json_lines=False, days=days))  # the log in the state dir tells the story
        loop = asyncio.get_running_loop()
        listening = self._listen()
        accepting = asyncio.create_task(self._accept(listening))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, controller.stop)
        self._forget_consoles_of_the_last_controller()
        if self.attended and controller.state.finished and not self.stay:
            # Taken up to be undone: the console that asked attaches at once; without it, nobody needs this.
            loop.call_later(UNDO_GRACE_S, self._leave_when_finished_and_alone)
        try:
            phase = await run_controller(self.rollout)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            accepting.cancel()
            listening.close()
            self.fanout.close_all()
            await self._hang_up_all()
            self.files.socket.unlink(missing_ok=True)
            await close_rollout(self.rollout)
            self._accept_failures.report()
            self._client_failures.report()
        return phase

    def _forget_consoles_of_the_last_controller(self) -> None:
        """Consoles the journal shows attached were served by a controller that stopped: they are gone
        (those still open attach again), so nobody decides a pause until someone does."""
        controller = self.rollout.controller
        for actor, watch_only in list(controller.state.consoles):  # none once the rollout finished
            left = controller.state.acting_consoles - (not watch_only)
            controller.emit(
                ev.ConsoleDetached(controller.state.last_t, actor=actor, watch_only=watch_only, consoles=left, reason="the controller that served it stopped")
            )

    def _console_came(self, actor: str | None, watch_only: bool) -> None:
        controller = self.rollout.controller
        if actor is not None and controller.state.started and not controller.state.finished:
            consoles = controller.state.acting_consoles + (not watch_only)
            controller.emit(ev.ConsoleAttached(controller.now(), actor=actor, watch_only=watch_only, consoles=consoles))

    def _console_left(self, actor: str | None, watch_only: bool) -> None:
        controller = self.rollout.controller
        if actor is not None and (actor, watch_only) in controller.state.consoles:
            consoles = controller.state.acting_consoles - (not watch_only)
            controller.emit(ev.ConsoleDetached(controller.now(), actor=actor, watch_only=watch_only, consoles=consoles))

    async def _hang_up_all(self) -> None:
        """End every connection; a client that does not hang up must not keep the rollout from closing."""
        for client in self._clients:
            client.cancel()
        if self._clients:
            await asyncio.wait(self._clients, timeout=CLOSE_TIMEOUT_S)

    def _listen(self) -> socket.socket:
        path = self.files.socket
        path.unlink(missing_ok=True)  # we hold the lock: a socket file left here belongs to a dead controller
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # created 0600: no moment when another user could connect
        try:
            with socket_address(path) as address:
                listening.bind(address)
        except BaseException:
            listening.close()
            raise
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        listening.listen(LISTEN_BACKLOG)
        listening.setblocking(False)
        return listening

    async def _accept(self, listening: socket.socket) -> None:
        """New connections, one at a time and at most NEW_CONNECTIONS_PER_S: connecting over and over is
        no way round a connection's own limits. A failed accept (out of descriptors) is counted and
        tried again a moment later; it never ends the loop."""
        loop = asyncio.get_running_loop()
        while True:
            await self._new_connections.take()
            try:
                connection, _ = await loop.sock_accept(listening)
            except OSError as error:
                if self._accept_failures.record(error):
                    loop.call_later(self._accept_failures.period_s, self._accept_failures.report)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            if len(self._clients) >= self._connection_cap:
                refuse(connection, f"too many connections (at most {self._connection_cap}); try again later")
            else:
                client = asyncio.create_task(self._serve_client(connection))
                self._clients.add(client)
                client.add_done_callback(self._clients.discard)
            await asyncio.sleep(0)

    async def _serve_client(self, connection: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection, limit=LINE_LIMIT)
        except OSError:
            connection.close()
            return
        try:
            await self._converse(reader, writer)
        except ConnectionError:
            pass  # the client is gone
        except Exception as error:  # the boundary: one client's trouble ends its connection, never the loop
            if self._client_failures.record(error):
                asyncio.get_running_loop().call_later(self._client_failures.period_s, self._client_failures.report)
        finally:
            hang_up(writer)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests answered in turn until the client hangs up, or attaches (then its stream is served)."""
        bucket = TokenBucket()
        while True:
            try:
                request = await read_request(reader, bucket, self._long_lines)
            except RequestError as error:
                reply = refusal("error", str(error))
            except LineTooLong as error:
                writer.write(encode(refusal("error", str(error))))
                return
            else:
                if request is None:
                    return
                if request.get("op") == "attach":
                    try:
                        start = event_number(request.get("from", 0))
                        actor, watch_only = attach_actor(request)
                    except RequestError as error:
                        reply = refusal("attach", str(error))
                    else:
                        await self._stream(start, reader, writer, bucket, actor, watch_only)
                        return
                else:
                    reply = await self._answer(request)
            writer.write(encode(reply))
            await drain(writer)

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "command":
                reply = self._command(request)
            elif op == "flags":
                reply = await self.flag_records.record(parse_changes(request.get("changes")))
            elif op == "history":
                reply = await self._history(request)
            elif op == "plan":  # the plan this controller runs, for a console to show without reading it again
                reply = {"reply": "plan", "ok": True, "plan": dataclasses.asdict(self.rollout.controller.plan)}
            else:
                reply = refusal(op, "expected op attach, command, flags, history or plan")
        except RequestError as error:
            reply = refusal(op, f"malformed request: {error}")
        except Exception as error:  # a history query that failed, a journal that could not be written: the client hears why
            reply = refusal(op, f"{op} failed: {error}")
        request_id = request.get("id")
        if request_id is not None:
            reply["id"] = request_id
        return reply

    def _command(self, request: dict[str, Any]) -> dict[str, Any]:
        name, actor, argument = request.get("name"), request.get("actor"), request.get("argument", "")
        if name not in COMMANDS or not isinstance(actor, str) or not actor or not isinstance(argument, str):
            return refusal("command", f"expected a command ({', '.join(COMMANDS)}) with an actor")
        self.rollout.controller.submit(name, actor, argument)
        return {"reply": "command", "ok": True}

    async def _history(self, request: dict[str, Any]) -> dict[str, Any]:
        controller = self.rollout.controller
        metric = request.get("metric")
        if not isinstance(metric, str):
            raise RequestError("metric: expected a metric's name")
        start = finite_number(request.get("start"), "start")
        points = await controller.metrics.history(metric, start, controller.now(), controller.plan.interval)
        return {"reply": "history", "ok": True, "points": [[p.t, strict_json.finite_or_none(p.canary), strict_json.finite_or_none(p.stable)] for p in points]}

    def _hello(self) -> dict[str, Any]:
        controller = self.rollout.controller
        return {"hello": {"pid": os.getpid(), "speed": controller.clock.speed, "now": controller.now(), "attended": self.attended}}

    async def _stream(
        self, start: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: TokenBucket, actor: str | None = None, watch_only: bool = False
    ) -> None:
        """The journal from `start`, then live events; requests on the same connection are answered too.
        A console that names its actor is journaled attached now, and detached when its stream ends."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(CLIENT_BACKLOG)
        # Subscribe and count the journal's events with no await between: the queue takes every event
        # after the first `written`, and the replay sends those lines, so none is lost or sent twice.
        self.fanout.clients.add(queue)
        written = self.rollout.controller.journal.count
        self._console_came(actor, watch_only)
        requests = asyncio.create_task(self._read_requests(reader, queue, bucket))
        try:
            await self._replay(start, written, writer)
            writer.write(encode(self._hello()))  # after the story so far: "now" is read as it is sent
            await drain(writer)
            while (message := await queue.get()) is not None:
                writer.write(encode(message))
                await drain(writer)
        finally:
            self.fanout.clients.discard(queue)
            requests.cancel()
            self._console_left(actor, watch_only)
            if self.attended:
                self._leave_when_finished_and_alone()

    async def _replay(self, start: int, end: int, writer: asyncio.StreamWriter) -> None:
        """Journal lines start..end as they are on disk, read as they are sent: a day's journal is never in memory.
        A console that has what the last snapshot covers, or the closed segments, is sent the rest from the live
        file: a week is not read through."""
        controller = self.rollout.controller
        for number, line in read_lines(self.files.journal, start, [controller.snapshots.covered, controller.journal.live_start]):
            if number >= end:
                break
            writer.write(line)
            if number % REPLAY_CHUNK == 0:
                await drain(writer)
                await asyncio.sleep(0)  # a client that reads fast must still let the loop turn

    async def _read_requests(self, reader: asyncio.StreamReader, queue: asyncio.Queue[dict[str, Any] | None], bucket: TokenBucket) -> None:
        """Requests from an attached client, answered through its stream; its hang-up (EOF) ends the stream."""
        answering: set[asyncio.Task[None]] = set()
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        def send(reply: dict[str, Any]) -> None:
            try:
                queue.put_nowait(reply)
            except asyncio.QueueFull:
                self.fanout.end(queue)

        async def answer(request: dict[str, Any]) -> None:
            try:
                send(await self._answer(request))
            finally:
                in_flight.release()

        try:
            while True:
                await in_flight.acquire()
                try:
                    request = await read_request(reader, bucket, self._long_lines)
                except RequestError as error:
                    in_flight.release()
                    send(refusal("error", str(error)))
                    continue
                if request is None:
                    break
                # Each request in its own task: a slow history query never holds up a rollback.
                task = asyncio.create_task(answer(request))
                answering.add(task)
                task.add_done_callback(answering.discard)
        except LineTooLong as error:
            self.fanout.end(queue, refusal("error", str(error)))
            return
        except ConnectionError:
            pass  # the client is gone: its stream ends below
        self.fanout.end(queue)


def say(line: str) -> None:
    """A line for the log of the detached controller (its stderr)."""
    print(f"brahma: {line}", file=sys.stderr, flush=True)
