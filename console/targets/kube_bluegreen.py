"""Blue-green on Kubernetes: two colour Deployments, a preview Service, and the active Service's selector switched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from console.targets.base import RollbackReadBack, RolloutFailed, TargetError, TargetStatus
from console.targets.kube_api import DEPLOYMENTS, PODS, SERVICES
from console.targets.kube_objects import (
    COLOUR_LABEL,
    COLOURS,
    KEEP_UNTIL_ANNOTATION,
    MANAGED_BY,
    deployment_drift,
    describe_change,
    drift_line,
    images_of,
    images_text,
    is_pod_ready,
    name_of,
    new_object,
    pod_images,
    relabelled_spec,
    release_container,
    replicas_of,
    rollout_settled,
    selector_string,
    service_spec,
    serving_problems,
    updated,
    with_images,
    with_selector,
)
from console.targets.kube_release import Strategy


def _other(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass
class _Colours:
    """Blue-green as found in the cluster: which colour the Service selects and which runs the release."""

    service: dict[str, Any]
    active: str
    new: str
    deployments: dict[str, dict[str, Any] | None]
    """By colour; the active colour's always exists."""

    @property
    def old(self) -> str:
        return _other(self.new)

    @property
    def active_deployment(self) -> dict[str, Any]:
        return self.deployments[self.active] or {}

    def selecting(self, colour: str) -> dict[str, str]:
        """The Service's selector, for pods of `colour`."""
        return {**(self.service["spec"].get("selector") or {}), COLOUR_LABEL: colour}


