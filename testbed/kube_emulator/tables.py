"""Server-side printing: the `Table` kubectl asks for when it prints `kubectl get` columns."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .resources import ResourceType
from .selectors import selector_from_object
from .timestamps import parse_time

Row = Callable[[dict[str, Any], float], list[Any]]


def _seconds(value: str | None) -> float | None:
    return parse_time(value) if value else None


def human_duration(seconds: float) -> str:
    """Kubernetes' duration.HumanDuration, as the AGE column shows it."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if days % 365 and years < 8 else f"{years}y"


def _age(obj: dict[str, Any], now: float, field: str | None = None) -> str:
    stamp = _seconds(obj.get(field) if field else obj["metadata"].get("creationTimestamp"))
    return "<unknown>" if stamp is None else human_duration(now - stamp)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []


def _workload_wide(obj: dict[str, Any]) -> list[Any]:
    containers = _containers(obj)
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        str(selector_from_object(obj["spec"].get("selector"))),
    ]


def _deployment(obj: dict[str, Any], now: float) -> list[Any]:
    status = obj.get("status") or {}
    ready = f"{status.get('readyReplicas', 0)}/{obj['spec'].get('replicas', 0)}"
    return [
        obj["metadata"]["name"],
        ready,
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        *_workload_wide(obj),
    ]


def _replicaset(obj: dict[str, Any], now: float) -> list[Any]:
    status = obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        obj["spec"].get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        *_workload_wide(obj),
    ]


def _pod(obj: dict[str, Any], now: float) -> list[Any]:
    status = obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase", "Unknown")
    restarts, last_restart = 0, None
    for container in statuses:
        restarts += container.get("restartCount", 0)
        state = container.get("state") or {}
        for detail in (state.get("waiting"), state.get("terminated")):
            if detail and detail.get("reason"):
                reason = detail["reason"]
        finished = _seconds(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None:
            last_restart = max(last_restart or finished, finished)
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text += f" ({human_duration(now - last_restart)} ago)"
    containers = (obj.get("spec") or {}).get("containers") or []
    ready = f"{sum(1 for c in statuses if c.get('ready'))}/{len(containers)}"
    return [
        obj["metadata"]["name"],
        ready,
        reason,
        restarts_text,
        _age(obj, now),
        status.get("podIP", "<none>"),
        obj["spec"].get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


def _service(obj: dict[str, Any], now: float) -> list[Any]:
    spec = obj.get("spec") or {}
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort") else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
    if not external:
        external = "<pending>" if spec.get("type") == "LoadBalancer" else spec.get("externalName", "<none>")
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        obj["metadata"]["name"],
        spec.get("type"),
        spec.get("clusterIP", "<none>"),
        external,
        ports or "<none>",
        _age(obj, now),
        selector,
    ]


def _event(obj: dict[str, Any], now: float) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    seen = "lastTimestamp" if obj.get("lastTimestamp") else None
    return [
        _age(obj, now, seen),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _column(name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": description or name, "priority": priority}


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created.")
_WIDE = [_column("Containers", priority=1), _column("Images", priority=1), _column("Selector", priority=1)]

_PRINTERS: dict[str, tuple[list[dict[str, Any]], Row]] = {
    "Deployment": (
        [_NAME, _column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer"), _AGE, *_WIDE],
        _deployment,
    ),
    "ReplicaSet": (
        [
            _NAME,
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _AGE,
            *_WIDE,
        ],
        _replicaset,
    ),
    "Pod": (
        [
            _NAME,
            _column("Ready"),
            _column("Status"),
            _column("Restarts"),
            _AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod,
    ),
    "Service": (
        [
            _NAME,
            _column("Type"),
            _column("Cluster-IP"),
            _column("External-IP"),
            _column("Port(s)"),
            _AGE,
            _column("Selector", priority=1),
        ],
        _service,
    ),
    "ConfigMap": (
        [_NAME, _column("Data", "integer"), _AGE],
        lambda obj, now: [
            obj["metadata"]["name"],
            len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
            _age(obj, now),
        ],
    ),
    "Namespace": (
        [_NAME, _column("Status"), _AGE],
        lambda obj, now: [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", ""), _age(obj, now)],
    ),
    "ServiceAccount": (
        [_NAME, _column("Secrets", "integer"), _AGE],
        lambda obj, now: [obj["metadata"]["name"], len(obj.get("secrets") or []), _age(obj, now)],
    ),
    "PersistentVolumeClaim": (
        [_NAME, _column("Status"), _column("Volume"), _column("Capacity"), _column("Access Modes"), _column("StorageClass"), _AGE],
        lambda obj, now: [
            obj["metadata"]["name"],
            (obj.get("status") or {}).get("phase", ""),
            (obj.get("spec") or {}).get("volumeName", ""),
            ((obj.get("status") or {}).get("capacity") or {}).get("storage", ""),
            ",".join(
                {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}.get(mode, mode)
                for mode in (obj.get("spec") or {}).get("accessModes") or []
            ),
            (obj.get("spec") or {}).get("storageClassName", ""),
            _age(obj, now),
        ],
    ),
    "Role": (
        [_NAME, _column("Created At", fmt="date")],
        lambda obj, now: [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")],
    ),
    "RoleBinding": (
        [_NAME, _column("Role"), _AGE],
        lambda obj, now: [
            obj["metadata"]["name"],
            f"{(obj.get('roleRef') or {}).get('kind', '')}/{(obj.get('roleRef') or {}).get('name', '')}",
            _age(obj, now),
        ],
    ),
    "Lease": (
        [_NAME, _column("Holder"), _AGE],
        lambda obj, now: [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity", ""), _age(obj, now)],
    ),
    "HTTPRoute": (
        [_NAME, _column("Hostnames"), _AGE],
        lambda obj, now: [
            obj["metadata"]["name"],
            ",".join((obj.get("spec") or {}).get("hostnames") or []),
            _age(obj, now),
        ],
    ),
    "Event": (
        [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Message")],
        _event,
    ),
}


def table(
    resource: ResourceType,
    objects: list[dict[str, Any]],
    resource_version: str | None,
    include_object: str,
    api_version: str,
    now: float | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io Table; each row carries the object's metadata, the object, or nothing (`includeObject`)."""
    columns, row_of = _PRINTERS[resource.kind]
    now = time.time() if now is None else now
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_of(obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj["metadata"]}
        rows.append(row)
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
