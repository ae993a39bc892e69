"""Defaulting and validation per kind: the fields a real API server fills in, and its 422 answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import invalid
from .resources import ResourceType
from .selectors import selector_from_object

Cause = dict[str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    r"is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_1123_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_1035_RULE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_LABEL_NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def _go(value: Any) -> str:
    """A value as Go's %#v prints it in validation messages, near enough."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, (str, dict, list)) else str(value)


def required(field: str, detail: str = "") -> Cause:
    return {
        "reason": "FieldValueRequired",
        "message": "Required value" + (f": {detail}" if detail else ""),
        "field": field,
    }


def bad_value(field: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {_go(value)}: {detail}", "field": field}


def unsupported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    listed = ", ".join(f'"{option}"' for option in supported)
    return {
        "reason": "FieldValueNotSupported",
        "message": f"Unsupported value: {_go(value)}: supported values: {listed}",
        "field": field,
    }


def duplicate(field: str, value: Any) -> Cause:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {_go(value)}", "field": field}


def forbidden(field: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": field}


# --- defaults -----------------------------------------------------------------------------------


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        image = container.get("image") or ""
        untagged = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
        container.setdefault("imagePullPolicy", "Always" if untagged or image.endswith(":latest") else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _default_template(spec: dict[str, Any]) -> None:
    _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def _default_deployment(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    _default_template(spec)


def _default_replicaset(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _default_template(spec)


def _default_pod(obj: dict[str, Any]) -> None:
    _default_pod_spec(obj.setdefault("spec", {}))
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_namespace(obj: dict[str, Any]) -> None:
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_httproute(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    for parent in spec.get("parentRefs") or []:
        parent.setdefault("group", "gateway.networking.k8s.io")
        parent.setdefault("kind", "Gateway")
    rules = spec.setdefault("rules", [{}])
    for rule in rules:
        rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
        for backend in rule.get("backendRefs") or []:
            backend.setdefault("group", "")
            backend.setdefault("kind", "Service")
            backend.setdefault("weight", 1)


def default_service(obj: dict[str, Any], allocate_ip: Callable[[], str], allocate_node_port: Callable[[], int]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            port.setdefault("nodePort", allocate_node_port())
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = allocate_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _default_persistentvolumeclaim(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")  # no provisioner here binds it to a volume


DEFAULTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replicaset,
    "Pod": _default_pod,
    "Namespace": _default_namespace,
    "HTTPRoute": _default_httproute,
    "PersistentVolumeClaim": _default_persistentvolumeclaim,
}


# --- decoding -----------------------------------------------------------------------------------

MICRO_TIME_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
"""metav1.RFC3339Micro, the Go layout MicroTime fields are read and written with."""
MICRO_TIME_FIELDS = {"Lease": (("spec", "acquireTime"), ("spec", "renewTime"))}
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_MICROSECONDS = re.compile(r"\.\d{6}")
_ZONE = re.compile(r"Z|[+-]\d{2}:\d{2}")


class Undecodable(ValueError):
    """A field the API server's JSON decoder cannot read into its Go type."""


def _json_type(value: Any) -> str:
    return {bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "string")


def _micro_time(value: Any) -> str:
    """A MicroTime as the API server reads it (exactly six fractional digits, any offset) and writes it back (UTC)."""
    if not isinstance(value, str):
        raise Undecodable(f"json: cannot unmarshal {_json_type(value)} into Go value of type string")
    prefix = f"parsing time {json.dumps(value)} as {json.dumps(MICRO_TIME_LAYOUT)}"
    position = 0
    for pattern, element in ((_DATE_TIME, "2006"), (_MICROSECONDS, ".000000"), (_ZONE, "Z07:00")):
        match = pattern.match(value, position)
        if match is None:
            raise Undecodable(f"{prefix}: cannot parse {json.dumps(value[position:])} as {json.dumps(element)}")
        position = match.end()
    if position != len(value):
        raise Undecodable(f"parsing time {json.dumps(value)}: extra text: {json.dumps(value[position:])}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise Undecodable(f"parsing time {json.dumps(value)}: {error}") from None
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_typed_fields(resource: ResourceType, obj: dict[str, Any]) -> None:
    """Read typed fields as the API server's decoder does, storing them in its canonical form.

    Raises Undecodable for a value the real decoder refuses, which it answers before any validation.
    """
    for *parents, field in MICRO_TIME_FIELDS.get(resource.kind, ()):
        holder: Any = obj
        for parent in parents:
            holder = holder.get(parent) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and holder.get(field) is not None:
            holder[field] = _micro_time(holder[field])


# --- validation ---------------------------------------------------------------------------------


def _validate_name(resource: ResourceType, name: str) -> list[Cause]:
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    if resource.kind == "Service":
        pattern, rule, limit = _LABEL_1035, _LABEL_1035_RULE, 63
    elif resource.kind == "Namespace":
        pattern, rule, limit = _LABEL_1123, _LABEL_1123_RULE, 63
    else:
        pattern, rule, limit = _SUBDOMAIN, _SUBDOMAIN_RULE, 253
    if len(name) > limit:
        return [bad_value("metadata.name", name, f"must be no more than {limit} characters")]
    return [] if pattern.match(name) else [bad_value("metadata.name", name, rule)]


def _validate_labels(labels: Any, field: str) -> list[Cause]:
    causes = []
    for key, value in (labels or {}).items():
        name = key.rsplit("/", 1)[-1]
        if len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append(bad_value(field, key, _LABEL_NAME_RULE))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(bad_value(field, value, _LABEL_VALUE_RULE))
    return causes


def _validate_metadata(resource: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    metadata = obj["metadata"]
    return _validate_name(resource, metadata.get("name", "")) + _validate_labels(metadata.get("labels"), "metadata.labels")


def _validate_port_number(field: str, port: Any) -> list[Cause]:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return [bad_value(field, port, "must be between 1 and 65535, inclusive")]
    return []


def _validate_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    containers = spec.get("containers") or []
    if not containers:
        return [required(f"{path}.containers")]
    causes, seen = [], set()
    for index, container in enumerate(containers):
        field = f"{path}.containers[{index}]"
        name = container.get("name")
        if not name:
            causes.append(required(f"{field}.name"))
        elif not _LABEL_1123.match(name):
            causes.append(bad_value(f"{field}.name", name, _LABEL_1123_RULE))
        elif name in seen:
            causes.append(duplicate(f"{field}.name", name))
        seen.add(name)
        if not container.get("image"):
            causes.append(required(f"{field}.image"))
        for port_index, port in enumerate(container.get("ports") or []):
            causes += _validate_port_number(f"{field}.ports[{port_index}].containerPort", port.get("containerPort"))
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(unsupported(f"{path}.restartPolicy", policy, ("Always", "OnFailure", "Never")))
    return causes


def _validate_non_negative(spec: dict[str, Any], field: str, path: str = "spec") -> list[Cause]:
    value = spec.get(field)
    if value is not None and (not isinstance(value, int) or value < 0):
        return [bad_value(f"{path}.{field}", value, "must be greater than or equal to 0")]
    return []


def _validate_selected_template(resource: ResourceType, spec: dict[str, Any]) -> list[Cause]:
    """The selector / template pair shared by Deployments and ReplicaSets."""
    causes = _validate_non_negative(spec, "replicas") + _validate_non_negative(spec, "minReadySeconds")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes += _validate_labels(labels, "spec.template.metadata.labels")
    selector = spec.get("selector")
    if not selector:
        causes.append(required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(bad_value("spec.selector", selector, f"empty selector is invalid for {resource.singular}"))
    elif not selector_from_object(selector).matches(labels):
        causes.append(bad_value("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    pod_spec = template.get("spec") or {}
    causes += _validate_pod_spec(pod_spec, "spec.template.spec")
    if pod_spec.get("restartPolicy", "Always") != "Always":
        causes.append(unsupported("spec.template.spec.restartPolicy", pod_spec["restartPolicy"], ("Always",)))
    return causes


def _percent_or_int(value: Any) -> tuple[int, bool] | None:
    """(number, is_percent), or None when the value is neither an int nor an "N%" string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, False
    if isinstance(value, str) and re.fullmatch(r"\d+%", value):
        return int(value[:-1]), True
    return None


def _validate_strategy(strategy: dict[str, Any]) -> list[Cause]:
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "Recreate"):
        return [unsupported("spec.strategy.type", kind, ("Recreate", "RollingUpdate"))]
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        return [forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")] if rolling else []
    causes, numbers = [], {}
    for field in ("maxSurge", "maxUnavailable"):
        value = (rolling or {}).get(field)
        parsed = _percent_or_int(value)
        path = f"spec.strategy.rollingUpdate.{field}"
        if parsed is None or parsed[0] < 0:
            causes.append(bad_value(path, value, "must be greater than or equal to 0"))
        elif field == "maxUnavailable" and parsed[1] and parsed[0] > 100:
            causes.append(bad_value(path, value, "must not be greater than 100%"))
        else:
            numbers[field] = parsed[0]
    if numbers.get("maxSurge") == 0 and numbers.get("maxUnavailable") == 0:
        causes.append(
            bad_value(
                "spec.strategy.rollingUpdate.maxUnavailable",
                rolling["maxUnavailable"],
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return causes


def _validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _validate_selected_template(resource, spec) + _validate_strategy(spec.get("strategy") or {})
    causes += _validate_non_negative(spec, "revisionHistoryLimit")
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline <= spec.get("minReadySeconds", 0)):
        causes.append(bad_value("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return causes + _immutable_selector(obj, old)


def _immutable_selector(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    if old is not None and (obj.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
        return [bad_value("spec.selector", obj["spec"].get("selector"), "field is immutable")]
    return []


def _validate_replicaset(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    return _validate_selected_template(resource, obj.get("spec") or {}) + _immutable_selector(obj, old)


def _validate_pod(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    return _validate_pod_spec(obj.get("spec") or {}, "spec")


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _validate_service(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    spec = obj.get("spec") or {}
    kind = spec.get("type")
    if kind not in _SERVICE_TYPES:
        return [unsupported("spec.type", kind, _SERVICE_TYPES)]
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    names = set()
    for index, port in enumerate(ports):
        field = f"spec.ports[{index}]"
        causes += _validate_port_number(f"{field}.port", port.get("port"))
        if len(ports) > 1 and not port.get("name"):
            causes.append(required(f"{field}.name"))
        elif port.get("name") in names:
            causes.append(duplicate(f"{field}.name", port["name"]))
        names.add(port.get("name"))
        if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
            causes.append(unsupported(f"{field}.protocol", port.get("protocol"), ("SCTP", "TCP", "UDP")))
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if old_ip and spec.get("clusterIP") != old_ip:
        causes.append(bad_value("spec.clusterIP", spec.get("clusterIP"), "field is immutable"))
    return causes + _validate_labels(spec.get("selector"), "spec.selector")


def _validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    causes = []
    for section in ("data", "binaryData"):
        for key in obj.get(section) or {}:
            if not _CONFIG_KEY.match(key):
                causes.append(
                    bad_value(
                        f"{section}[{key}]",
                        key,
                        "a valid config key must consist of alphanumeric "
                        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
    return causes


def _validate_lease(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        causes.append(bad_value("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        causes.append(bad_value("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return causes


def _validate_httproute(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    causes = []
    for rule_index, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        for ref_index, backend in enumerate(rule.get("backendRefs") or []):
            field = f"spec.rules[{rule_index}].backendRefs[{ref_index}]"
            weight = backend.get("weight")
            if not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
                bound = "greater than or equal to 0" if isinstance(weight, int) and weight < 0 else "less than or equal to 1000000"
                causes.append(bad_value(f"{field}.weight", weight, f"{field}.weight in body should be {bound}"))
            if "port" in backend:
                causes += _validate_port_number(f"{field}.port", backend["port"])
    return causes


_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _validate_persistentvolumeclaim(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = []
    modes = spec.get("accessModes") or []
    if not modes:
        causes.append(required("spec.accessModes", "at least 1 access mode is required"))
    causes += [unsupported("spec.accessModes", mode, _ACCESS_MODES) for mode in modes if mode not in _ACCESS_MODES]
    if "storage" not in ((spec.get("resources") or {}).get("requests") or {}):
        causes.append(required("spec.resources[storage]", ""))
    if old is not None and {k: v for k, v in spec.items() if k != "resources"} != {k: v for k, v in (old.get("spec") or {}).items() if k != "resources"}:
        causes.append(forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
    return causes


def _validate_role(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    causes = []
    for index, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            causes.append(required(f"rules[{index}].verbs", "verbs must contain at least one value"))
        if not rule.get("nonResourceURLs") and not rule.get("resources"):
            causes.append(required(f"rules[{index}].resources", "resource rules must supply at least one resource"))
        if rule.get("nonResourceURLs"):
            causes.append(bad_value(f"rules[{index}].nonResourceURLs", rule["nonResourceURLs"], "namespaced rules cannot apply to non-resource URLs"))
    return causes


def _validate_rolebinding(obj: dict[str, Any], old: dict[str, Any] | None, resource: ResourceType) -> list[Cause]:
    reference = obj.get("roleRef") or {}
    causes = []
    if reference.get("kind") not in ("Role", "ClusterRole"):
        causes.append(unsupported("roleRef.kind", reference.get("kind", ""), ("Role", "ClusterRole")))
    if not reference.get("name"):
        causes.append(required("roleRef.name", ""))
    if old is not None and reference != old.get("roleRef"):
        causes.append(bad_value("roleRef", reference, "cannot change roleRef"))
    for index, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") not in ("ServiceAccount", "User", "Group"):
            causes.append(unsupported(f"subjects[{index}].kind", subject.get("kind", ""), ("ServiceAccount", "User", "Group")))
        if not subject.get("name"):
            causes.append(required(f"subjects[{index}].name", ""))
    return causes


_VALIDATORS = {
    "Deployment": _validate_deployment,
    "ReplicaSet": _validate_replicaset,
    "Pod": _validate_pod,
    "Service": _validate_service,
    "ConfigMap": _validate_configmap,
    "Lease": _validate_lease,
    "HTTPRoute": _validate_httproute,
    "PersistentVolumeClaim": _validate_persistentvolumeclaim,
    "Role": _validate_role,
    "RoleBinding": _validate_rolebinding,
}


def validate(resource: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Raise 422 Invalid with every cause, as the API server does."""
    causes = _validate_metadata(resource, obj)
    kind_validator = _VALIDATORS.get(resource.kind)
    if kind_validator is not None:
        causes += kind_validator(obj, old, resource)
    if causes:
        raise invalid(resource, obj["metadata"].get("name", ""), causes)
