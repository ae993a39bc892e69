"""Flag changes a console says it made in the flag file: journaled only once the file is found to hold them.

The journal is the record of what happened; a client's word is not enough. Each change is checked
against the plan's flag store as it is now, and journaled one write at a time so the controller's
samples and rollbacks go in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

from console.controller.controller import Controller
from console.controller.release_flags import ReleaseFlags
from console.flags.model import FlagChange
from console.journal import events as ev
from console.supervisor.limits import FLAG_REQUESTS_WAITING, MAX_FLAG_CHANGES


class RequestError(ValueError):
    """A request that cannot be answered as asked: the client is told why."""


def parse_changes(raw: Any) -> list[FlagChange]:
    """The `changes` of a flags request; RequestError naming what is wrong."""
    if not isinstance(raw, list) or not raw:
        raise RequestError("changes: expected a list of {flag, old, new, actor, reason}")
    if len(raw) > MAX_FLAG_CHANGES:
        raise RequestError(f"changes: at most {MAX_FLAG_CHANGES} in one request, not {len(raw)}")
    changes = []
    for number, change in enumerate(raw):
        if not (
            isinstance(change, dict)
            and isinstance(change.get("flag"), str)
            and isinstance(change.get("new"), dict)
            and isinstance(change.get("old"), (dict, type(None)))
            and isinstance(change.get("actor"), str)
            and change["actor"]
            and isinstance(change.get("reason", ""), str)
        ):
            raise RequestError(f"changes[{number}]: expected {{flag, old, new, actor, reason}} with an actor")
        changes.append(FlagChange(change["flag"], change.get("old"), change["new"], change["actor"], change.get("reason", "")))
    return changes


def borne_out(changes: list[FlagChange], in_file: dict[str, dict[str, Any]], journaled: dict[str, dict[str, Any]]) -> list[bool]:
    """For each change, whether the flag file bears it out.

    A flag's last change in the request must be its state in the file now; an earlier change of the same
    flag must lead to the next (its `new` is the next one's `old`). A change to what the journal already
    says the flag is, is no change.
    """
    verdicts = [False] * len(changes)
    expected: dict[str, dict[str, Any] | None] = dict(in_file)
    for index in reversed(range(len(changes))):
        change = changes[index]
        if change.flag in expected and change.new == expected[change.flag] and change.new != journaled.get(change.flag):
            verdicts[index] = True
            expected[change.flag] = change.old
        else:
            expected[change.flag] = None  # the chain is broken: no earlier change of this flag is borne out
    return verdicts


class FlagRecords:
    """Journals the flag changes consoles report, after checking them in the flag file; one request at a time."""

    def __init__(self, controller: Controller, flags: ReleaseFlags | None):
        self._controller, self._flags = controller, flags
        self._turn = asyncio.Lock()
        self._waiting = 0
        self._journaled: dict[str, dict[str, Any]] = {}
        """Each flag's state as last journaled (while this controller runs)."""
        controller.subscribe(self._seen)

    def _seen(self, event: ev.Event) -> None:
        if isinstance(event, ev.FlagChanged):
            self._journaled[event.flag] = event.new

    def _in_file(self) -> dict[str, dict[str, Any]]:
        assert self._flags is not None
        return {flag.name: flag.to_dict() for flag in self._flags.store.list()}

    async def record(self, changes: list[FlagChange]) -> dict[str, Any]:
        """Journal the changes the flag file bears out; the reply says how many, and why any were refused."""
        if self._flags is None:
            return {"reply": "flags", "ok": False, "journaled": 0, "error": "this rollout has no flag file to check the changes in"}
        if self._waiting >= FLAG_REQUESTS_WAITING:
            return {"reply": "flags", "ok": False, "journaled": 0, "error": f"busy: {self._waiting} flag requests are waiting; send it again shortly"}
        self._waiting += 1
        try:
            async with self._turn:
                try:
                    in_file = await asyncio.to_thread(self._in_file)
                except Exception as error:  # a flag file in a bad state: nothing can be checked, nothing journaled
                    return {"reply": "flags", "ok": False, "journaled": 0, "error": f"cannot read the flag file: {error}"}
                verdicts = borne_out(changes, in_file, self._journaled)
                for change, borne in zip(changes, verdicts):
                    if borne:
                        self._controller.record_flag_changes([change])
                        await asyncio.sleep(0)  # one journal write per turn of the loop
        finally:
            self._waiting -= 1
        refused = sorted({change.flag for change, borne in zip(changes, verdicts) if not borne})
        reply: dict[str, Any] = {"reply": "flags", "ok": not refused, "journaled": sum(verdicts)}
        if refused:
            reply["error"] = (
                f"{len(verdicts) - sum(verdicts)} of {len(verdicts)} changes are not what the flag file holds "
                f"({', '.join(refused[:5])}{', ...' if len(refused) > 5 else ''}); only changes found there are journaled"
            )
        return reply
