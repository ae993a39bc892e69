"""The `kubernetes` check: the app's objects exist and are ready, and the cluster has room for the release.

- A Deployment is ready when its controller has seen the latest spec, every replica is updated
  and available, no old replica is left, and its Available condition is True.
- A Service is ready when it has endpoints: ready pods its selector matches (what the endpoints
  controller publishes; read from the pods, so it means the same on any cluster). A Service with
  no selector, or an ExternalName, has endpoints managed elsewhere and is only checked to exist.
- Capacity: the release's extra pods (canary: replicas x the highest canary weight, as the
  simulator scales; blue-green: a second full set; rolling: the Deployment's maxSurge) times the
  pod template's requests must fit in the namespace's ResourceQuotas (hard - used) and on the
  schedulable nodes (allocatable - the requests of the pods already on each node, node by node).
  When the API serves neither nodes nor quotas to this user (404 or 403: a namespaced account,
  or the test emulator, which serves no nodes), capacity is reported as not checked and does not
  fail the item: Brahma cannot tell, and says so.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity
from urllib3.exceptions import HTTPError as ConnectionProblem

from console.plan.model import PreflightSpec, RolloutPlan
from console.preflight.context import PreflightContext
from console.redact import redact
from console.targets.base import TargetError
from console.targets.kube_api import load_api_client

Json = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    """CPU in cores and memory in bytes, as a pod's requests add up."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)

    def describe(self) -> str:
        cpu = f"{int(self.cpu * 1000)}m" if self.cpu < 1 else f"{self.cpu.normalize():f}"
        return f"cpu {cpu}, memory {int(self.memory / 2**20)}Mi"


class Unreadable(Exception):
    """The API would not give a list (not served, or not allowed): the part it feeds is not checked."""


# --- judging API objects (pure: plain API JSON in, verdict and a line out) ------------------------


def _condition(obj: Json, kind: str) -> Json:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def deployment_readiness(deployment: Json) -> tuple[bool, str]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    desired = spec.get("replicas", 1)
    available, updated = status.get("availableReplicas", 0), status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    problems = []
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        problems.append("the controller has not seen the latest spec yet")
    if spec.get("paused"):
        problems.append("its rollout is paused")
    if updated < desired or total > desired:
        problems.append(f"a rollout is under way ({updated}/{desired} updated, {total} pods)")
    available_condition = _condition(deployment, "Available")
    if available < desired or available_condition.get("status") != "True":
        reason = available_condition.get("reason") or "no Available condition"
        problems.append(f"{available}/{desired} available ({reason})")
    if problems:
        return False, f"NOT READY: {'; '.join(problems)}"
    return True, f"ready, {available}/{desired} available"


def is_pod_ready(pod: Json) -> bool:
    return _condition(pod, "Ready").get("status") == "True" and not pod["metadata"].get("deletionTimestamp")


