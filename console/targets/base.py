"""Where the release runs and traffic is split: the simulator or a Kubernetes cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TargetStatus:
    """What a target reads back: the traffic share, the images, and whether the last change is available."""

    weight: int
    """Percent of traffic the new version serves now."""
    stable_image: str
    new_image: str | None
    ready: bool
    """The last change has rolled out and is available."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RollbackReadBack:
    """A rollback as the target reads it back: does the old version serve all traffic again?"""

    observed: str
    """What was read (weights, selector, images, rollout), said for the journal."""
    problems: tuple[str, ...] = ()
    """What still differs from the state before the release; none when stable serves everything."""

    @property
    def verified(self) -> bool:
        return not self.problems


class TargetError(Exception):
    """A target call that failed in a way the operator must see (denied, gone, timed out)."""


class RolloutFailed(TargetError):
    """The new version cannot come up (a Deployment past its progress deadline, a failed smoke check).

    Trying again changes nothing: the stage has failed and the release rolls back."""

    def __init__(self, message: str, trigger: str):
        super().__init__(message)
        self.trigger = trigger
        """What failed, for the rollback's record: progress_deadline or smoke_check."""


class Target(Protocol):
    """A strategy's mechanics behind one idea: the new version serves `weight` percent of traffic.

    Canary: 0 < weight < 100 shifts traffic (replicas or route weights), 100 promotes (stable takes
    the new image, canary traffic removed). Blue-green: 0 deploys green beside blue, 100 switches
    the active selector. Rolling: 100 sets the image in place. Every call is idempotent: asking for
    the weight the target already has changes nothing and returns False.
    """

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        """The state before the first change (for rollback) and what the rollout will change."""
        ...

    async def set_weight(self, weight: int) -> bool:
        """Move to `weight` and wait until it is confirmed; True when something changed."""
        ...

    async def rollback(self, before: dict[str, Any]) -> bool:
        """Back to `before` (what `prepare` returned, kept in the journal): stable serves 100%.

        True when something changed; safe to call again after a crash half-way through."""
        ...

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        """Read the target itself after `rollback(before)`: verified when the new version serves 0% (canary
        weight 0 and route weights as `before`, selector back on the old colour, the old images rolled out).

        The controller's proof of a rollback, so it reads what decides the traffic (the cluster's objects,
        the simulator's saved state), never what the rollback call believed it did. Not `status()`:
        that describes the rollout going forward (the new version's share as Brahma recorded it, the
        release container's image), where this compares every image, route and selector with `before`.
        Raises when the target cannot be read; the controller then retries the rollback."""
        ...

    async def finish(self) -> None:
        """After a completed rollout: tidy up (remove the canary; blue-green keeps the old colour)."""
        ...

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """What someone else changed: how the target differs from what this release left at `weight`.

        One line a difference (what, as left → as found, and by whom when the target can say); []
        when it is as left. Cheap (a few reads): it runs with every sample.
        """
        ...

    async def status(self) -> TargetStatus: ...

    async def close(self) -> None: ...
