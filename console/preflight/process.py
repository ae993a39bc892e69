"""Programs the checks run (without a shell, with a timeout) and how much of their output is kept.

A program runs in a session of its own, so stopping it stops what it started too (a shell's
background children): at the timeout, or when the check is cancelled (a rollback during the
gate, the console quitting), its whole process group gets SIGTERM, then SIGKILL after a short
grace. Its output is read as it comes and only its head and tail are kept, with the number of
bytes left out between them, so a program that prints a gigabyte costs kilobytes. The pipes are
closed before this returns, never left to be collected after the event loop has gone.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

OUTPUT_LIMIT = 4000
"""Characters of a check's output the journal keeps (a command check's: bytes, head and tail)."""
CAPTURE_BYTES = 64 * 1024
"""Bytes of a program's output kept in memory for the checks that read it (terraform's plan summary)."""
STOP_GRACE_S = 0.5
"""Between SIGTERM and SIGKILL; within the gate's own grace beyond an item's timeout."""


def tail(text: str) -> str:
    """The end of a long output, where the verdict usually is."""
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


class KeptOutput:
    """The first and the last bytes of a stream, and how many it had: memory bounded by `limit`.

    A quarter of it is the head (what the program set out to do), the rest the tail (its verdict).
    """

    def __init__(self, limit: int):
        self.head_limit = limit // 4
        self.tail_limit = limit - self.head_limit
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data[-self.tail_limit :]
        del self.tail[: max(0, len(self.tail) - self.tail_limit)]

    def text(self) -> str:
        """Head and tail as text, cut at whole characters, with a line saying how many bytes are left out."""
        if self.total == len(self.head) + len(self.tail):
            return (self.head + self.tail).decode(errors="replace")
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        head = decoder.decode(bytes(self.head))  # a character cut at the end is held back, not replaced
        head_bytes = len(self.head) - len(decoder.getstate()[0])
        tail = bytes(self.tail)
        start = 0
        while start < min(3, len(tail)) and tail[start] & 0xC0 == 0x80:  # the end of a character cut at its start
            start += 1
        tail = tail[start:]
        left_out = self.total - head_bytes - len(tail)
        return f"{head}\n… {left_out} bytes left out …\n{tail.decode(errors='replace')}"


@dataclass(frozen=True)
class Finished:
    """A program's exit code (None when it could not run or was stopped) and what it printed."""

    returncode: int | None
    output: str
    """stdout with stderr in it; stderr alone when stdout went to a file."""


class _Capture(asyncio.SubprocessProtocol):
    def __init__(self, limit: int):
        self.output = KeptOutput(limit)
        self.done = asyncio.Event()
        """The program exited and every copy of its output pipe is closed."""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.output.add(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass  # everything in the group has gone already


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


async def _stop(transport: asyncio.SubprocessTransport, capture: _Capture) -> None:
    """SIGTERM to the program's group, SIGKILL after the grace; the pipes closed whatever happens."""
    pid = transport.get_pid()
    try:
        _signal_group(pid, signal.SIGTERM)
        await _wait(capture.done, STOP_GRACE_S)
    finally:
        # Also when the caller is cancelled again while waiting: nothing of the group may outlive the check.
        _signal_group(pid, signal.SIGKILL)
        try:
            await _wait(capture.done, STOP_GRACE_S)
        finally:
            transport.close()


async def run_program(
    argv: list[str],
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stdout: IO[bytes] | None = None,
    keep: int = CAPTURE_BYTES,
) -> Finished:
    """Run `argv` without a shell and keep `keep` bytes of its output (stdout to the file `stdout` if given).

    Stopped, with everything it started, at the timeout or when the caller is cancelled.
    """
    loop = asyncio.get_running_loop()
    capture = _Capture(keep)
    starting = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: capture,
            *argv,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
            stderr=asyncio.subprocess.STDOUT if stdout is None else asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        # The program runs before its pipes are connected: a cancel in between must still stop it and
        # its children (left to asyncio, only the program itself would be killed).
        transport, _ = await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.wait([starting])
        if not starting.cancelled() and starting.exception() is None:
            await _stop(starting.result()[0], capture)
        raise
    except OSError as error:
        return Finished(None, f"cannot run {argv[0]!r}: {error.strerror or error}")
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await capture.done.wait()
    except TimeoutError:
        timed_out = True
    finally:
        if capture.done.is_set():
            transport.close()
        else:
            await _stop(transport, capture)
    output = capture.output.text()
    if timed_out:
        return Finished(None, f"timed out after {timeout:g}s" + (f"\n{output}" if output else ""))
    return Finished(transport.get_returncode(), output)
