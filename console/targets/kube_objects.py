"""Pure functions over Kubernetes objects (plain dicts): images, rollout progress, diffs, pod health.

Nothing here talks to a cluster, so all of it is table-tested without one.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from console import strict_json
from console.samples import TrackValues
from console.targets.base import RolloutFailed, TargetError

TRACK_LABEL = "track"
"""Canary pods carry track=canary; the stable Deployment's own pods are left as they are."""
COLOUR_LABEL = "colour"
"""Blue-green: the label the active Service selects on, blue or green."""
COLOURS = ("blue", "green")
MANAGED_BY = {"app.kubernetes.io/managed-by": "brahma"}
"""On objects Brahma created (and may therefore delete)."""
FIELD_MANAGER = "brahma"
"""The field manager Brahma writes as: managedFields name anyone else who changed a field since."""
WEIGHT_ANNOTATION = "brahma.io/weight"
"""On the canary Deployment: the traffic share it was scaled for, so a repeated call can tell."""
KEEP_UNTIL_ANNOTATION = "brahma.io/keep-until"
"""Blue-green: on the old colour after a release, the end of its rollback window."""
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
"""What `kubectl rollout history` prints for a revision."""
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
_SERVER_ANNOTATIONS = ("deployment.kubernetes.io/", "kubectl.kubernetes.io/last-applied-configuration")


# --- deployments ----------------------------------------------------------------------------------


def name_of(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def images_of(deployment: dict[str, Any]) -> dict[str, str]:
    """Container name → image, of the pod template."""
    return {c["name"]: c["image"] for c in containers(deployment)}


def release_container(deployment: dict[str, Any], preferred: tuple[str, ...]) -> str:
    """The container a release sets the image of: the first named in `preferred`, else the first one."""
    names = [c["name"] for c in containers(deployment)]
    return next((name for name in preferred if name in names), names[0])


def with_images(deployment: dict[str, Any], images: dict[str, str], cause: str | None = None) -> dict[str, Any]:
    """A copy whose containers run `images` (by container name), with a change-cause when given."""
    changed = copy.deepcopy(deployment)
    for container in containers(changed):
        container["image"] = images.get(container["name"], container["image"])
    if cause and images != images_of(deployment):
        changed["metadata"].setdefault("annotations", {})[CHANGE_CAUSE_ANNOTATION] = cause
    return changed


def replicas_of(deployment: dict[str, Any]) -> int:
    return int(deployment["spec"].get("replicas", 1))


def revision_of(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) or 0)


def match_labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj["spec"].get("selector") or {}).get("matchLabels") or {})


