"""A flood on a controller's socket, run as a process of its own: `python -m testbed.socket_flood SOCKET SECONDS`.

Many connections held open, big `flags` requests claiming changes no flag file has, and junk lines
(not JSON, JSON that is not a request, numbers no int or float holds, NaN, lines over any limit), all at
once for SECONDS (or until the socket is gone), as a buggy script of the controller's own user could.
Prints what it saw as JSON.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import sys
from collections import Counter

from console import strict_json

IDLE_CONNECTIONS = 2000
FLAG_CLIENTS = 80
CHANGES_PER_REQUEST = 700
JUNK_CLIENTS = 8
FLOOD_ACTOR = "flood@nowhere"
CONNECT_TIMEOUT_S = 2.0

JUNK_LINES = (
    b"not json\n",
    b"[1]\n",
    b"null\n",
    b"12\n",
    b'"attach"\n',
    b'{"op": "attach", "from": 1e400}\n',
    b'{"op": "attach", "from": [1]}\n',
    b'{"op": "attach", "from": null}\n',
    b'{"op": "attach", "from": ' + b"9" * 5000 + b"}\n",
    b'{"op": "attach", "from": ' + b"9" * 400 + b"}\n",
    b'{"op": "history", "metric": "error_rate", "start": 1e400}\n',
    b'{"op": "flags", "changes": [1, null, "x"]}\n',
    b'{"op": "flags", "changes": {"flag": "f"}}\n',
    b'{"op": "command", "name": ["rollback"], "actor": {"a": 1}}\n',
    b'{"op": "command", "name": "pause", "actor": "flood@nowhere", "id": NaN}\n',
    b"[" * 100_000 + b"\n",
    b"x" * 300_000 + b"\n",
)


def flag_request(number: int, changes: int = CHANGES_PER_REQUEST) -> bytes:
    """Changes no flag file ever had: the flag switched on, then off, then on, ..."""
    records = [{"flag": "new-checkout-flow", "new": {"enabled": i % 2 == 0}, "actor": FLOOD_ACTOR} for i in range(changes)]
    return strict_json.line({"op": "flags", "changes": records, "id": number})


class Flood:
    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.seen: Counter[str] = Counter()
        self.held: list[asyncio.StreamWriter] = []
        self.gone = asyncio.Event()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(asyncio.open_unix_connection(self.socket_path, limit=1 << 24), CONNECT_TIMEOUT_S)
        except TimeoutError:
            self.seen["connect timed out"] += 1
            return None
        except OSError as error:
            self.seen[f"connect failed: {error.strerror or error}"] += 1
            if isinstance(error, FileNotFoundError):
                self.gone.set()  # the controller has finished: the flood is over
            await asyncio.sleep(0.05)  # out of descriptors, or refused: no busy loop meanwhile
            return None

    async def hold_idle(self, count: int) -> None:
        for _ in range(count):
            connection = await self._connect()
            if connection is not None:
                self.held.append(connection[1])
                self.seen["connected"] += 1

    async def _exchange(self, line: bytes) -> None:
        connection = await self._connect()
        if connection is None:
            return
        reader, writer = connection
        try:
            writer.write(line)
            await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_S)
            reply = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_S)
            self.seen["replied" if reply else "closed without a reply"] += 1
            if reply:
                answer = json.loads(reply)
                self.seen[f"ok={answer.get('ok')}"] += 1
        except (TimeoutError, OSError, ValueError) as error:
            self.seen[f"exchange failed: {type(error).__name__}"] += 1
        finally:
            writer.close()

    async def send_flags(self, client: int) -> None:
        request = flag_request(client)
        while True:
            await self._exchange(request)
            await asyncio.sleep(0)

    async def send_junk(self, client: int) -> None:
        while True:
            connection = await self._connect()
            if connection is None:
                continue
            writer = connection[1]
            try:
                for line in JUNK_LINES:
                    writer.write(line)
                    await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_S)
                    self.seen["junk sent"] += 1
            except (TimeoutError, OSError):
                self.seen["junk connection closed"] += 1
            writer.close()

    async def run(self, seconds: float) -> dict[str, int]:
        """Flood for `seconds`, or until the socket is gone (its controller has finished)."""
        tasks = [asyncio.create_task(self.hold_idle(IDLE_CONNECTIONS))]
        tasks += [asyncio.create_task(self.send_flags(i)) for i in range(FLAG_CLIENTS)]
        tasks += [asyncio.create_task(self.send_junk(i)) for i in range(JUNK_CLIENTS)]
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except TimeoutError:
            pass
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=CONNECT_TIMEOUT_S)
        return dict(self.seen)


async def main(socket_path: str, seconds: float) -> None:
    print(json.dumps(await Flood(socket_path).run(seconds)), flush=True)
    # Connections still held, and connects the kernel left hanging, die with the process: asyncio would wait
    # for them to unwind, and a connect to a socket whose backlog is full may never do so.
    os._exit(0)


if __name__ == "__main__":
    seconds = float(sys.argv[2])
    faulthandler.dump_traceback_later(seconds + 15, exit=True)  # a flood that does not stop says where it is
    asyncio.run(main(sys.argv[1], seconds))
