"""What the Kubernetes strategies share: the release's names in the cluster, and the Strategy base.

Every strategy call reads what it needs from the cluster (never from memory), so a resumed run or
a repeated call finds things where they are and changes only what still differs. The state before
the release, recorded by `prepare`, is what `rollback` goes back to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.plan.model import RolloutPlan
from console.targets.base import RollbackReadBack, TargetError, TargetStatus
from console.targets.kube_api import DEPLOYMENTS, Kind, KubeApi, NotFound
from console.targets.kube_objects import (
    describe_change,
    images_of,
    match_labels,
    name_of,
    release_container,
    rollout_done,
    selector_string,
    with_images,
)

ROLLOUT_TIMEOUT_S = 600.0
"""Longest wait for a Deployment to roll out (the Progressing deadline usually ends it sooner)."""


@dataclass(frozen=True)
class Release:
    """What a strategy knows about the release and the names of its objects in the cluster."""

    name: str
    app: str
    image: str
    deployment: str
    """The stable Deployment (canary, rolling) or the stem of `<deployment>-blue` / `-green`."""
    service: str
    """The Service in front of the stable version (canary) or the active colour (blue-green)."""
    preview_service: str
    httproute: str | None
    first_weight: int
    rollback_window_s: float
    rollout_timeout_s: float = ROLLOUT_TIMEOUT_S

    @classmethod
    def from_plan(cls, plan: RolloutPlan, rollout_timeout_s: float = ROLLOUT_TIMEOUT_S) -> Release:
        target = plan.target
        service = target.service or plan.app
        return cls(
            name=plan.name,
            app=plan.app,
            image=plan.image,
            deployment=target.deployment or plan.app,
            service=service,
            preview_service=target.preview_service or f"{service}-preview",
            httproute=target.httproute,
            first_weight=plan.stages[0].weight,
            rollback_window_s=plan.rollback_window,
            rollout_timeout_s=rollout_timeout_s,
        )

    @property
    def cause(self) -> str:
        """The change-cause `kubectl rollout history` shows for Brahma's revisions."""
        return f"brahma: release {self.name} ({self.image})"

    @property
    def rollback_cause(self) -> str:
        return f"brahma: rollback of {self.name}"


class Strategy:
    """What the strategies share: the API, the release, and following a Deployment's rollout."""

    kind = ""

    def __init__(self, api: KubeApi, release: Release):
        self.api, self.release = api, release
        self._pod_selector: str | None = None

    def _new_images(self, deployment: dict[str, Any]) -> dict[str, str]:
        """The release's image in the app's container (named like the app or the Deployment, else the first)."""
        container = release_container(deployment, (self.release.app, self.release.deployment))
        return {container: self.release.image}

    def _runs_new_image(self, deployment: dict[str, Any] | None) -> bool:
        return deployment is not None and self.release.image in images_of(deployment).values()

    def _needed(self, obj: dict[str, Any] | None, kind: Kind, name: str) -> dict[str, Any]:
        """`obj`, which the step cannot do without: NotFound naming it when it is missing."""
        if obj is None:
            raise NotFound(f"{kind.plural}/{name} in namespace {self.api.namespace} not found")
        return obj

    def _check_before(self, before: dict[str, Any]) -> None:
        if before.get("strategy") != self.kind:
            raise TargetError(f"the recorded state is for a {before.get('strategy')} release, not {self.kind}")

    async def _rolled_out(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The Deployment once rolled out and available, followed with a watch."""
        what = f"the rollout of deployment/{name_of(deployment)}"
        return await self.api.wait_for(DEPLOYMENTS, deployment, rollout_done, self.release.rollout_timeout_s, what)

    def _running(self, name: str, images: dict[str, str], cause: str) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
        """What the Deployment `name` should be to run `images` (for `converge`)."""
        return lambda current: with_images(self._needed(current, DEPLOYMENTS, name), images, cause)

    async def _set_images(self, deployment: dict[str, Any], images: dict[str, str], cause: str) -> bool:
        """Run `images` in the Deployment and wait until it has rolled out; True when it had to change."""
        name = name_of(deployment)
        current, written = await self.api.converge(DEPLOYMENTS, name, self._running(name, images, cause), read=deployment)
        await self._rolled_out(written or self._needed(current, DEPLOYMENTS, name))
        return written is not None

    async def _release_image_changes(self, deployment: dict[str, Any], when: str) -> list[str]:
        """The diff of giving the Deployment the release's image, from a server-side dry run."""
        name = name_of(deployment)
        desire = self._running(name, self._new_images(deployment), self.release.cause)
        _, proposed = await self.api.converge(DEPLOYMENTS, name, desire, read=deployment, dry_run=True)
        return describe_change(when, "deployment", deployment, proposed) if proposed else []

    async def pod_selector(self) -> str:
        """A label selector for the pods of both versions (for pod health)."""
        if self._pod_selector is None:
            self._pod_selector = await self._read_pod_selector()
        return self._pod_selector

    async def _read_pod_selector(self) -> str:
        return selector_string(match_labels(await self.api.get(DEPLOYMENTS, self.release.deployment)))

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        raise NotImplementedError

    async def set_weight(self, weight: int) -> bool:
        raise NotImplementedError

    async def rollback(self, before: dict[str, Any]) -> bool:
        raise NotImplementedError

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        raise NotImplementedError

    async def finish(self) -> None:
        return None

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """What differs from the state this release left at `weight` (`before`: what prepare recorded)."""
        raise NotImplementedError

    async def status(self) -> TargetStatus:
        raise NotImplementedError
