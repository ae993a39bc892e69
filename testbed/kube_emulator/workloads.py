"""The controllers a Deployment needs: deployment controller, ReplicaSet controller and a kubelet.

They follow the real controllers' rules in small form: a ReplicaSet per pod template named
`<deployment>-<pod-template-hash>`, revision annotations, rolling updates bounded by maxSurge and
maxUnavailable (or Recreate), pods that start Running and Ready at once (unless an image is marked
broken), the Deployment's status and its Available and Progressing conditions, and the history
limit. One thread works a queue of keys fed by the store's changes, so everything is ordered and
a rollout with no step delay finishes in milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import itertools
import json
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .api import NAME_ALPHABET, Api
from .errors import ApiError
from .resources import DEPLOYMENTS, PODS, REPLICASETS
from .selectors import selector_from_object
from .store import Store, StoreEvent
from .timestamps import parse_time

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
POD_TEMPLATE_HASH = "pod-template-hash"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NOT_COPIED_TO_REPLICASETS = {
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    LAST_APPLIED,
    "deployment.kubernetes.io/revision-history",
}
_NOT_PULLED = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
NODE_NAME = "emulator-node"
HOST_IP = "10.0.0.10"

Key = tuple[str, str, str]
"""(kind, namespace, name)"""


def _prune_empty(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune_empty(item) for item in value]
    return value


def pod_template_hash(template: dict[str, Any]) -> str:
    """A stable name part for a pod template, blind to the hash label and to empty fields."""
    template = copy.deepcopy(template)
    ((template.get("metadata") or {}).get("labels") or {}).pop(POD_TEMPLATE_HASH, None)
    digest = hashlib.sha256(json.dumps(_prune_empty(template), sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:4], "big")
    return "".join(NAME_ALPHABET[ord(char) % len(NAME_ALPHABET)] for char in str(number))


def controller_uid(obj: dict[str, Any]) -> str | None:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return reference.get("uid")
    return None


def _owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def revision_of(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0") or 0)


def is_pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _resolve(value: Any, total: int, round_up: bool) -> int:
    """maxSurge / maxUnavailable: an int, or a percentage of the desired replicas."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value or 0)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    spec = deployment["spec"]
    if spec["strategy"]["type"] != "RollingUpdate":
        return 0, 0
    rolling, desired = spec["strategy"]["rollingUpdate"], spec["replicas"]
    surge = _resolve(rolling.get("maxSurge"), desired, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def _condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def _set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: str,
) -> None:
    """As the deployment controller's SetDeploymentCondition: same status and reason change nothing."""
    current = _condition(conditions, kind)
    if current and current["status"] == status and current["reason"] == reason:
        return
    transition = current["lastTransitionTime"] if current and current["status"] == status else now
    conditions[:] = [c for c in conditions if c.get("type") != kind]
    conditions.append(
        {
            "type": kind,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }
    )


