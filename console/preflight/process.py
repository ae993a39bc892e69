"""Programs the checks run (without a shell, with a timeout) and how much of their output is kept."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

OUTPUT_LIMIT = 4000


def tail(text: str) -> str:
    """The end of a long output, where the verdict usually is."""
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


@dataclass(frozen=True)
class Finished:
    """A program's exit code (None when it could not run or was stopped) and what it printed."""

    returncode: int | None
    output: str
    """stdout, with stderr in it unless it was asked for apart."""
    errors: str = ""


async def run_program(
    argv: list[str],
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    separate_stderr: bool = False,
) -> Finished:
    """Run `argv` without a shell; killed at the timeout or when the caller is cancelled."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if separate_stderr else asyncio.subprocess.STDOUT,
        )
    except OSError as error:
        return Finished(None, f"cannot run {argv[0]!r}: {error.strerror or error}")
    try:
        output, errors = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        return Finished(None, f"timed out after {timeout:g}s")
    finally:
        # A timeout, or the gate giving up on this check, must not leave the program running.
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Finished(process.returncode, output.decode(errors="replace"), (errors or b"").decode(errors="replace"))
