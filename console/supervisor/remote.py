"""A rollout's detached controller seen from a console: the face of `Controller` over its socket.

The console reads `state`, `now()`, `plan` and `metrics.history`, subscribes to events and submits
commands; here those travel over the Unix socket (see server.py for the protocol). The state is
the same fold over the same events the controller journals, so the console shows exactly what the
controller knows. When the controller dies under an attached console, it is started again from
the journal and the stream picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console import strict_json
from console.journal import events as ev
from console.journal.journal import JournalError, read_events
from console.journal.snapshot import resume
from console.journal.state import Phase, RolloutState
from console.journal.state_dir import RolloutFiles
from console.plan.model import RolloutPlan
from console.samples import HistoryPoint
from console.supervisor.client import SupervisorUnavailable, ensure_running
from console.supervisor.files import socket_address
from console.supervisor.limits import LINE_LIMIT, MAX_FLAG_CHANGES
from console.units import format_duration

if TYPE_CHECKING:  # annotations only: the console's first frame imports this module
    from pathlib import Path

    from console.controller.controller import FlagChangeRecord
    from console.supervisor.relay import PodLink

READ_LIMIT = 4 * 1024 * 1024
"""One event line at most (a sample with many metrics, a pre-flight item's output)."""
REQUEST_TIMEOUT_S = 10.0
RESTART_RETRY_S = 2.0
YIELD_EVERY = 256


FLAG_REQUEST_ROOM = LINE_LIMIT - 1024
"""Bytes of changes in one flags request (the rest of the line: its op, its id)."""


def flag_batches(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records in requests the controller takes: each of at most MAX_FLAG_CHANGES changes and FLAG_REQUEST_ROOM bytes."""
    batches: list[list[dict[str, Any]]] = []
    size = FLAG_REQUEST_ROOM
    for record in records:
        record_size = len(strict_json.dumps(record)) + 2
        if size + record_size > FLAG_REQUEST_ROOM or len(batches[-1]) == MAX_FLAG_CHANGES:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += record_size
    return batches


class RemoteHistory:
    """`metrics.history` answered by the controller's own metric source."""

    def __init__(self, remote: RemoteController):
        self._remote = remote

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        reply = await self._remote.request({"op": "history", "metric": metric, "start": start_t})
        return [HistoryPoint(t, canary, stable) for t, canary, stable in reply.get("points", [])]


class RemoteController:
    """One console's connection to a rollout's controller; `run()` follows it until the rollout ends or `stop()`."""

    def __init__(
        self,
        plan: RolloutPlan,
        files: RolloutFiles,
        monotonic: Callable[[], float] = time.monotonic,
        actor: str | None = None,
        watch_only: bool = False,
        pod: PodLink | None = None,
    ):
        self.plan, self.files = plan, files
        self.pod = pod
        """The controller runs in this pod (reached through kubectl exec): `files` are the pod's, not readable here."""
        self.actor, self.watch_only = actor, watch_only
        """Who is at this console, journaled by the controller as attached; a watch_only one cannot decide a pause."""
        self.state = RolloutState()
        self.metrics = RemoteHistory(self)
        self.pid: int | None = None
        self._monotonic = monotonic
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._notice_listeners: list[Callable[[str], None]] = []
        self._received = 0
        self._speed = 1.0
        self._anchor = (0.0, monotonic())
        """A reading of the controller's clock (rollout time, when it was read here), for now()."""
        self._live = False
        """The replay is over: events arrive as the controller emits them, so their t is its clock now."""
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._stopping = False
        self._rollback_waiting: dict[str, Any] | None = None
        """An operator's rollback given while no controller answered."""
        self._undo_asked = asyncio.Event()
        """A rollback of a finished release that no controller supervises any more (or stop())."""

    # -- the Controller's face -------------------------------------------------------------

    def subscribe(self, listener: Callable[[ev.Event], None]) -> None:
        self._listeners.append(listener)

    @property
    def state_dir(self) -> Path | None:
        return None if self.pod is not None else self.files.state_dir

    def on_notice(self, listener: Callable[[str], None]) -> None:
        """Lines for the operator about the connection itself: the controller lost, restarted, a refusal."""
        self._notice_listeners.append(listener)

    def submit(self, name: str, actor: str, argument: str = "") -> None:
        command = {"op": "command", "name": name, "actor": actor, "argument": argument}
        if name == "rollback" and (self._writer is None or self._writer.is_closing()):
            # Rolling back never goes stale: it is sent the moment a controller answers again.
            self._rollback_waiting = command
            if self.state.finished:
                self._notice("rollback: starting a controller to undo the finished release")
                self._undo_asked.set()
            else:
                self._notice("rollback: sent as soon as the controller answers again (it is being started)")
            return
        self._send(command, f"{name} was not sent")

    def record_flag_changes(self, changes: list[FlagChangeRecord]) -> None:
        records = [{"flag": c.flag, "old": c.old, "new": c.new, "actor": c.actor, "reason": c.reason} for c in changes]
        for batch in flag_batches(records):
            if len(batch) == 1 and len(strict_json.dumps(batch[0])) > FLAG_REQUEST_ROOM:
                self._notice(f"the change to {batch[0]['flag']} is in the flag file but too large to journal")
                continue
            self._send({"op": "flags", "changes": batch}, "the flag change is in the flag file but was not journaled")

    def now(self) -> float:
        if not self.state.preflight_done:
            return min(0.0, self.state.last_t)
        t, at = self._anchor
        return t + (self._monotonic() - at) * self._speed

    def stop(self) -> None:
        """Detach: the controller goes on supervising."""
        self._stopping = True
        self._undo_asked.set()
        if self._writer is not None:
            self._writer.close()

    async def run(self) -> Phase:
        """Follow the controller until detached; a finished release with none is shown, and can still be undone.
        The rollout's phase when this console stopped following it."""
        await self._read_journal()
        undo = False
        while not self._stopping:
            try:
                reader, self._writer = await self._connect()
            except OSError:
                if await self._start_controller(undo):
                    undo = False
                else:
                    await self._undo_asked.wait()
                    self._undo_asked.clear()
                    undo = True
                continue
            try:
                await self._follow(reader, self._writer)
            finally:
                self._writer.close()
                self._writer = None
                self._fail_waiting("the controller hung up")
            if self._stopping:
                break
            if self.state.finished:
                continue  # it left with the release finished: the journal says the rest, an undo may follow
            self._notice(f"the controller (pid {self.pid}) stopped before the rollout ended; starting it again from the journal")
        return self.state.phase

    # -- the connection --------------------------------------------------------------------

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.pod is not None:
            reader, writer, _ = await self.pod.open(READ_LIMIT)
            return reader, writer
        with socket_address(self.files.socket) as address:
            return await asyncio.open_unix_connection(address, limit=READ_LIMIT)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """A request answered on the stream; an unanswered or refused one gives {"ok": False, "error": ...}."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        if not self._send({**message, "id": request_id}, f"{message['op']} was not sent"):
            self._waiting.pop(request_id, None)
            return {"ok": False, "error": "not connected"}
        try:
            return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {REQUEST_TIMEOUT_S:g}s"}
        finally:
            self._waiting.pop(request_id, None)

    def _send(self, message: dict[str, Any], unsent: str) -> bool:
        if self._writer is None or self._writer.is_closing():
            self._notice(f"{unsent}: no controller is connected (it is being started again)")
            return False
        self._writer.write(strict_json.line(message))
        return True

    async def _start_controller(self, undo: bool) -> bool:
        """Start a controller that died (or one to `undo` a finished release); False when none is needed or we are detaching."""
        while not self._stopping:
            try:
                # A pod's controller is restarted by its Deployment: this console waits until it answers again.
                pid = await asyncio.to_thread(self.pod.ensure_running if self.pod else functools.partial(ensure_running, self.files), undo)
            except SupervisorUnavailable as error:
                self._notice(f"no controller: {error}; trying again in {RESTART_RETRY_S:g}s")
                await asyncio.sleep(RESTART_RETRY_S)
                continue
            if pid is None:  # finished while nobody was connected: the journal tells the rest
                await self._read_journal()
                return False
            if self.pid is not None and pid != self.pid:
                self._notice(f"controller restarted (pid {pid}); it resumes from the journal")
            self.pid = pid
            return True
        return False

    async def _read_journal(self) -> None:
        """The journal's events this console has not taken yet, read from the state dir: on attaching, the console
        opens on where the rollout is (before its first frame, not after a replay over the socket), and the
        attach asks the controller only for what follows. What cannot be read is left to the controller's replay.

        The first time, the state is the controller's snapshot and the journal's tail after it (snapshot.py), and
        the listeners are told only the last events (the event log's lines, the last sample), not a week of them."""
        if self._received == 0 and self.files.journal.exists():
            try:
                resumed = resume(self.files.journal, self._notice)
            except JournalError:
                return
            self.state, self._received = resumed.state, resumed.events
            for _, event in resumed.recent.in_order():
                for listener in self._listeners:
                    listener(event)
            return
        try:
            events = read_events(self.files.journal) if self.pod is None and self.files.journal.exists() else iter(())
            for event in itertools.islice(events, self._received, None):
                if self._received and self._received % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a long journal is taken in turns: the console's keys stay live
                self._take(event)
        except JournalError:
            return

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attach: dict[str, Any] = {"op": "attach", "from": self._received}
        if self.actor is not None:
            attach |= {"actor": self.actor, "watch_only": self.watch_only}
        writer.write(strict_json.line(attach))
        self._live = False
        while line := await reader.readline():
            if self._received % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long replay arrives without a pause: the console's keys stay live
            message = json.loads(line)
            if "event" in message:
                self._take(ev.event_from_dict(message))
            elif "hello" in message:
                hello = message["hello"]
                self.pid, self._speed = hello["pid"], hello["speed"] or 1.0
                self._anchor, self._live = (hello["now"], self._monotonic()), True
                self._notice(f"attached to the controller (pid {self.pid}); q leaves it supervising on its own")
                if (alone := self._unattended()) is not None:
                    self._notice(alone)
                if self._rollback_waiting is not None:
                    self._send(self._rollback_waiting, "rollback was not sent")
                    self._rollback_waiting = None
            elif "reply" in message:
                self._answered(message)

    def _unattended(self) -> str | None:
        """What the journal says of nobody watching, as a console attaches: since when no console that may
        act was attached, and what that means for a pause."""
        state = self.state
        if state.finished or state.acting_consoles:
            return None
        timeout = format_duration(self.plan.pause_timeout)
        if self.watch_only:
            return f"this console only watches: with no console that may act attached, a pause rolls back after {timeout} (pause_timeout)"
        if state.alone_since is None or state.alone_since.reason:
            return None  # nobody left: their controller stopped, and supervision_resumed says for how long
        since = datetime.fromisoformat(state.alone_since.ts).astimezone()
        return (
            f"nobody was attached from {since:%H:%M} to {datetime.now().astimezone():%H:%M} (while nobody is, "
            f"a pause rolls back after {timeout}, as in a headless run)"
        )

    def _take(self, event: ev.Event) -> None:
        self._received += 1
        if self._live:
            self._anchor = (event.t, self._monotonic())
        self.state.apply(event)
        for listener in self._listeners:
            listener(event)

    def _answered(self, reply: dict[str, Any]) -> None:
        future = self._waiting.get(reply.get("id", -1))
        if future is not None and not future.done():
            future.set_result(reply)
        elif not reply.get("ok", False):
            self._notice(f"the controller refused a {reply.get('reply')}: {reply.get('error', 'no reason given')}")

    def _fail_waiting(self, error: str) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_result({"ok": False, "error": error})

    def _notice(self, line: str) -> None:
        for listener in self._notice_listeners:
            listener(line)