class Controllers:
    """Runs on its own thread; `wait_idle` tells when every change so far has been worked through."""

    def __init__(self, store: Store, api: Api, step_delay: float = 0.0, clock: Callable[[], float] = time.time):
        self.store, self.api = store, api
        self.step_delay = step_delay
        """Seconds between two scaling steps of one Deployment; 0 rolls out as fast as pods get ready."""
        self.errors: list[str] = []
        """Tracebacks of reconciles that failed unexpectedly; a test can assert there are none."""
        self._clock = clock
        self._broken_images: dict[str, str] = {}
        self._queue: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._sequence = itertools.count()
        self._next_step_at: dict[tuple[str, str], float] = {}
        self._pod_ips = (f"10.244.{n // 250}.{n % 250 + 1}" for n in itertools.count(2))
        self._cursor = store.resource_version
        self._idle_through = 0
        self._state = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-emulator-controllers", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.store.wake_waiters()
        self._thread.join(timeout=5)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once the controllers have caught up with the store and have nothing due now."""
        deadline = time.monotonic() + timeout
        with self._state:
            while self._idle_through < self.store.resource_version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.wait(remaining)
            return True

    def break_image(self, image: str, reason: str = "ImagePullBackOff") -> None:
        """Pods started from now on with this image never get Ready (ImagePullBackOff, CrashLoopBackOff...)."""
        self._broken_images[image] = reason

    def heal_image(self, image: str) -> None:
        self._broken_images.pop(image, None)

    def heal_all_images(self) -> None:
        self._broken_images.clear()

    # --- the work loop --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._take_events()
            key = self._pop_due()
            if key is not None:
                self._reconcile(key)
                continue
            with self._state:
                self._idle_through = self._cursor
                self._state.notify_all()
            next_due = self._queue[0][0] - self._clock() if self._queue else 1.0
            self.store.wait_for_change(self._cursor, max(0.0, min(next_due, 1.0)), self._stopped.is_set)

    def _take_events(self) -> None:
        try:
            events = self.store.events_after(self._cursor)
        except ApiError:  # history compacted past us: look at everything again
            self._cursor = self.store.resource_version
            for resource in (DEPLOYMENTS, REPLICASETS, PODS):
                for obj in self.store.list(resource):
                    self._enqueue((resource.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
            return
        for event in events:
            self._cursor = event.resource_version
            for key in self._keys_for(event):
                self._enqueue(key)

    @staticmethod
    def _keys_for(event: StoreEvent) -> list[Key]:
        kind = event.resource.kind
        if kind not in ("Deployment", "ReplicaSet", "Pod"):
            return []
        metadata = event.obj["metadata"]
        namespace = metadata.get("namespace", "")
        keys: list[Key] = [(kind, namespace, metadata["name"])]
        owner_kind = {"ReplicaSet": "Deployment", "Pod": "ReplicaSet"}.get(kind)
        for version in (event.obj, event.previous or {"metadata": {}}):
            for reference in version["metadata"].get("ownerReferences") or []:
                if reference.get("controller") and reference.get("kind") == owner_kind:
                    keys.append((owner_kind, namespace, reference["name"]))
        return keys

    def _enqueue(self, key: Key, delay: float = 0.0) -> None:
        due = self._clock() + delay
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._queue, (due, next(self._sequence), key))

    def _pop_due(self) -> Key | None:
        while self._queue and self._queue[0][0] <= self._clock():
            due, _, key = heapq.heappop(self._queue)
            if self._due.get(key) == due:
                del self._due[key]
                return key
        return None

    def _reconcile(self, key: Key) -> None:
        kind, namespace, name = key
        reconcilers = {"Deployment": self._sync_deployment, "ReplicaSet": self._sync_replicaset, "Pod": self._start_pod}
        try:
            reconcilers[kind](namespace, name)
        except ApiError as error:
            if error.reason == "Conflict":  # someone wrote the object between our read and write: read again
                self._enqueue(key)
            elif error.code != 404:
                self._record_error(key)
        except Exception:  # a bug in the emulator: keep serving, but let tests see it
            self._record_error(key)

    def _record_error(self, key: Key) -> None:
        report = f"reconciling {key}:\n{traceback.format_exc()}"
        self.errors.append(report)
        print(report, file=sys.stderr)

    # --- kubelet --------------------------------------------------------------------------------

    def _start_pod(self, namespace: str, name: str) -> None:
        """Schedule and start a new pod: every container running and ready, unless its image is broken."""
        pod = self.store.get(PODS, namespace, name)
        if pod is None or (pod.get("status") or {}).get("startTime"):
            return
        now = self.api.now()
        statuses = [self._container_status(container, now) for container in pod["spec"]["containers"]]
        unready = [status["name"] for status in statuses if not status["ready"]]
        pulled = not any((s["state"].get("waiting") or {}).get("reason") in _NOT_PULLED for s in statuses)
        ready = {"status": "False" if unready else "True", "lastTransitionTime": now}
        if unready:
            ready.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(unready)}]")
        ip = next(self._pod_ips)
        pod["spec"]["nodeName"] = NODE_NAME
        pod["status"] = {
            "phase": "Running" if pulled else "Pending",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", **ready},
                {"type": "ContainersReady", **ready},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }
        self.store.replace(PODS, pod, expected_version=pod["metadata"]["resourceVersion"])

    def _container_status(self, container: dict[str, Any], now: str) -> dict[str, Any]:
        image = container["image"]
        status: dict[str, Any] = {
            "name": container["name"],
            "image": image,
            "imageID": "",
            "restartCount": 0,
            "lastState": {},
        }
        broken = self._broken_images.get(image)
        if broken is None:
            digest = hashlib.sha256(image.encode()).hexdigest()
            container_id = hashlib.sha256(f"{image}{now}{next(self._sequence)}".encode()).hexdigest()
            status.update(
                ready=True,
                started=True,
                state={"running": {"startedAt": now}},
                imageID=f"{image.split(':')[0]}@sha256:{digest}",
                containerID=f"containerd://{container_id}",
            )
        elif broken in _NOT_PULLED:
            message = f'Back-off pulling image "{image}"'
            status.update(ready=False, started=False, state={"waiting": {"reason": broken, "message": message}})
        else:
            status.update(
                ready=False,
                started=False,
                restartCount=1,
                state={
                    "waiting": {
                        "reason": broken,
                        "message": f"back-off restarting failed container {container['name']}",
                    }
                },
                lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}},
            )
        return status

    # --- ReplicaSet controller ------------------------------------------------------------------

    def _owned_pods(self, replicaset: dict[str, Any]) -> list[dict[str, Any]]:
        uid = replicaset["metadata"]["uid"]
        pods = self.store.list(PODS, replicaset["metadata"]["namespace"])
        return [pod for pod in pods if controller_uid(pod) == uid and not pod["metadata"].get("deletionTimestamp")]

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        replicaset = self.store.get(REPLICASETS, namespace, name)
        if replicaset is None:
            return
        pods = self._owned_pods(replicaset)
        wanted = replicaset["spec"].get("replicas", 0)
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                self.api.create(PODS, namespace, self._pod_for(replicaset))
        elif len(pods) > wanted:
            for pod in self._surplus(pods, len(pods) - wanted):
                self.api.delete(PODS, namespace, pod["metadata"]["name"])
        self._update_replicaset_status(replicaset)

    @staticmethod
    def _pod_for(replicaset: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(replicaset["spec"]["template"])
        metadata = {
            "generateName": f"{replicaset['metadata']['name']}-",
            "labels": template["metadata"].get("labels", {}),
            "ownerReferences": [_owner_reference(replicaset)],
        }
        if template["metadata"].get("annotations"):
            metadata["annotations"] = template["metadata"]["annotations"]
        return {"metadata": metadata, "spec": template["spec"]}

    @staticmethod
    def _surplus(pods: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        """Like the real controller, scale down unready pods first, then the youngest."""
        youngest_first = sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]), reverse=True)
        return sorted(youngest_first, key=is_pod_ready)[:count]

    def _update_replicaset_status(self, replicaset: dict[str, Any]) -> None:
        pods = self._owned_pods(replicaset)
        labels = selector_from_object({"matchLabels": replicaset["spec"]["template"]["metadata"].get("labels")})
        ready = sum(1 for pod in pods if is_pod_ready(pod))
        counts = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(1 for pod in pods if labels.matches(pod["metadata"].get("labels"))),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replicaset["metadata"].get("generation", 1),
        }
        # Zero counts are left out, as the API's omitempty fields are; replicas is always there.
        status = {k: v for k, v in counts.items() if v or k == "replicas"}
        if status != replicaset.get("status"):
            replicaset["status"] = status
            self.api.update(
                REPLICASETS,
                replicaset["metadata"]["namespace"],
                replicaset["metadata"]["name"],
                replicaset,
                subresource="status",
            )

    # --- deployment controller ------------------------------------------------------------------

    def _owned_replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        uid = deployment["metadata"]["uid"]
        return [rs for rs in self.store.list(REPLICASETS, deployment["metadata"]["namespace"]) if controller_uid(rs) == uid]

    def _sync_deployment(self, namespace: str, name: str) -> None:
        deployment = self.store.get(DEPLOYMENTS, namespace, name)
        if deployment is None:
            self._next_step_at.pop((namespace, name), None)
            return
        replicasets = self._owned_replicasets(deployment)
        template_hash = pod_template_hash(deployment["spec"]["template"])
        new_rs = next((rs for rs in replicasets if pod_template_hash(rs["spec"]["template"]) == template_hash), None)
        old_rss = [rs for rs in replicasets if rs is not new_rs]
        if deployment["spec"].get("paused"):
            self._sync_status(deployment, new_rs, created=False)
            return
        newest_old_revision = max((revision_of(rs) for rs in old_rss), default=0)
        created = new_rs is None
        if new_rs is None:
            new_rs = self._create_replicaset(deployment, template_hash, newest_old_revision + 1)
        else:
            new_rs = self._refresh_replicaset(deployment, new_rs, newest_old_revision)
        deployment = self._record_revision(deployment, revision_of(new_rs))
        self._roll(deployment, new_rs, old_rss)
        self._sync_status(deployment, new_rs, created=created)

    def _replicaset_annotations(
        self,
        deployment: dict[str, Any],
        existing: dict[str, str],
        revision: int,
    ) -> dict[str, str]:
        """The Deployment's annotations (change-cause among them) copied over, and the revision."""
        annotations = dict(existing)
        annotations.update({k: v for k, v in (deployment["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED_TO_REPLICASETS})
        surge, _ = surge_and_unavailable(deployment)
        desired = deployment["spec"]["replicas"]
        annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)})
        return annotations

    def _create_replicaset(self, deployment: dict[str, Any], template_hash: str, revision: int) -> dict[str, Any]:
        metadata = deployment["metadata"]
        template = copy.deepcopy(deployment["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = template_hash
        selector = copy.deepcopy(deployment["spec"]["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = template_hash
        return self.api.create(
            REPLICASETS,
            metadata["namespace"],
            {
                "metadata": {
                    "name": f"{metadata['name']}-{template_hash}",
                    "labels": copy.deepcopy(template["metadata"]["labels"]),
                    "annotations": self._replicaset_annotations(deployment, {}, revision),
                    "ownerReferences": [_owner_reference(deployment)],
                },
                "spec": {
                    "replicas": 0,
                    "minReadySeconds": deployment["spec"].get("minReadySeconds", 0),
                    "selector": selector,
                    "template": template,
                },
            },
        )

    def _refresh_replicaset(
        self,
        deployment: dict[str, Any],
        replicaset: dict[str, Any],
        newest_old_revision: int,
    ) -> dict[str, Any]:
        """An old template coming back (rollout undo) reuses its ReplicaSet under a new revision."""
        revision = max(revision_of(replicaset), newest_old_revision + 1)
        current = replicaset["metadata"].get("annotations") or {}
        annotations = self._replicaset_annotations(deployment, current, revision)
        if annotations == current:
            return replicaset
        replicaset["metadata"]["annotations"] = annotations
        return self.api.update(REPLICASETS, replicaset["metadata"]["namespace"], replicaset["metadata"]["name"], replicaset)

    def _record_revision(self, deployment: dict[str, Any], revision: int) -> dict[str, Any]:
        annotations = deployment["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) == str(revision):
            return deployment
        annotations[REVISION] = str(revision)
        metadata = deployment["metadata"]
        return self.api.update(DEPLOYMENTS, metadata["namespace"], metadata["name"], deployment)

    # --- scaling --------------------------------------------------------------------------------

    def _roll(self, deployment: dict[str, Any], new_rs: dict[str, Any], old_rss: list[dict[str, Any]]) -> None:
        """Take one scaling step, unless the step delay since the last one has not passed yet."""
        if deployment["spec"]["strategy"]["type"] == "Recreate":
            plan = self._recreate_step(deployment, new_rs, old_rss)
        else:
            plan = self._rolling_step(deployment, new_rs, old_rss)
        if not plan:
            return
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        wait = self._next_step_at.get(key, 0.0) - self._clock()
        if wait > 0:
            self._enqueue(("Deployment", *key), wait)
            return
        for replicaset, replicas in plan:
            self._scale(deployment, replicaset, replicas)
        if self.step_delay:
            self._next_step_at[key] = self._clock() + self.step_delay
            self._enqueue(("Deployment", *key), self.step_delay)

    @staticmethod
    def _rolling_step(
        deployment: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
    ) -> list[tuple[dict[str, Any], int]]:
        """reconcileNewReplicaSet, else reconcileOldReplicaSets, of the real rolling updater."""
        desired = deployment["spec"]["replicas"]
        surge, max_unavailable = surge_and_unavailable(deployment)
        every_rs = [new_rs, *old_rss]
        total = sum(rs["spec"]["replicas"] for rs in every_rs)
        new_replicas = new_rs["spec"]["replicas"]
        if new_replicas > desired:
            return [(new_rs, desired)]
        if new_replicas < desired and desired + surge - total > 0:
            return [(new_rs, new_replicas + min(desired + surge - total, desired - new_replicas))]
        if not any(rs["spec"]["replicas"] for rs in old_rss):
            return []
        min_available = desired - max_unavailable
        available = {id(rs): (rs.get("status") or {}).get("availableReplicas", 0) for rs in every_rs}
        new_unavailable = new_replicas - available[id(new_rs)]
        cleanup_budget = total - min_available - new_unavailable
        if cleanup_budget <= 0:
            return []
        oldest_first = sorted(old_rss, key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        target = {id(rs): rs["spec"]["replicas"] for rs in oldest_first}
        # Unhealthy old replicas go first: they cost no availability.
        for rs in oldest_first:
            cut = min(cleanup_budget, target[id(rs)] - available[id(rs)])
            if cut > 0:
                target[id(rs)] -= cut
                cleanup_budget -= cut
        budget = sum(available.values()) - min_available
        for rs in oldest_first:
            cut = min(target[id(rs)], max(budget, 0))
            target[id(rs)] -= cut
            budget -= cut
        return [(rs, target[id(rs)]) for rs in oldest_first if target[id(rs)] != rs["spec"]["replicas"]]

    @staticmethod
    def _recreate_step(
        deployment: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
    ) -> list[tuple[dict[str, Any], int]]:
        running_old = [rs for rs in old_rss if rs["spec"]["replicas"]]
        if running_old:
            return [(rs, 0) for rs in running_old]
        if any((rs.get("status") or {}).get("replicas") for rs in old_rss):
            return []  # old pods still going away
        desired = deployment["spec"]["replicas"]
        return [(new_rs, desired)] if new_rs["spec"]["replicas"] != desired else []

    def _scale(self, deployment: dict[str, Any], replicaset: dict[str, Any], replicas: int) -> None:
        surge, _ = surge_and_unavailable(deployment)
        desired = deployment["spec"]["replicas"]
        replicaset["spec"]["replicas"] = replicas
        replicaset["metadata"].setdefault("annotations", {}).update({DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)})
        metadata = replicaset["metadata"]
        self.api.update(REPLICASETS, metadata["namespace"], metadata["name"], replicaset)

    # --- status ---------------------------------------------------------------------------------

    def _sync_status(self, deployment: dict[str, Any], new_rs: dict[str, Any] | None, created: bool) -> None:
        replicasets = self._owned_replicasets(deployment)
        new_name = new_rs["metadata"]["name"] if new_rs else None
        statuses = [rs.get("status") or {} for rs in replicasets]
        new_status = next((rs.get("status") or {} for rs in replicasets if rs["metadata"]["name"] == new_name), {})
        available = sum(s.get("availableReplicas", 0) for s in statuses)
        counts = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": sum(s.get("replicas", 0) for s in statuses),
            "updatedReplicas": new_status.get("replicas", 0),
            "readyReplicas": sum(s.get("readyReplicas", 0) for s in statuses),
            "availableReplicas": available,
            "unavailableReplicas": max(sum(rs["spec"]["replicas"] for rs in replicasets) - available, 0),
        }
        old_status = deployment.get("status") or {}
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        now = self.api.now()
        desired = deployment["spec"]["replicas"]
        _, max_unavailable = surge_and_unavailable(deployment)
        if available >= desired - max_unavailable:
            _set_condition(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        progressing = _condition(conditions, "Progressing")
        timed_out = progressing is not None and progressing["reason"] == "ProgressDeadlineExceeded"
        complete = False
        if deployment["spec"].get("paused"):
            if not timed_out:
                _set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
        else:
            if progressing is not None and progressing["reason"] == "DeploymentPaused":
                _set_condition(conditions, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now)
            if created:
                _set_condition(
                    conditions,
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{new_name}"',
                    now,
                )
            complete = counts["updatedReplicas"] == counts["replicas"] == available == desired
            self._update_progress(deployment, old_status, counts, conditions, new_name, complete, now)
        status = {**{k: v for k, v in counts.items() if v}, "conditions": conditions}
        if status != old_status:
            deployment["status"] = status
            metadata = deployment["metadata"]
            self.api.update(DEPLOYMENTS, metadata["namespace"], metadata["name"], deployment, subresource="status")
        if complete:
            self._clean_up_history(deployment, [rs for rs in replicasets if rs["metadata"]["name"] != new_name])

    def _update_progress(
        self,
        deployment: dict[str, Any],
        old_status: dict[str, Any],
        counts: dict[str, int],
        conditions: list[dict[str, Any]],
        new_name: str | None,
        complete: bool,
        now: str,
    ) -> None:
        """The Progressing condition, as syncRolloutStatus sets it, and a wake-up for its deadline."""
        current = _condition(conditions, "Progressing")
        old_replicas = counts["replicas"] - counts["updatedReplicas"]
        was_old_replicas = old_status.get("replicas", 0) - old_status.get("updatedReplicas", 0)
        made_progress = (
            counts["updatedReplicas"] > old_status.get("updatedReplicas", 0)
            or old_replicas < was_old_replicas
            or counts["readyReplicas"] > old_status.get("readyReplicas", 0)
            or counts["availableReplicas"] > old_status.get("availableReplicas", 0)
        )
        if complete:
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{new_name}" has successfully progressed.',
                now,
            )
        elif made_progress:
            transition = current["lastTransitionTime"] if current and current["status"] == "True" else now
            conditions[:] = [c for c in conditions if c.get("type") != "Progressing"]
            conditions.append(
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": now,
                    "lastTransitionTime": transition,
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{new_name}" is progressing.',
                }
            )
        elif self._seconds_to_deadline(deployment, current) < 0:
            _set_condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new_name}" has timed out progressing.',
                now,
            )
        remaining = self._seconds_to_deadline(deployment, _condition(conditions, "Progressing"))
        if remaining != math.inf:
            metadata = deployment["metadata"]
            self._enqueue(("Deployment", metadata["namespace"], metadata["name"]), max(remaining, 0) + 0.01)

    def _seconds_to_deadline(self, deployment: dict[str, Any], progressing: dict[str, Any] | None) -> float:
        """Until spec.progressDeadlineSeconds passes with no progress; inf when no deadline runs."""
        deadline = deployment["spec"].get("progressDeadlineSeconds")
        if deadline is None or progressing is None:
            return math.inf
        if progressing["reason"] in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
            return math.inf
        return parse_time(progressing["lastUpdateTime"]) + deadline - self._clock()

    def _clean_up_history(self, deployment: dict[str, Any], old_rss: list[dict[str, Any]]) -> None:
        """Keep at most revisionHistoryLimit scaled-down old ReplicaSets, dropping the oldest revisions."""
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        idle = [rs for rs in old_rss if not rs["spec"]["replicas"] and not (rs.get("status") or {}).get("replicas")]
        idle.sort(key=revision_of)
        for replicaset in idle[: max(len(idle) - limit, 0)]:
            self.api.delete(REPLICASETS, replicaset["metadata"]["namespace"], replicaset["metadata"]["name"])