def template_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"].get("metadata", {}).get("labels") or {})


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether an equality selector (a Service's, a matchLabels) selects these labels."""
    return all(labels.get(key) == value for key, value in selector.items())


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _condition(deployment: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def rollout_done(deployment: dict[str, Any]) -> bool:
    """Rolled out and available, as `kubectl rollout status` decides; raises past the progress deadline.

    The controller must have seen the latest spec (observedGeneration), every replica must run the
    current template (updatedReplicas), no old replica may be left, and the updated ones must be
    available.
    """
    status = deployment.get("status") or {}
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return False
    progressing = _condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        message = f"deployment/{name_of(deployment)} exceeded its progress deadline: {progressing.get('message', '')}"
        raise RolloutFailed(message, "progress_deadline")
    updated = status.get("updatedReplicas", 0)
    return updated >= replicas_of(deployment) and status.get("replicas", 0) <= updated and status.get("availableReplicas", 0) >= updated


def rollout_settled(deployment: dict[str, Any]) -> bool:
    """`rollout_done` for a status display: a rollout past its deadline is simply not done."""
    try:
        return rollout_done(deployment)
    except TargetError:
        return False


def images_text(images: dict[str, str]) -> str:
    return ", ".join(f"{name}={image}" for name, image in images.items())


def serving_problems(deployment: dict[str, Any], images: dict[str, str], release_image: str) -> list[str]:
    """What keeps `deployment` from serving `images`, fully rolled out (a rollback's read-back); none when it does.

    Images that are neither `images` nor the release's (a hotfix made beside the release, journaled as
    drift) are left as found by the rollback, so they do not keep it open: only the release's image does."""
    name, running = name_of(deployment), images_of(deployment)
    still_new = release_image in running.values()
    problems = [f"deployment/{name} runs {images_text(running)}, not {images_text(images)}"] if running != images and still_new else []
    if not rollout_settled(deployment):
        status = deployment.get("status") or {}
        problems.append(
            f"deployment/{name} has not rolled out ({status.get('updatedReplicas', 0)} of {replicas_of(deployment)} "
            f"updated, {status.get('availableReplicas', 0)} available)"
        )
    return problems


def canary_replicas(stable_replicas: int, weight: int, routed: bool) -> int:
    """Canary replicas for a traffic share.

    Split by replicas (no HTTPRoute), the Service spreads requests over every pod, so the canary's
    share is canary / (stable + canary): canary = stable * w / (100 - w), rounded to the nearest
    and at least one pod (10 stable pods: 5% → 1 pod, 9%; 25% → 3 pods, 23%; 50% → 10 pods).
    Split by route weights, the share is exact and the canary needs only the capacity for its
    share: ceil(stable * w / 100), at least one pod.
    """
    if weight <= 0:
        return 0
    if routed:
        return max(1, math.ceil(stable_replicas * weight / 100))
    return max(1, math.floor(stable_replicas * weight / (100 - weight) + 0.5))


def effective_weight(stable_replicas: int, canary: int) -> float:
    """The canary's share of requests when a Service spreads them evenly over the pods."""
    total = stable_replicas + canary
    return round(100 * canary / total, 1) if total else 0.0


# --- building objects -----------------------------------------------------------------------------


def updated(obj: dict[str, Any], spec: dict[str, Any], labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """`obj` with a new spec and these labels and annotations added (its others kept)."""
    changed = copy.deepcopy(obj)
    changed["spec"] = copy.deepcopy(spec)
    metadata = changed["metadata"]
    if labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    if annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    return changed


def new_object(like: dict[str, Any], name: str, spec: dict[str, Any], labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """A manifest for a new object of `like`'s kind: `like`'s labels plus `labels`, only `annotations`."""
    metadata: dict[str, Any] = {"name": name, "labels": {**(like["metadata"].get("labels") or {}), **labels}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": like["apiVersion"], "kind": like["kind"], "metadata": metadata, "spec": copy.deepcopy(spec)}


def with_selector(service: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """The Service selecting exactly `selector`."""
    return updated(service, {**service["spec"], "selector": dict(selector)}, {}, {})


def relabelled_spec(deployment: dict[str, Any], labels: dict[str, str], images: dict[str, str], replicas: int) -> dict[str, Any]:
    """The Deployment's spec for a sibling: `labels` added to its selector and pod template, new images and replicas."""
    spec = copy.deepcopy(deployment["spec"])
    spec["replicas"] = replicas
    spec.pop("paused", None)
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **labels}
    template_metadata = spec["template"].setdefault("metadata", {})
    template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **labels}
    for container in spec["template"]["spec"]["containers"]:
        container["image"] = images.get(container["name"], container["image"])
    return spec


def service_spec(like: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """A ClusterIP Service spec with `like`'s ports (no node ports) and `selector`."""
    ports = [{k: v for k, v in port.items() if k != "nodePort"} for port in like["spec"].get("ports") or []]
    return {"type": "ClusterIP", "ports": ports, "selector": dict(selector)}


def undo_template(replicaset: dict[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's pod template as its Deployment had it (no pod-template-hash), as `kubectl rollout undo` takes it."""
    template = copy.deepcopy(replicaset["spec"]["template"])
    (template.get("metadata") or {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
    return template


# --- HTTPRoute weights ----------------------------------------------------------------------------


def route_backends(route: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each rule's backendRefs, as they are."""
    return [copy.deepcopy(rule.get("backendRefs") or []) for rule in route["spec"].get("rules") or []]


def with_backends(route: dict[str, Any], backends: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The route with each rule's backendRefs replaced (the rollback's exact restore)."""
    changed = copy.deepcopy(route)
    for rule, refs in zip(changed["spec"].get("rules") or [], backends):
        rule["backendRefs"] = copy.deepcopy(refs)
    return changed


def with_canary_weight(route: dict[str, Any], stable: str, canary: str, weight: int) -> dict[str, Any]:
    """Every rule that sends to `stable` splits 100 - weight / weight with `canary`; 0 removes the canary."""
    changed = copy.deepcopy(route)
    for rule in changed["spec"].get("rules") or []:
        refs = rule.get("backendRefs") or []
        stable_ref = next((ref for ref in refs if ref.get("name") == stable), None)
        if stable_ref is None:
            continue
        stable_ref["weight"] = 100 - weight
        kept = [ref for ref in refs if ref.get("name") != canary]
        if weight > 0:
            kept.append({"group": "", "kind": "Service", "name": canary, "port": stable_ref.get("port"), "weight": weight})
        rule["backendRefs"] = [{k: v for k, v in ref.items() if v is not None} for ref in kept]
    return changed


def route_weight(route: dict[str, Any], canary: str) -> int:
    """The canary's share of the route's traffic, in percent (of its first rule that names it)."""
    for refs in route_backends(route):
        total = sum(int(ref.get("weight", 1)) for ref in refs)
        for ref in refs:
            if ref.get("name") == canary and total:
                return round(100 * int(ref.get("weight", 1)) / total)
    return 0


# --- the diff shown before the first change -------------------------------------------------------


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if not k.startswith(_SERVER_ANNOTATIONS)}
    return {"metadata": {"labels": metadata.get("labels") or {}, "annotations": annotations}, "spec": obj.get("spec") or {}}


def _flatten(value: Any, path: str, into: dict[str, Any]) -> None:
    """Leaf values by dotted path (list items by their name when they have one); empty maps leave nothing."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, into)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{item.get('name', index)}]", into)
    else:
        into[path] = value


def _show(value: Any) -> str:
    return "(none)" if value is None else value if isinstance(value, str) else strict_json.dumps(value, separators=strict_json.SPACED, sort_keys=True)


def summary(obj: dict[str, Any]) -> str:
    """One line about a new object: images, replicas and selector for a Deployment; selector for a Service."""
    spec = obj.get("spec") or {}
    parts = []
    if "template" in spec:
        parts.append("image " + images_text(images_of(obj)))
        parts.append(f"{spec.get('replicas', 1)} replicas")
        parts.append(f"selector {selector_string(match_labels(obj))}")
    elif isinstance(spec.get("selector"), dict):
        parts.append(f"selector {selector_string(spec['selector'])}")
    return ", ".join(parts)


def describe_change(when: str, kind: str, current: dict[str, Any] | None, proposed: dict[str, Any]) -> list[str]:
    """What writing `proposed` over `current` changes, one line per field, for the operator and the journal."""
    subject = f"{kind}/{name_of(proposed)}"
    if current is None:
        return [f"{when}: create {subject} ({summary(proposed)})"]
    before, after = {}, {}
    _flatten(_comparable(current), "", before)
    _flatten(_comparable(proposed), "", after)
    return [
        f"{when}: {subject} {path}: {_show(before.get(path))} → {_show(after.get(path))}"
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


# --- drift: changes made beside the release -------------------------------------------------------

FieldPath = tuple[str, ...]
"""A field as managedFields name it (FieldsV1): ("f:spec", "f:replicas")."""
REPLICAS_FIELD: FieldPath = ("f:spec", "f:replicas")


def image_field(container: str) -> FieldPath:
    return ("f:spec", "f:template", "f:spec", "f:containers", "k:" + strict_json.dumps({"name": container}), "f:image")


def changed_by(obj: dict[str, Any], field: FieldPath) -> str:
    """Who last set `field` (or a field under it), as managedFields say: a manager other than Brahma, else ""."""
    owners = [
        entry for entry in obj["metadata"].get("managedFields") or [] if entry.get("manager") != FIELD_MANAGER and _owns(entry.get("fieldsV1") or {}, field)
    ]
    if not owners:
        return ""
    latest = max(owners, key=lambda entry: entry.get("time") or "")
    subresource = latest.get("subresource")
    return str(latest.get("manager") or "an unnamed manager") + (f" ({subresource})" if subresource else "")


def _owns(fields: dict[str, Any], field: FieldPath) -> bool:
    for key in field:
        if key not in fields:
            return False
        fields = fields[key]
    return True


def drift_line(obj: dict[str, Any], kind: str, what: str, left: Any, found: Any, field: FieldPath) -> str:
    """`kind/name what: left → found`, and who changed it when managedFields say."""
    who = changed_by(obj, field)
    return f"{kind}/{name_of(obj)} {what}: {_show(left)} → {_show(found)}" + (f" (by {who})" if who else "")


def deployment_drift(deployment: dict[str, Any] | None, name: str, images: dict[str, str], replicas: int | None = None) -> list[str]:
    """How a Deployment differs from the images (by container) and replicas Brahma left it with."""
    if deployment is None:
        return [f"deployment/{name} deleted"]
    found = images_of(deployment)
    lines = [
        drift_line(deployment, "deployment", f"spec.template.spec.containers[{container}].image", image, found.get(container), image_field(container))
        for container, image in images.items()
        if found.get(container) != image
    ]
    if replicas is not None and replicas_of(deployment) != replicas:
        lines.append(drift_line(deployment, "deployment", "spec.replicas", replicas, replicas_of(deployment), REPLICAS_FIELD))
    return lines


# --- pod health -----------------------------------------------------------------------------------

RestartBaseline = dict[tuple[str, str], int]
"""(pod uid, container name) → restartCount when the rollout started."""


def pod_images(pod: dict[str, Any]) -> set[str]:
    return {c["image"] for c in pod["spec"].get("containers") or []}


def is_pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def restart_baseline(pods: list[dict[str, Any]], new_image: str) -> RestartBaseline:
    """Restart counts of the pods running before the release (the new version's pods count from zero)."""
    return {
        (pod["metadata"]["uid"], status["name"]): status.get("restartCount", 0)
        for pod in pods
        if new_image not in pod_images(pod)
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    }


def pod_health(pods: list[dict[str, Any]], new_image: str, baseline: RestartBaseline) -> dict[str, TrackValues]:
    """health_check_failures and memory_oom_kills of the new version's pods (canary) and the others (stable).

    A pod is the new version when a container runs `new_image`: the canary's pods, green in
    blue-green, the updated pods of a rolling update, the whole fleet after a promotion.
    health_check_failures: pods failing readiness, plus container restarts since the rollout started.
    memory_oom_kills: containers that restarted since then and whose last end was OOMKilled.
    A track with no pods has no value (None: never a pass).
    """
    failures: dict[str, int] = {}
    oom_kills: dict[str, int] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        track = "canary" if new_image in pod_images(pod) else "stable"
        failures[track] = failures.get(track, 0) + (0 if is_pod_ready(pod) else 1)
        oom_kills.setdefault(track, 0)
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            restarts = status.get("restartCount", 0) - baseline.get((pod["metadata"]["uid"], status["name"]), 0)
            if restarts > 0:
                failures[track] += restarts
                last_end = (status.get("lastState") or {}).get("terminated") or {}
                oom_kills[track] += last_end.get("reason") == "OOMKilled"

    def values(counts: dict[str, int]) -> TrackValues:
        canary, stable = counts.get("canary"), counts.get("stable")
        return TrackValues(None if canary is None else float(canary), None if stable is None else float(stable))

    return {"health_check_failures": values(failures), "memory_oom_kills": values(oom_kills)}
