"""Canary on Kubernetes: a canary Deployment beside the stable one, traffic by replicas or HTTPRoute weights."""

from __future__ import annotations

from typing import Any

from console.targets.base import RollbackReadBack, TargetError, TargetStatus
from console.targets.kube_api import DEPLOYMENTS, HTTPROUTES, SERVICES
from console.targets.kube_objects import (
    MANAGED_BY,
    TRACK_LABEL,
    WEIGHT_ANNOTATION,
    canary_replicas,
    deployment_drift,
    describe_change,
    drift_line,
    effective_weight,
    images_of,
    images_text,
    match_labels,
    name_of,
    new_object,
    relabelled_spec,
    release_container,
    replicas_of,
    revision_of,
    rollout_settled,
    route_backends,
    route_weight,
    selector_string,
    selects,
    service_spec,
    serving_problems,
    template_labels,
    updated,
    with_backends,
    with_canary_weight,
)
from console.targets.kube_release import Strategy


class CanaryStrategy(Strategy):
    """A `<deployment>-canary` Deployment beside the untouched stable one.

    Without an HTTPRoute the stable Service (which must select on labels both share, e.g. `app`)
    spreads requests over every pod, so the canary's replicas set its share; with one, the route's
    backendRefs carry exact weights between the stable Service and `<service>-canary` (created when
    missing, selecting track=canary). Promotion sets the new image on the stable Deployment, waits
    for it to roll out, then takes the canary's traffic away (route back to stable, canary at 0
    replicas); `finish` deletes the canary.
    """

    kind = "canary"

    @property
    def canary_name(self) -> str:
        return f"{self.release.deployment}-canary"

    @property
    def canary_service(self) -> str:
        return f"{self.release.service}-canary"

    @property
    def routed(self) -> bool:
        return self.release.httproute is not None

    def _canary(self, stable: dict[str, Any], current: dict[str, Any] | None, weight: int) -> dict[str, Any]:
        """The canary Deployment for `weight`: the stable spec with track=canary, the new image, its replicas."""
        replicas = canary_replicas(replicas_of(stable), weight, self.routed)
        spec = relabelled_spec(stable, {TRACK_LABEL: "canary"}, self._new_images(stable), replicas)
        labels = {TRACK_LABEL: "canary", **MANAGED_BY}
        annotations = {WEIGHT_ANNOTATION: str(weight)}
        if current is None:
            return new_object(stable, self.canary_name, spec, labels, annotations)
        return updated(current, spec, labels, annotations)

    def _canary_service_manifest(self, service: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
        """`<service>-canary` selecting the canary's pods; one that exists already is used as it is."""
        if current is not None:
            return None
        selector = {**(service["spec"].get("selector") or {}), TRACK_LABEL: "canary"}
        return new_object(service, self.canary_service, service_spec(service, selector), MANAGED_BY, {})

    def _check_traffic(self, stable: dict[str, Any], service: dict[str, Any] | None) -> None:
        """Refuse a layout where the weights could not mean what they say."""
        if service is None:
            return
        name = name_of(service)
        selector = service["spec"].get("selector") or {}
        canary_labels = {**template_labels(stable), TRACK_LABEL: "canary"}
        if self.routed and selects(selector, canary_labels):
            raise TargetError(
                f"service/{name} selects the canary's pods too ({selector_string(selector)}), so route weights would "
                f"not be exact: select the stable pods only (e.g. add {TRACK_LABEL}: stable to the selector and pod template)"
            )
        if not self.routed and not selects(selector, canary_labels):
            raise TargetError(
                f"service/{name} would send the canary no traffic: its selector ({selector_string(selector)}) must "
                f"match labels the stable and canary pods share, or name an httproute for weighted routing"
            )

    async def _read_pod_selector(self) -> str:
        stable = await self.api.get(DEPLOYMENTS, self.release.deployment)
        return self._remember_pods(stable)

    def _remember_pods(self, stable: dict[str, Any]) -> str:
        """Both tracks' pods: the stable selector without its track (a Deployment's selector never changes)."""
        labels = {k: v for k, v in match_labels(stable).items() if k != TRACK_LABEL}
        self._pod_selector = selector_string(labels)
        return self._pod_selector

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        release, api = self.release, self.api
        stable = await api.get(DEPLOYMENTS, release.deployment)
        self._remember_pods(stable)
        route = await api.get(HTTPROUTES, release.httproute) if release.httproute else None
        service = await api.get(SERVICES, release.service) if route else await api.find(SERVICES, release.service)
        self._check_traffic(stable, service)
        first = f"stage 1 ({release.first_weight}%)"
        canary, canary_dry = await api.converge(DEPLOYMENTS, self.canary_name, lambda cur: self._canary(stable, cur, release.first_weight), dry_run=True)
        changes = describe_change(first, "deployment", canary, canary_dry) if canary_dry else []
        canary_service = None
        if route is not None and service is not None:
            canary_service, service_dry = await api.converge(
                SERVICES, self.canary_service, lambda cur: self._canary_service_manifest(service, cur), dry_run=True
            )
            changes += describe_change(first, "service", canary_service, service_dry) if service_dry else []
            route_dry = await self._route_to(route, release.first_weight, dry_run=True)
            changes += describe_change(first, "httproute", route, route_dry) if route_dry else []
        changes += await self._promotion_changes(stable)
        before = {
            "strategy": self.kind,
            "deployment": release.deployment,
            "images": images_of(stable),
            "replicas": replicas_of(stable),
            "revision": revision_of(stable),
            "canary_deployment": self.canary_name,
            "canary_existed": canary is not None,
            "httproute": release.httproute,
            "route_backends": route_backends(route) if route else None,
            "canary_service": self.canary_service if route else None,
            "canary_service_existed": canary_service is not None,
        }
        return before, changes

    async def _promotion_changes(self, stable: dict[str, Any]) -> list[str]:
        release, when = self.release, "promotion (100%)"
        changes = await self._release_image_changes(stable, when)
        route = f", httproute/{release.httproute} back to {release.service} only" if self.routed else ""
        changes.append(f"{when}: canary traffic removed (deployment/{self.canary_name} to 0 replicas{route})")
        changes.append(f"after the monitoring window: deployment/{self.canary_name} deleted")
        return changes

    async def set_weight(self, weight: int) -> bool:
        stable = await self.api.get(DEPLOYMENTS, self.release.deployment)
        self._remember_pods(stable)
        if weight >= 100:
            return await self._promote(stable)
        route = await self.api.get(HTTPROUTES, self.release.httproute) if self.release.httproute else None
        changed = False
        if route is not None and route_weight(route, self.canary_service) == 0:
            changed = await self._ensure_canary_service()
        canary, written = await self.api.converge(DEPLOYMENTS, self.canary_name, lambda cur: self._canary(stable, cur, weight))
        await self._rolled_out(written or self._needed(canary, DEPLOYMENTS, self.canary_name))
        if route is not None:
            changed |= await self._route_to(route, weight) is not None
        return changed or written is not None

    async def _ensure_canary_service(self) -> bool:
        service = await self.api.get(SERVICES, self.release.service)
        _, written = await self.api.converge(SERVICES, self.canary_service, lambda cur: self._canary_service_manifest(service, cur))
        return written is not None

    async def _route_to(self, route: dict[str, Any], weight: int, dry_run: bool = False) -> dict[str, Any] | None:
        """The route's split: `weight` to the canary Service, the rest to stable (0: stable only); the route written, if it was."""
        name = name_of(route)

        def split(current: dict[str, Any] | None) -> dict[str, Any]:
            return with_canary_weight(self._needed(current, HTTPROUTES, name), self.release.service, self.canary_service, weight)

        _, written = await self.api.converge(HTTPROUTES, name, split, read=route, dry_run=dry_run)
        return written

    async def _promote(self, stable: dict[str, Any]) -> bool:
        changed = await self._set_images(stable, self._new_images(stable), self.release.cause)
        if self.release.httproute:
            changed |= await self._route_to(await self.api.get(HTTPROUTES, self.release.httproute), 0) is not None

        def scaled_to_zero(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return None
            return updated(current, {**current["spec"], "replicas": 0}, {}, {WEIGHT_ANNOTATION: "100"})

        _, written = await self.api.converge(DEPLOYMENTS, self.canary_name, scaled_to_zero)
        return changed or written is not None

    async def rollback(self, before: dict[str, Any]) -> bool:
        """Traffic first (route weights as they were, the canary deleted), then the stable image as it was.

        Only what the release changed is undone: a stable Deployment running neither the release nor
        its image before (a hotfix made beside the release, journaled as drift) is left as found."""
        self._check_before(before)
        changed = False
        if before["httproute"]:
            _, written = await self.api.converge(
                HTTPROUTES,
                before["httproute"],
                lambda cur: with_backends(self._needed(cur, HTTPROUTES, before["httproute"]), before["route_backends"]),
            )
            changed = written is not None
        changed |= await self.api.delete(DEPLOYMENTS, before["canary_deployment"])
        stable = await self.api.get(DEPLOYMENTS, before["deployment"])
        if self._runs_new_image(stable) or images_of(stable) == before["images"]:  # any other image is not ours to undo
            changed |= await self._set_images(stable, before["images"], self.release.rollback_cause)
        if before["canary_service"] and not before["canary_service_existed"]:
            changed |= await self.api.delete(SERVICES, before["canary_service"])
        return changed

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        """The route's backends as they were, no canary serving (gone, or its pods on their way out), stable
        on its old images and rolled out."""
        self._check_before(before)
        stable = await self.api.get(DEPLOYMENTS, before["deployment"])
        canary = await self.api.find(DEPLOYMENTS, before["canary_deployment"])
        problems = serving_problems(stable, before["images"], self.release.image)
        observed = [f"deployment/{before['deployment']} runs {images_text(images_of(stable))}"]
        if canary is None:
            observed.append(f"no deployment/{before['canary_deployment']}")
        elif canary["metadata"].get("deletionTimestamp"):
            observed.append(f"deployment/{before['canary_deployment']} being deleted")  # its pods are out of every endpoint
        else:
            problems.append(f"deployment/{before['canary_deployment']} still runs ({replicas_of(canary)} replicas)")
        if before["httproute"]:
            backends = route_backends(await self.api.get(HTTPROUTES, before["httproute"]))
            split = "; ".join(", ".join(f"{ref.get('name')} {ref.get('weight', 1)}" for ref in refs) for refs in backends)
            observed.append(f"httproute/{before['httproute']}: {split}")
            if backends != before["route_backends"]:
                problems.append(f"httproute/{before['httproute']} sends {split}, not its backends before the release")
        return RollbackReadBack("; ".join(observed), tuple(problems))

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """Stable as it was (its replicas too when they set the split), then with the release once promoted;
        the canary at the stage's replicas and image (none left serving once promoted); the route's split."""
        stable = await self.api.find(DEPLOYMENTS, before["deployment"])
        canary = await self.api.find(DEPLOYMENTS, before["canary_deployment"])
        container = release_container(stable, (self.release.app, self.release.deployment)) if stable else ""
        promoted = weight >= 100
        stable_images = {**before["images"], container: self.release.image} if promoted else before["images"]
        stable_replicas = None if promoted or self.routed else before["replicas"]
        lines = deployment_drift(stable, before["deployment"], stable_images, stable_replicas)
        if promoted:
            lines += deployment_drift(canary, self.canary_name, {}, 0) if canary else []
        else:
            replicas = canary_replicas(before["replicas"], weight, self.routed)
            if stable and canary and replicas_of(canary) == canary_replicas(replicas_of(stable), weight, self.routed):
                replicas = replicas_of(canary)  # sized for stable as it is now (a resume re-applied the stage after stable was scaled)
            lines += deployment_drift(canary, self.canary_name, {container: self.release.image} if container else {}, replicas)
        if before["httproute"]:
            lines += await self._route_drift(before["httproute"], 0 if promoted else weight)
        return lines

    async def _route_drift(self, name: str, weight: int) -> list[str]:
        route = await self.api.find(HTTPROUTES, name)
        if route is None:
            return [f"httproute/{name} deleted"]
        found = route_weight(route, self.canary_service)
        if found == weight:
            return []
        return [drift_line(route, "httproute", f"weight of {self.canary_service}", f"{weight}%", f"{found}%", ("f:spec", "f:rules"))]

    async def finish(self) -> None:
        await self.api.delete(DEPLOYMENTS, self.canary_name)
        if self.routed:
            service = await self.api.find(SERVICES, self.canary_service)
            if service is not None and selects(MANAGED_BY, service["metadata"].get("labels") or {}):
                await self.api.delete(SERVICES, self.canary_service)

    async def status(self) -> TargetStatus:
        stable = await self.api.get(DEPLOYMENTS, self.release.deployment)
        canary = await self.api.find(DEPLOYMENTS, self.canary_name)
        promoted = self._runs_new_image(stable)
        scaled_for = int((canary["metadata"].get("annotations") or {}).get(WEIGHT_ANNOTATION, 0)) if canary else 0
        canary_count = replicas_of(canary) if canary else 0
        detail: dict[str, Any] = {"strategy": self.kind, "replicas": replicas_of(stable), "canary_replicas": canary_count}
        if not self.routed:
            detail["effective_weight"] = 100.0 if promoted else effective_weight(replicas_of(stable), canary_count)
        container = release_container(stable, (self.release.app, self.release.deployment))
        return TargetStatus(
            weight=100 if promoted else scaled_for,
            stable_image=images_of(stable)[container],
            new_image=self.release.image if canary or promoted else None,
            ready=rollout_settled(stable) and (canary is None or rollout_settled(canary)),
            detail=detail,
        )
