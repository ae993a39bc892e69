"""Rolling update on Kubernetes: the image set in place, rollback undone from the ReplicaSet history."""

from __future__ import annotations

from typing import Any

from console.targets.base import RollbackReadBack, TargetStatus
from console.targets.kube_api import DEPLOYMENTS, REPLICASETS
from console.targets.kube_objects import (
    CHANGE_CAUSE_ANNOTATION,
    deployment_drift,
    images_of,
    images_text,
    match_labels,
    release_container,
    replicas_of,
    revision_of,
    rollout_settled,
    selector_string,
    serving_problems,
    undo_template,
    updated,
    with_images,
)
from console.targets.kube_release import Strategy


class RollingStrategy(Strategy):
    """The image set in place and the rollout followed; rollback undoes to the recorded revision.

    The undo works as `kubectl rollout undo --to-revision` does: the pod template is taken from the
    Deployment's ReplicaSet of that revision (its history); when history no longer has it, the
    recorded images are set instead. A Deployment no longer on the release's image (a hotfix made
    beside the release) is not undone. A plan's stages are all at 100% (checked by from_plan).
    """

    kind = "rolling"

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        deployment = await self.api.get(DEPLOYMENTS, self.release.deployment)
        self._pod_selector = selector_string(match_labels(deployment))
        changes = await self._release_image_changes(deployment, "rolling (100%)")
        changes.append(f"rollback: undo to revision {revision_of(deployment)}")
        before = {
            "strategy": self.kind,
            "deployment": self.release.deployment,
            "images": images_of(deployment),
            "replicas": replicas_of(deployment),
            "revision": revision_of(deployment),
        }
        return before, changes

    async def set_weight(self, weight: int) -> bool:
        deployment = await self.api.get(DEPLOYMENTS, self.release.deployment)
        return await self._set_images(deployment, self._new_images(deployment), self.release.cause)

    async def rollback(self, before: dict[str, Any]) -> bool:
        self._check_before(before)
        deployment = await self.api.get(DEPLOYMENTS, before["deployment"])
        if images_of(deployment) == before["images"]:
            await self._rolled_out(deployment)
            return False
        if not self._runs_new_image(deployment):  # someone else's image since (journaled as drift): not ours to undo
            return False
        template = await self._template_of_revision(deployment, before["revision"])
        cause = f"{self.release.rollback_cause} to revision {before['revision']}"

        def undone(current: dict[str, Any] | None) -> dict[str, Any]:
            current = self._needed(current, DEPLOYMENTS, before["deployment"])
            if template is None:
                return with_images(current, before["images"], cause)
            return updated(current, {**current["spec"], "template": template}, {}, {CHANGE_CAUSE_ANNOTATION: cause})

        _, written = await self.api.converge(DEPLOYMENTS, before["deployment"], undone, read=deployment)
        await self._rolled_out(written or deployment)
        return written is not None

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """The Deployment on the release's image (its other containers as they were)."""
        deployment = await self.api.find(DEPLOYMENTS, before["deployment"])
        container = release_container(deployment, (self.release.app, self.release.deployment)) if deployment else ""
        return deployment_drift(deployment, before["deployment"], {**before["images"], container: self.release.image})

    async def _template_of_revision(self, deployment: dict[str, Any], revision: int) -> dict[str, Any] | None:
        """The pod template of the Deployment's ReplicaSet at `revision`, if history still has it."""
        uid = deployment["metadata"]["uid"]
        for replicaset in await self.api.list(REPLICASETS, selector_string(match_labels(deployment))):
            owners = replicaset["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid and o.get("controller") for o in owners) and revision_of(replicaset) == revision:
                return undo_template(replicaset)
        return None

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        """The Deployment on its images before the release, rolled out: no pod of the new version left."""
        self._check_before(before)
        deployment = await self.api.get(DEPLOYMENTS, before["deployment"])
        status = deployment.get("status") or {}
        observed = (
            f"deployment/{before['deployment']} runs {images_text(images_of(deployment))}, revision {revision_of(deployment)}, "
            f"{status.get('updatedReplicas', 0)} updated, {status.get('availableReplicas', 0)} available"
        )
        return RollbackReadBack(observed, tuple(serving_problems(deployment, before["images"], self.release.image)))

    async def status(self) -> TargetStatus:
        deployment = await self.api.get(DEPLOYMENTS, self.release.deployment)
        rolled = self._runs_new_image(deployment)
        container = release_container(deployment, (self.release.app, self.release.deployment))
        status = deployment.get("status") or {}
        return TargetStatus(
            weight=100 if rolled else 0,
            stable_image=images_of(deployment)[container],
            new_image=self.release.image if rolled else None,
            ready=rollout_settled(deployment),
            detail={
                "strategy": self.kind,
                "revision": revision_of(deployment),
                **{k: status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")},
            },
        )