def service_endpoints(service: Json, pods: list[Json]) -> tuple[bool, str]:
    """Whether a Service has somewhere to send traffic; `pods` are those its selector matches."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return True, f"exists (ExternalName {spec.get('externalName')}: no endpoints to check)"
    if not spec.get("selector"):
        return True, "exists (no selector: its endpoints are managed outside Kubernetes, not checked)"
    ready = sum(1 for pod in pods if is_pod_ready(pod))
    if not ready:
        return False, f"NO ENDPOINTS: none of the {len(pods)} pods its selector matches is ready"
    return True, f"{ready} ready endpoint{'s' if ready != 1 else ''}"


def pod_requests(pod_spec: Json) -> Resources:
    """What one pod of this spec asks the scheduler for (its containers' requests added up)."""
    cpu = memory = Decimal(0)
    for container in pod_spec.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += parse_quantity(requests.get("cpu", 0))
        memory += parse_quantity(requests.get("memory", 0))
    return Resources(cpu, memory)


def _resolve_surge(value: Any, replicas: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * replicas / 100)
    return int(value)


def extra_replicas(strategy: str, weights: list[int], deployment: Json) -> int:
    """Pods the release runs beside the current ones at its peak."""
    spec = deployment.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if strategy == "blue-green":
        return replicas
    if strategy == "canary":
        return max((math.ceil(replicas * weight / 100) for weight in weights if 0 < weight < 100), default=0)
    rollout = spec.get("strategy") or {}
    if rollout.get("type") == "Recreate":
        return 0
    return _resolve_surge((rollout.get("rollingUpdate") or {}).get("maxSurge", "25%"), replicas)


def _fits(free: Decimal, need: Decimal) -> float:
    return math.inf if need <= 0 else math.floor(max(free, Decimal(0)) / need)


def room_on_nodes(nodes: list[Json], pods: list[Json], need: Resources) -> int:
    """How many pods asking `need` the schedulable nodes still take, counted node by node."""
    used: dict[str, list[Resources]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            used.setdefault(node, []).append(pod_requests(pod.get("spec") or {}))
    room = 0
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable") or _condition(node, "Ready").get("status") != "True":
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        on_node = used.get(node["metadata"]["name"], [])
        free_cpu = parse_quantity(allocatable.get("cpu", 0)) - sum((r.cpu for r in on_node), Decimal(0))
        free_memory = parse_quantity(allocatable.get("memory", 0)) - sum((r.memory for r in on_node), Decimal(0))
        free_pods = parse_quantity(allocatable.get("pods", 110)) - len(on_node)
        room += int(min(_fits(free_cpu, need.cpu), _fits(free_memory, need.memory), _fits(free_pods, Decimal(1))))
    return room


def room_in_quotas(quotas: list[Json], need: Resources) -> tuple[int | None, str]:
    """How many pods asking `need` the namespace's quotas still allow (None: no quota), and the tightest."""
    room: float = math.inf
    tightest = ""
    for quota in quotas:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        for keys, asked in ((("requests.cpu", "cpu"), need.cpu), (("requests.memory", "memory"), need.memory), (("pods",), Decimal(1))):
            for key in keys:
                if key in hard:
                    fits = _fits(parse_quantity(hard[key]) - parse_quantity(used.get(key, 0)), asked)
                    if fits < room:
                        room, tightest = fits, f"{quota['metadata']['name']} ({key})"
    if room == math.inf:
        return None, ""
    return int(room), tightest


# --- reading the cluster ------------------------------------------------------------------------


class ClusterReader:
    """Blocking reads returning the API's own JSON (camelCase, as the pure judges above take it)."""

    def __init__(self, api: client.ApiClient, namespace: str, timeout: float):
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.namespace, self.timeout = namespace, timeout

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
        response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        return json.loads(response.data)

    def get(self, kind: str, name: str) -> Json | None:
        """The object, or None when it does not exist."""
        read = self.apps.read_namespaced_deployment if kind == "deployment" else self.core.read_namespaced_service
        try:
            return self._call(read, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def pods(self, selector: dict[str, str]) -> list[Json]:
        label_selector = ",".join(f"{key}={value}" for key, value in selector.items())
        return self._call(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector)["items"]

    def listing(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Json]:
        """A list the user may not be allowed or the server may not serve: Unreadable then."""
        try:
            return self._call(method, *args, **kwargs)["items"]
        except ApiException as error:
            if error.status in (403, 404):
                raise Unreadable(f"HTTP {error.status}") from None
            raise

    def nodes_and_their_pods(self) -> tuple[list[Json], list[Json]]:
        nodes = self.listing(self.core.list_node)
        running = "status.phase!=Succeeded,status.phase!=Failed"
        return nodes, self.listing(self.core.list_pod_for_all_namespaces, field_selector=running)

    def quotas(self) -> list[Json]:
        return self.listing(self.core.list_namespaced_resource_quota, self.namespace)


def plan_objects(item: PreflightSpec, plan: RolloutPlan) -> list[tuple[str, str]]:
    """(kind, name) of the item's objects, or of the plan's Deployment and Service."""
    if item.objects is not None:
        return [(kind, name) for kind, name in (written.split("/", 1) for written in item.objects)]
    target = plan.target
    objects = [("deployment", target.deployment or plan.app), ("service", target.service or plan.app)]
    if target.preview_service:
        objects.append(("service", target.preview_service))
    return objects


def capacity_line(reader: ClusterReader, plan: RolloutPlan, deployment: Json) -> tuple[bool, str]:
    extra = extra_replicas(plan.strategy, [stage.weight for stage in plan.stages], deployment)
    need = pod_requests(deployment["spec"]["template"].get("spec") or {})
    wanted = f"the {plan.strategy} release adds up to {extra} pod{'s' if extra != 1 else ''} of {need.describe()}"
    if extra == 0:
        return True, f"capacity: {wanted}: nothing to fit"
    rooms, notes = [], []
    try:
        room, tightest = room_in_quotas(reader.quotas(), need)
        if room is not None:
            rooms.append(room)
            notes.append(f"quota {tightest} takes {room} more")
    except Unreadable as why:
        notes.append(f"quotas not readable ({why})")
    try:
        room = room_on_nodes(*reader.nodes_and_their_pods(), need)
        rooms.append(room)
        notes.append(f"nodes take {room} more")
    except Unreadable as why:
        notes.append(f"nodes not readable ({why})")
    if not rooms:
        return True, f"capacity: {wanted}; NOT CHECKED: {', '.join(notes)}"
    enough = min(rooms) >= extra
    return enough, f"capacity: {wanted}; {', '.join(notes)}: {'enough' if enough else 'NOT ENOUGH'}"


def inspect_cluster(item: PreflightSpec, context: PreflightContext) -> tuple[bool, list[str]]:
    """Every object's line and the capacity line; blocking, run in a thread."""
    plan = context.plan
    api = load_api_client(context.kube_context, plan_context=plan.target.context)
    reader = ClusterReader(api, plan.target.namespace, item.timeout)
    app_deployment = plan.target.deployment or plan.app
    host = api.configuration.host
    passed, lines = True, [f"namespace {plan.target.namespace} on {host}"]
    try:
        for kind, name in plan_objects(item, plan):
            obj = reader.get(kind, name)
            if obj is None:
                ready, line = False, "NOT FOUND"
            elif kind == "deployment":
                ready, line = deployment_readiness(obj)
            else:
                selector = (obj.get("spec") or {}).get("selector")
                ready, line = service_endpoints(obj, reader.pods(selector) if selector else [])
            passed = passed and ready
            lines.append(f"{kind}/{name}: {line}")
            if kind == "deployment" and name == app_deployment and obj is not None:
                fits, capacity = capacity_line(reader, plan, obj)
                passed = passed and fits
                lines.append(capacity)
    except ConnectionProblem as error:
        # urllib3 wraps the cause in a long text; its last clause says what happened ("Connection refused").
        cause = str(getattr(error, "reason", None) or error).rsplit(": ", 1)[-1].rstrip(")\"'")
        return False, [f"cannot reach the Kubernetes API at {host}: {cause}"]
    finally:
        api.close()
    return passed, lines


async def check_objects(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    try:
        passed, lines = await asyncio.to_thread(inspect_cluster, item, context)
    except TargetError as error:  # no kubeconfig, or not the context asked for
        return False, f"no Kubernetes configuration: {error}"
    except ApiException as error:
        return False, f"the Kubernetes API refused: HTTP {error.status} {error.reason}"
    except Exception as error:  # the boundary: whatever else the client raises becomes the check's output
        return False, redact(f"the Kubernetes check failed: {type(error).__name__}: {str(error)[:300]}")
    return passed, "\n".join(lines)
