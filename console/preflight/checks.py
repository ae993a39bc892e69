"""One function per check kind: each returns (passed, output) and never raises for a failing thing.

The kinds that need a client library (kubernetes, prometheus) or a parser (terraform) import it
only when a plan has such an item, so a plan of commands and files starts no heavier.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

from console.plan.model import PreflightSpec
from console.preflight.context import PreflightContext
from console.preflight.process import OUTPUT_LIMIT, run_program, tail
from console.redact import redact


async def run_command(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    finished = await run_program(item.argv or [], item.timeout, keep=OUTPUT_LIMIT)
    if finished.returncode is None:
        return False, finished.output
    return finished.returncode == 0, f"exit {finished.returncode}\n{finished.output}".strip()


async def fetch_http(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
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
    return passed, tail(f"HTTP {status} ({expectation})\n{body}")


async def check_file(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    path = Path(item.path or "")
    if not path.is_file():
        return False, f"{path}: no such file"
    size = path.stat().st_size
    text = path.read_text(errors="replace").strip() if size else ""
    return bool(text), f"{path}: {size} bytes" if text else f"{path}: empty"


async def query_prometheus(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    from console.preflight.prometheus_check import check_query

    return await check_query(item, context)


async def check_kubernetes(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    from console.preflight.kubernetes_check import check_objects

    return await check_objects(item, context)


async def check_terraform(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    from console.preflight.terraform import check_directory

    return await check_directory(item, context)


async def check_flags(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    from console.preflight.flags_check import check_flags_disabled

    return await check_flags_disabled(item, context)


async def check_calibration(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    from console.preflight.calibrate_check import check_calibration

    return await check_calibration(item, context)


CHECKS: dict[str, Callable[[PreflightSpec, PreflightContext], Awaitable[tuple[bool, str]]]] = {
    "command": run_command,
    "http": fetch_http,
    "file": check_file,
    "prometheus": query_prometheus,
    "kubernetes": check_kubernetes,
    "terraform": check_terraform,
    "flags": check_flags,
    "calibrate": check_calibration,
}