class BlueGreenStrategy(Strategy):
    """`<deployment>-blue` and `<deployment>-green`; the Service selects one by its `colour` label.

    The new version goes to the colour the Service does not select, with the active colour's spec
    and replicas; once it has rolled out, the preview Service (created when missing) selects it and
    the smoke check runs. Weight 100 switches the Service's selector at once; any weight under 100
    is the preview. The old colour stays for the rollback window; rollback switches back.
    """

    kind = "blue-green"

    def _deployment_name(self, colour: str) -> str:
        return f"{self.release.deployment}-{colour}"

    async def _colours(self) -> _Colours:
        service = await self.api.get(SERVICES, self.release.service)
        active = (service["spec"].get("selector") or {}).get(COLOUR_LABEL)
        if active not in COLOURS:
            raise TargetError(
                f"service/{self.release.service} must select pods by a `{COLOUR_LABEL}` label, blue or green, for a "
                f"blue-green release; its selector is {selector_string(service['spec'].get('selector') or {}) or 'empty'}"
            )
        deployments = {colour: await self.api.find(DEPLOYMENTS, self._deployment_name(colour)) for colour in COLOURS}
        self._needed(deployments[active], DEPLOYMENTS, self._deployment_name(active))  # nothing to release beside
        new = active if self._runs_new_image(deployments[active]) else _other(active)
        labels = {k: v for k, v in (service["spec"].get("selector") or {}).items() if k != COLOUR_LABEL}
        self._pod_selector = selector_string(labels)
        return _Colours(service, active, new, deployments)

    async def _read_pod_selector(self) -> str:
        await self._colours()
        return self._pod_selector or ""

    def _new_colour(self, colours: _Colours, current: dict[str, Any] | None) -> dict[str, Any] | None:
        """The new colour's Deployment: the old colour's spec and replicas with the release's image."""
        if self._runs_new_image(current):
            return None
        old = self._needed(colours.deployments[colours.old], DEPLOYMENTS, self._deployment_name(colours.old))
        spec = relabelled_spec(old, {COLOUR_LABEL: colours.new}, self._new_images(old), replicas_of(old))
        labels = {COLOUR_LABEL: colours.new}
        if current is None:
            return new_object(old, self._deployment_name(colours.new), spec, {**labels, **MANAGED_BY}, {})
        deployment = updated(current, spec, labels, {})
        deployment["metadata"].get("annotations", {}).pop(KEEP_UNTIL_ANNOTATION, None)
        return deployment

    def _preview(self, colours: _Colours, current: dict[str, Any] | None) -> dict[str, Any] | None:
        """The preview Service selecting the new colour."""
        selector = colours.selecting(colours.new)
        if current is None:
            spec = service_spec(colours.service, selector)
            return new_object(colours.service, self.release.preview_service, spec, MANAGED_BY, {})
        return with_selector(current, selector)

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        release, api = self.release, self.api
        colours = await self._colours()
        active = colours.active_deployment
        new_name = self._deployment_name(colours.new)
        current_new, new_dry = await api.converge(
            DEPLOYMENTS, new_name, lambda cur: self._new_colour(colours, cur), read=colours.deployments[colours.new], dry_run=True
        )
        preview, preview_dry = await api.converge(SERVICES, release.preview_service, lambda cur: self._preview(colours, cur), dry_run=True)
        _, switch_dry = await api.converge(
            SERVICES,
            release.service,
            lambda cur: with_selector(colours.service, colours.selecting(colours.new)),
            read=colours.service,
            dry_run=True,
        )
        changes = describe_change("preview (0%)", "deployment", current_new, new_dry) if new_dry else []
        changes += describe_change("preview (0%)", "service", preview, preview_dry) if preview_dry else []
        changes.append(f"preview (0%): smoke check: service/{release.preview_service} selects only ready pods of {release.image}")
        changes += describe_change("switch (100%)", "service", colours.service, switch_dry) if switch_dry else []
        hours = release.rollback_window_s / 3600
        changes.append(f"after: deployment/{self._deployment_name(colours.old)} kept {hours:g}h for a rollback")
        before = {
            "strategy": self.kind,
            "service": release.service,
            "selector": dict(colours.service["spec"].get("selector") or {}),
            "active_colour": colours.active,
            "active_deployment": self._deployment_name(colours.active),
            "images": images_of(active),
            "replicas": replicas_of(active),
            "preview_service": release.preview_service,
            "preview_selector": dict(preview["spec"].get("selector") or {}) if preview else None,
            "new_deployment": new_name,
            "new_existed": current_new is not None,
            "new_images": images_of(current_new) if current_new else None,
            "new_replicas": replicas_of(current_new) if current_new else None,
        }
        return before, changes

    async def set_weight(self, weight: int) -> bool:
        colours = await self._colours()
        new_name = self._deployment_name(colours.new)
        current, written = await self.api.converge(DEPLOYMENTS, new_name, lambda cur: self._new_colour(colours, cur), read=colours.deployments[colours.new])
        deployment = await self._rolled_out(written or self._needed(current, DEPLOYMENTS, new_name))
        _, preview = await self.api.converge(SERVICES, self.release.preview_service, lambda cur: self._preview(colours, cur))
        await self._smoke_check(colours, deployment)
        serving = colours.new if weight >= 100 else colours.old
        _, switched = await self.api.converge(
            SERVICES,
            self.release.service,
            lambda cur: with_selector(colours.service, colours.selecting(serving)),
            read=colours.service,
        )
        return bool(written or preview or switched)

    async def _smoke_check(self, colours: _Colours, deployment: dict[str, Any]) -> None:
        """The preview Service must select ready pods of the release, as many as the Deployment wants, and no others.

        This checks what the cluster reports (readiness of the selected pods), not answers to real
        requests: the probes in the pod template are the smoke test.
        """
        selected = await self.api.list(PODS, selector_string(colours.selecting(colours.new)))
        pods = [p for p in selected if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in pods if is_pod_ready(p) and self.release.image in pod_images(p)]
        others = [p for p in pods if self.release.image not in pod_images(p)]
        wanted = max(replicas_of(deployment), 1)
        if len(ready) < wanted or others:
            raise RolloutFailed(
                f"smoke check failed: service/{self.release.preview_service} selects {len(ready)} ready pods of "
                f"{self.release.image} ({wanted} wanted) and {len(others)} of another version",
                "smoke_check",
            )

    async def rollback(self, before: dict[str, Any]) -> bool:
        """The Service's selector back first (that is the traffic), then the preview and the new colour as they were."""
        self._check_before(before)
        api = self.api
        _, switched = await api.converge(
            SERVICES, before["service"], lambda cur: with_selector(self._needed(cur, SERVICES, before["service"]), before["selector"])
        )
        changed = switched is not None
        if before["preview_selector"] is None:
            changed |= await api.delete(SERVICES, before["preview_service"])
        else:
            _, preview = await api.converge(SERVICES, before["preview_service"], lambda cur: cur and with_selector(cur, before["preview_selector"]))
            changed |= preview is not None
        if not before["new_existed"]:
            changed |= await api.delete(DEPLOYMENTS, before["new_deployment"])
            return changed

        def as_before(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return None
            restored = with_images(current, before["new_images"])
            return updated(restored, {**restored["spec"], "replicas": before["new_replicas"]}, {}, {})

        _, restored = await api.converge(DEPLOYMENTS, before["new_deployment"], as_before)
        return changed or restored is not None

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        """The Service's selector as it was (on the old colour), that colour on its old images and rolled out."""
        self._check_before(before)
        selector = (await self.api.get(SERVICES, before["service"]))["spec"].get("selector") or {}
        active = await self.api.get(DEPLOYMENTS, before["active_deployment"])
        problems = serving_problems(active, before["images"], self.release.image)
        if selector != before["selector"]:
            problems.insert(0, f"service/{before['service']} selects {selector_string(selector)}, not {selector_string(before['selector'])}")
        observed = (
            f"service/{before['service']} selects {selector_string(selector)}; deployment/{before['active_deployment']} runs {images_text(images_of(active))}"
        )
        return RollbackReadBack(observed, tuple(problems))

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        """The Service on the colour that should serve (the old one during the preview); the new colour on the
        release's image at the old one's replicas; the old colour as it was."""
        service = await self.api.find(SERVICES, before["service"])
        new = await self.api.find(DEPLOYMENTS, before["new_deployment"])
        old = await self.api.find(DEPLOYMENTS, before["active_deployment"])
        lines = []
        serving = _other(before["active_colour"]) if weight >= 100 else before["active_colour"]
        selected = ((service or {}).get("spec") or {}).get("selector", {}).get(COLOUR_LABEL)
        if service is None:
            lines.append(f"service/{before['service']} deleted")
        elif selected != serving:
            lines.append(drift_line(service, "service", f"spec.selector.{COLOUR_LABEL}", serving, selected, ("f:spec", "f:selector", f"f:{COLOUR_LABEL}")))
        container = release_container(old, (self.release.app, self.release.deployment)) if old else ""
        lines += deployment_drift(new, before["new_deployment"], {container: self.release.image} if container else {}, before["replicas"])
        lines += deployment_drift(old, before["active_deployment"], before["images"])
        return lines

    async def finish(self) -> None:
        """Keep the old colour, marked with the end of its rollback window."""
        colours = await self._colours()
        old = colours.deployments[colours.old]
        if old is None or colours.active != colours.new:
            return
        until = datetime.now(UTC) + timedelta(seconds=self.release.rollback_window_s)
        stamp = {KEEP_UNTIL_ANNOTATION: until.isoformat(timespec="seconds")}
        await self.api.converge(DEPLOYMENTS, name_of(old), lambda cur: cur and updated(cur, cur["spec"], {}, stamp), read=old)

    async def status(self) -> TargetStatus:
        colours = await self._colours()
        new = colours.deployments[colours.new]
        old = colours.deployments[colours.old] or colours.active_deployment
        container = release_container(old, (self.release.app, self.release.deployment))
        return TargetStatus(
            weight=100 if colours.active == colours.new else 0,
            stable_image=images_of(old)[container],
            new_image=self.release.image if self._runs_new_image(new) else None,
            ready=rollout_settled(new or old),
            detail={"strategy": self.kind, "active": colours.active, "new_colour": colours.new},
        )
