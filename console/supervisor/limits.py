"""What one client may ask of a controller's socket, so that no client (nor thousands) can stall supervision.

The controller samples and rolls back on the same event loop that serves the socket: every limit here
bounds how long a client's request may hold that loop, and how many clients may be there at once.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import time
from collections import Counter
from collections.abc import Callable

LINE_LIMIT = 256 * 1024
"""Bytes in one request line; a longer one is refused and its connection closed."""
MAX_CONNECTIONS = 64
"""Clients connected at once; the next is told so in one line and closed."""
NEW_CONNECTIONS_PER_S = 50.0
"""Connections accepted each second, on average (a console connects once, `brahma ls` once per rollout)."""
NEW_CONNECTIONS_BURST = 64
DESCRIPTORS_PER_CONNECTION = 8
"""At most one connection per so many of the process's file descriptors: the rest are the controller's own
(its journal, the target's and Prometheus' connections, a rollback's files)."""
REQUESTS_PER_S = 20.0
"""Requests a connection may send each second, on average (a console sends a few a minute)."""
REQUEST_BURST = 40
"""Requests a connection may send at once; beyond, its next lines are read only as the rate allows."""
SMALL_LINE = 4 * 1024
"""A request line this long or shorter (a command, a history query, a few flag changes) is only ever paced by its
own connection's rate: a flood of long lines from others never holds up an operator's rollback."""
LONG_LINE_BYTES_PER_S = 512 * 1024
"""Bytes of longer lines the controller reads each second, from every client together (reading one is parsing
it, on the loop that samples); at most LINE_LIMIT at once."""
IN_FLIGHT = 8
"""Requests of one attached connection being answered at once (a history query can take seconds)."""
WRITE_TIMEOUT_S = 30.0
"""How long a client may leave what it was sent unread; then it is dropped (a console attaches again)."""
MAX_FLAG_CHANGES = 100
"""Changes in one `flags` request: each is a journal write, verified against the flag file first."""
FLAG_REQUESTS_WAITING = 32
"""`flags` requests waiting their turn, from every client; the next is refused until the queue drains."""
FAILURE_REPORT_S = 60.0


def connection_cap() -> int:
    """MAX_CONNECTIONS, fewer when the process may open few files: a flood must never take the rollback's."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft // DESCRIPTORS_PER_CONNECTION))


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take` waits for as many as asked (reads wait with it)."""

    def __init__(self, rate: float = REQUESTS_PER_S, burst: float = REQUEST_BURST, monotonic: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._monotonic = rate, float(burst), monotonic
        self._tokens = self.burst
        self._at = monotonic()

    def wait_s(self, tokens: float = 1.0) -> float:
        """Takes `tokens` and returns 0 when there are so many; otherwise how long until there are."""
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate

    async def take(self, tokens: float = 1.0) -> None:
        while (delay := self.wait_s(tokens)) > 0:
            await asyncio.sleep(delay)


def long_line_budget() -> TokenBucket:
    """The bytes of long request lines the whole socket may read: one bucket for every client."""
    return TokenBucket(LONG_LINE_BYTES_PER_S, LINE_LIMIT)


def error_kind(error: BaseException) -> str:
    number = getattr(error, "errno", None)
    return errno.errorcode.get(number, type(error).__name__) if number is not None else type(error).__name__


class CountedFailures:
    """Failures of one sort (accepts out of descriptors, ...) told once per kind, then as counts once a minute.

    A flood of connections fails every accept the same way: one line per failure (let alone a traceback)
    would fill the disk with the log.
    """

    def __init__(self, what: str, say: Callable[[str], None], period_s: float = FAILURE_REPORT_S, monotonic: Callable[[], float] = time.monotonic):
        self.what, self._say, self.period_s, self._monotonic = what, say, period_s, monotonic
        self._counts: Counter[str] = Counter()
        self._told: set[str] = set()
        self._since = 0.0

    def record(self, error: BaseException) -> bool:
        """Count one failure; True when it is the first of this period (the caller schedules `report`)."""
        kind = error_kind(error)
        first_of_period = not self._counts
        if first_of_period:
            self._since = self._monotonic()
        self._counts[kind] += 1
        if kind not in self._told:
            self._told.add(kind)
            reason = getattr(error, "strerror", None) or str(error) or kind
            self._say(f"{self.what}: {kind} ({reason}); the controller goes on; counted once a minute")
        return first_of_period

    def report(self) -> None:
        """The counts since the period's first failure, one line per kind."""
        elapsed = self._monotonic() - self._since
        period = "in the last minute" if elapsed >= self.period_s - 1 else f"in {elapsed:.0f}s"
        for kind, count in sorted(self._counts.items()):
            self._say(f"{self.what}: {kind} ×{count:,} {period}")
        self._counts.clear()
