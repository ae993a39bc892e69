"""The pre-flight checklist: its automated checks run concurrently, each with its timeout; who/what/when
is kept for every result; and the verdict, a pure function of the results so far."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from console.plan.model import PreflightSpec
from console.preflight.context import PreflightContext
from console.printable import printable
from console.redact import redact

TIMEOUT_GRACE_S = 1.0
"""Beyond an item's timeout, the time its check gets to stop its own work and say why."""
FAILED = ("fail", "error")


@dataclass(frozen=True)
class CheckResult:
    """One pre-flight item as it stands: running, waiting for a sign-off, or its result."""

    item: str
    kind: str
    status: str
    """pass, fail, error (the check itself could not run), running, waiting (for a person's sign-off),
    or cancelled (the gate closed, or stopped, before the check finished)."""
    required: bool
    output: str = ""
    duration_s: float = 0.0
    by: str = ""
    """Who signed off a manual item, or "brahma" for an automated check."""

    @property
    def blocks(self) -> bool:
        """A required item that failed: the gate cannot open any more."""
        return self.required and self.status in FAILED

    @classmethod
    def running(cls, item: PreflightSpec) -> CheckResult:
        return cls(item.name, item.kind, "running", item.required, "", 0.0, "brahma")

    @classmethod
    def waiting(cls, item: PreflightSpec) -> CheckResult:
        return cls(item.name, item.kind, "waiting", item.required, "waiting for a sign-off")

    @classmethod
    def signed_off(cls, item: PreflightSpec, actor: str) -> CheckResult:
        return cls(item.name, item.kind, "pass", item.required, f"signed off by {actor}", 0.0, actor)

    @classmethod
    def cancelled(cls, item: PreflightSpec, why: str, duration_s: float) -> CheckResult:
        return cls(item.name, item.kind, "cancelled", item.required, f"cancelled: {why}", duration_s, "brahma")


@dataclass(frozen=True)
class GateVerdict:
    """Where the gate stands, from the latest status of each item."""

    failed: tuple[str, ...]
    """Required items that failed or could not run: the gate cannot open, whatever is signed off."""
    unfinished: tuple[str, ...]
    """Items (required or advisory) whose checks have not finished: running, or cancelled before they did."""
    unsigned: tuple[str, ...]
    """Required manual items still waiting for a sign-off."""

    @property
    def passed(self) -> bool:
        return not (self.failed or self.unfinished or self.unsigned)


def cannot_open(failed: tuple[str, ...]) -> str:
    """Why the checks still running were cancelled: `the gate cannot open: security scan failed`."""
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return f"the gate cannot open: {failed[0]}{more} failed"


class Gate:
    """The pre-flight checklist of one plan."""

    def __init__(self, items: tuple[PreflightSpec, ...], context: PreflightContext):
        self.items, self.context = items, context

    @property
    def manual(self) -> tuple[PreflightSpec, ...]:
        return tuple(item for item in self.items if item.kind == "manual")

    @property
    def automated(self) -> tuple[PreflightSpec, ...]:
        return tuple(item for item in self.items if item.kind != "manual")

    def item(self, name: str) -> PreflightSpec | None:
        return next((item for item in self.items if item.name == name), None)

    def verdict(self, statuses: Mapping[str, str]) -> GateVerdict:
        """The gate given each item's latest status; an item with none yet is running (or waiting, if manual)."""
        failed, unfinished, unsigned = [], [], []
        for item in self.items:
            status = statuses.get(item.name, "waiting" if item.kind == "manual" else "running")
            if status in FAILED and item.required:
                failed.append(item.name)
            elif status in ("running", "cancelled"):
                unfinished.append(item.name)
            elif status == "waiting" and item.required:
                unsigned.append(item.name)
        return GateVerdict(tuple(failed), tuple(unfinished), tuple(unsigned))

    async def _run_one(self, item: PreflightSpec) -> CheckResult:
        from console.preflight.checks import CHECKS  # their HTTP and process clients load with the first check, not with the controller

        check = CHECKS.get(item.kind)
        if check is None:
            return CheckResult(item.name, item.kind, "error", item.required, f"{item.kind} checks are not available in this version")
        started = time.monotonic()
        try:
            passed, output = await asyncio.wait_for(check(item, self.context), item.timeout + TIMEOUT_GRACE_S)
        except TimeoutError:
            passed, output = False, f"timed out after {item.timeout:g}s"
        except Exception as error:  # a check that breaks is an item that could not be checked, not a broken gate
            return CheckResult(item.name, item.kind, "error", item.required, redact(f"the check failed: {error}"), time.monotonic() - started, "brahma")
        # Outputs go to the screen, the journal and the runbook: a program that prints a token must not
        # put it there, nor terminal control (redacted after, so a sequence cannot split a secret).
        status = "pass" if passed else "fail"
        return CheckResult(item.name, item.kind, status, item.required, redact(printable(output)), time.monotonic() - started, "brahma")

    async def run_checks(self, on_result: Callable[[CheckResult], None]) -> list[CheckResult]:
        """Every automated item at once, each result to `on_result` as it arrives; the results in the plan's order.

        Cancelling this stops every check still running, their programs killed, before it returns.
        """
        tasks = {asyncio.create_task(self._run_one(item)): item for item in self.automated}
        results: dict[str, CheckResult] = {}
        unfinished = set(tasks)
        try:
            while unfinished:
                done, unfinished = await asyncio.wait(unfinished, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = task.result()
                    results[result.item] = result
                    on_result(result)
        finally:
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
        return [results[item.name] for item in self.automated]
