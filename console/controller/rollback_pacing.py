"""The pace of a rollback the target does not read back as done: tried again for as long as the
controller lives, backing off to at most MAX_RETRY_S, and told at a bounded rate.

Readings are wall-clock seconds (the controller's wall clock, never the rollout's clock, which
--fast makes virtual): the target being waited for lives in real time.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 10.0
"""The longest wait between two attempts, so a cluster back from an outage is rolled back within it and one
attempt (the issue's 30 s would leave stable waiting up to 30 s after the API's return; an attempt every
10 s is a few requests, nothing to an API server)."""
RETOLD_EVERY_S = 60.0
"""An unchanged failure is journaled again this often (and at once when what fails changes)."""


@dataclass
class RollbackPacing:
    """The attempts at an open rollback: when the next is due, and what was last journaled."""

    attempts: int = 0
    first_attempt_at: float | None = None
    failures_in_row: int = 0
    next_at: float | None = None
    """When the next attempt is due; None: now."""
    told_at: float | None = None
    told: tuple[str, str] | None = None
    """The (reason, detail) last journaled."""

    def due(self, now: float) -> bool:
        return self.next_at is None or now >= self.next_at

    def attempt(self, now: float) -> None:
        self.attempts += 1
        if self.first_attempt_at is None:
            self.first_attempt_at = now

    def since(self, now: float) -> float:
        return now - (self.first_attempt_at if self.first_attempt_at is not None else now)

    @property
    def backoff_s(self) -> float:
        return min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** (self.failures_in_row - 1)) if self.failures_in_row else 0.0

    def failed(self, now: float, reason: str, detail: str) -> bool:
        """Schedule the next attempt; True when this failure is news to journal."""
        self.failures_in_row += 1
        self.next_at = now + self.backoff_s
        news = self.told_at is None or self.told != (reason, detail) or now - self.told_at >= RETOLD_EVERY_S
        if news:
            self.told_at, self.told = now, (reason, detail)
        return news

    def retry_now(self) -> None:
        """An operator asked again: the next attempt at once, backing off from the start."""
        self.next_at, self.failures_in_row = None, 0
