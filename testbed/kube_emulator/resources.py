"""The resources the emulator serves, and the discovery and OpenAPI documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

READ_WRITE_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
_META_FIELD_LABELS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    group: str
    """API group; "" for the core group."""
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    """"status" and/or "scale"."""
    builtin: bool = True
    """False for kinds a real cluster serves from a CustomResourceDefinition (no strategic merge patch)."""
    tracks_generation: bool = False
    """metadata.generation counts changes to everything but metadata and status."""
    field_labels: tuple[str, ...] = ()
    """fieldSelector keys beyond metadata.name and metadata.namespace."""
    returns_deleted_object: bool = False
    """DELETE answers with the object (pods, services, custom resources) rather than a success Status."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_plural(self) -> str:
        """How errors name the resource: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """How validation errors name the kind: `Deployment.apps`, `Service`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def api_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def supports_field(self, label: str) -> bool:
        return label in _META_FIELD_LABELS or label in self.field_labels


NAMESPACES = ResourceType(
    "",
    "v1",
    "Namespace",
    "namespaces",
    namespaced=False,
    short_names=("ns",),
    subresources=("status",),
    field_labels=("status.phase",),
)
PODS = ResourceType(
    "",
    "v1",
    "Pod",
    "pods",
    short_names=("po",),
    categories=("all",),
    subresources=("status",),
    returns_deleted_object=True,
    field_labels=(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
)
SERVICES = ResourceType(
    "",
    "v1",
    "Service",
    "services",
    short_names=("svc",),
    categories=("all",),
    subresources=("status",),
    returns_deleted_object=True,
)
CONFIGMAPS = ResourceType("", "v1", "ConfigMap", "configmaps", short_names=("cm",))
EVENTS = ResourceType(
    "",
    "v1",
    "Event",
    "events",
    short_names=("ev",),
    field_labels=(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ),
)
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    short_names=("deploy",),
    categories=("all",),
    subresources=("status", "scale"),
    tracks_generation=True,
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    short_names=("rs",),
    categories=("all",),
    subresources=("status", "scale"),
    tracks_generation=True,
    field_labels=("status.replicas",),
)
LEASES = ResourceType("coordination.k8s.io", "v1", "Lease", "leases")
SERVICEACCOUNTS = ResourceType("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",))
PERSISTENTVOLUMECLAIMS = ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",))
ROLES = ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles")
ROLEBINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings")
HTTPROUTES = ResourceType(
    "gateway.networking.k8s.io",
    "v1",
    "HTTPRoute",
    "httproutes",
    categories=("gateway-api",),
    subresources=("status",),
    builtin=False,
    tracks_generation=True,
    returns_deleted_object=True,
)

ALL_RESOURCES = (
    NAMESPACES,
    PODS,
    SERVICES,
    CONFIGMAPS,
    EVENTS,
    SERVICEACCOUNTS,
    PERSISTENTVOLUMECLAIMS,
    DEPLOYMENTS,
    REPLICASETS,
    LEASES,
    ROLES,
    ROLEBINDINGS,
    HTTPROUTES,
)
_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL_RESOURCES}
_BY_NAME = {name: r for r in ALL_RESOURCES for name in (r.plural, r.singular, r.kind, *r.short_names)}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def resource_named(name: str) -> ResourceType:
    """A resource by plural, singular, kind or short name, as tests like to write it."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"the emulator serves no resource named {name!r}") from None


def group_versions() -> dict[str, list[ResourceType]]:
    """Resources by group/version, in registration order."""
    grouped: dict[str, list[ResourceType]] = {}
    for resource in ALL_RESOURCES:
        grouped.setdefault(resource.group_version, []).append(resource)
    return grouped


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _api_group(group: str, version: str) -> dict[str, Any]:
    group_version = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [group_version], "preferredVersion": group_version}


def api_group(group: str) -> dict[str, Any] | None:
    versions = [r.version for r in ALL_RESOURCES if r.group == group]
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions[0])}


def api_group_list() -> dict[str, Any]:
    groups = [_api_group(*group_version.split("/")) for group_version in group_versions() if "/" in group_version]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group_version: str) -> dict[str, Any] | None:
    resources = group_versions().get(group_version)
    if resources is None:
        return None
    entries: list[dict[str, Any]] = []
    for resource in resources:
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(READ_WRITE_VERBS),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        entries.append(entry)
        for subresource in resource.subresources:
            sub: dict[str, Any] = {
                "name": f"{resource.plural}/{subresource}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": list(SUBRESOURCE_VERBS),
            }
            if subresource == "scale":
                sub.update(group="autoscaling", version="v1", kind="Scale")
            entries.append(sub)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


def _openapi_path_key(group_version: str) -> str:
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


def openapi_v3_root() -> dict[str, Any]:
    return {"paths": {_openapi_path_key(gv): {"serverRelativeURL": f"/openapi/v3/{_openapi_path_key(gv)}?hash=emulator"} for gv in group_versions()}}


_PATCH_PARAMETERS = [
    {"name": name, "in": "query", "schema": {"type": kind}}
    for name, kind in (
        ("dryRun", "string"),
        ("fieldManager", "string"),
        ("fieldValidation", "string"),
        ("force", "boolean"),
    )
]


def openapi_v3_document(path_key: str) -> dict[str, Any] | None:
    """Just enough OpenAPI v3 for kubectl: a PATCH per kind that lists `fieldValidation`.

    kubectl then leaves field validation to the server instead of downloading the protobuf
    OpenAPI v2 document to validate on its side. The patch bodies offered leave out strategic
    merge patch, so kubectl computes those patches from its compiled-in types, not from schemas
    this document does not carry.
    """
    group_version = next((gv for gv in group_versions() if _openapi_path_key(gv) == path_key), None)
    if group_version is None:
        return None
    paths: dict[str, Any] = {}
    for resource in group_versions()[group_version]:
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        item_path = f"{resource.api_prefix}{scope}/{resource.plural}/{{name}}"
        paths[f"{resource.api_prefix}{scope}/{resource.plural}"] = {
            "get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk},
            "post": {"x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk},
        }
        paths[item_path] = {
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk},
            "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk},
            "patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PATCH_PARAMETERS,
                "requestBody": {
                    "content": {
                        content_type: {"schema": {"type": "object"}}
                        for content_type in (
                            "application/json-patch+json",
                            "application/merge-patch+json",
                            "application/apply-patch+yaml",
                        )
                    }
                },
                "responses": {"200": {"description": "OK"}},
            },
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths}
