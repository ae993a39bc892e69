"""One function per check kind: each returns (passed, output) and never raises for a failing thing."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Awaitable, Callable

from console.plan.model import PreflightSpec
from console.redact import redact

OUTPUT_LIMIT = 4000


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


async def run_command(item: PreflightSpec) -> tuple[bool, str]:
    argv = item.argv or []
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as error:
        return False, f"cannot run {argv[0]!r}: {error.strerror or error}"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), item.timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"timed out after {item.timeout:g}s"
    text = output.decode(errors="replace")
    return process.returncode == 0, _tail(f"exit {process.returncode}\n{text}".strip())


async def fetch_http(item: PreflightSpec) -> tuple[bool, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(item.url, timeout=item.timeout) as response:
                return response.status, response.read(65536).decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read(65536).decode(errors="replace")

    try:
        status, body = await asyncio.to_thread(fetch)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return False, redact(f"{redact(item.url or '')}: {reason}")
    passed = status == item.status and (item.body_contains is None or item.body_contains in body)
    expectation = f"expected {item.status}" + (f" and a body with {item.body_contains!r}" if item.body_contains else "")
    return passed, _tail(f"HTTP {status} ({expectation})\n{body}")


async def check_file(item: PreflightSpec) -> tuple[bool, str]:
    path = Path(item.path or "")
    if not path.is_file():
        return False, f"{path}: no such file"
    size = path.stat().st_size
    text = path.read_text(errors="replace").strip() if size else ""
    return bool(text), f"{path}: {size} bytes" if text else f"{path}: empty"


CHECKS: dict[str, Callable[[PreflightSpec], Awaitable[tuple[bool, str]]]] = {
    "command": run_command,
    "http": fetch_http,
    "file": check_file,
}
