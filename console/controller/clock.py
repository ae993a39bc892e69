"""The rollout's clock: real for a release, paced for the simulator's --speed, virtual for tests and --fast.

Readings are seconds on the rollout clock `t` (0 when the first stage starts). The controller
never reads time any other way, so a virtual clock runs a two-hour rollout in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    speed: float
    """Rollout seconds per wall second (0 for virtual time: a gap in wall time moves nothing)."""

    def now(self) -> float: ...

    def start(self, t: float) -> None:
        """Set the current reading to `t` (0 for a new rollout; where the journal stopped on resume)."""
        ...

    async def wait_until(self, t: float, wake: asyncio.Event) -> None:
        """Return at reading `t`, or earlier when `wake` is set (a command arrived)."""
        ...


class RealClock:
    """Wall time: a real release's pace."""

    speed = 1.0

    def __init__(self) -> None:
        self._base_t = 0.0
        self._base_monotonic = time.monotonic()

    def now(self) -> float:
        return self._base_t + time.monotonic() - self._base_monotonic

    def start(self, t: float) -> None:
        self._base_t, self._base_monotonic = t, time.monotonic()

    async def wait_until(self, t: float, wake: asyncio.Event) -> None:
        delay = t - self.now()
        if delay <= 0 or wake.is_set():
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except TimeoutError:
            pass


class PacedClock:
    """Simulated time at `speed` times real time (the simulator's --speed) that never runs ahead of the controller.

    It moves only while the controller waits, and then at most `speed` times as fast as the wall: a
    controller (or a metric source) slower than that holds the simulated time back, where a clock that
    ran on would make it miss the samples it fell behind on.
    """

    def __init__(self, speed: float, monotonic: Callable[[], float] = time.monotonic):
        self.speed = speed
        self._monotonic = monotonic
        self._t = 0.0
        """The reading where the controller's last wait ended; it stays there while the controller works."""
        self._waiting: tuple[float, float] | None = None
        """While the controller waits: when the wait began (monotonic) and the reading it waits for."""

    def now(self) -> float:
        if self._waiting is None:
            return self._t
        began, until = self._waiting
        return min(until, self._t + (self._monotonic() - began) * self.speed)

    def start(self, t: float) -> None:
        self._t = t

    async def wait_until(self, t: float, wake: asyncio.Event) -> None:
        if t <= self._t or wake.is_set():
            await asyncio.sleep(0)
            return
        self._waiting = (self._monotonic(), t)
        reached_t = False
        try:
            await asyncio.wait_for(wake.wait(), (t - self._t) / self.speed)
        except TimeoutError:
            reached_t = True
        finally:
            self._t = t if reached_t else self.now()
            self._waiting = None


class VirtualClock:
    """Time that jumps to the next instant anyone waits for: no real waiting at all.

    With `stop_at`, time stands still there (only commands move the controller on), so a
    test can hold a rollout at a chosen moment and look at it.
    """

    speed = 0.0

    def __init__(self, t: float = 0.0, stop_at: float | None = None):
        self._t = t
        self.stop_at = stop_at
        self._held: asyncio.Event | None = None
        """The wake of a wait held at stop_at."""

    def run_to(self, stop_at: float | None) -> None:
        """Let time run on to `stop_at` (None: with no stop), waking a wait held at the old stop."""
        self.stop_at = stop_at
        if self._held is not None:
            self._held.set()

    def now(self) -> float:
        return self._t

    def start(self, t: float) -> None:
        self._t = t

    async def wait_until(self, t: float, wake: asyncio.Event) -> None:
        # Let other tasks (a test's command, the console) run before time moves on.
        await asyncio.sleep(0)
        if wake.is_set():
            return
        if self.stop_at is not None and t > self.stop_at:
            self._t = max(self._t, self.stop_at)
            self._held = wake
            await wake.wait()
            return
        self._t = max(self._t, t)
