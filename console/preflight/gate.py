"""Runs the plan's pre-flight items concurrently, each with its timeout, and keeps who/what/when."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from console.plan.model import PreflightSpec
from console.preflight.checks import CHECKS
from console.preflight.context import PreflightContext
from console.printable import printable
from console.redact import redact

TIMEOUT_GRACE_S = 1.0
"""Beyond an item's timeout, the time its check gets to stop its own work and say why."""


@dataclass(frozen=True)
class CheckResult:
    item: str
    kind: str
    status: str
    """pass, fail, waiting (for a person's sign-off) or error (the check itself could not run)."""
    required: bool
    output: str = ""
    duration_s: float = 0.0
    by: str = ""
    """Who signed off a manual item, or "brahma" for an automated check."""

    @property
    def blocks(self) -> bool:
        """This result keeps the gate closed."""
        return self.required and self.status != "pass"


class Gate:
    """The pre-flight checklist of one plan."""

    def __init__(self, items: tuple[PreflightSpec, ...], context: PreflightContext):
        self.items, self.context = items, context

    async def _run_one(self, item: PreflightSpec) -> CheckResult:
        if item.kind == "manual":
            return CheckResult(item.name, item.kind, "waiting", item.required, "waiting for a sign-off")
        check = CHECKS.get(item.kind)
        if check is None:
            return CheckResult(item.name, item.kind, "error", item.required, f"{item.kind} checks are not available in this version")
        started = time.monotonic()
        try:
            passed, output = await asyncio.wait_for(check(item, self.context), item.timeout + TIMEOUT_GRACE_S)
        except TimeoutError:
            passed, output = False, f"timed out after {item.timeout:g}s"
        # Outputs go to the screen, the journal and the runbook: a program that prints a token must not
        # put it there, nor terminal control (redacted after, so a sequence cannot split a secret).
        status = "pass" if passed else "fail"
        return CheckResult(item.name, item.kind, status, item.required, redact(printable(output)), time.monotonic() - started, "brahma")

    async def run(self, on_result: Callable[[CheckResult], None]) -> list[CheckResult]:
        """Every automated item at once; results reported as each finishes."""

        async def run_and_report(item: PreflightSpec) -> CheckResult:
            result = await self._run_one(item)
            on_result(result)
            return result

        return list(await asyncio.gather(*(run_and_report(item) for item in self.items)))
