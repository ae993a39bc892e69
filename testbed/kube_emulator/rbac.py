"""What RBAC would ask of a request, and what a Role grants: tests check a Role against the requests a client made.

A request's permission is (API group, resource, verb, namespaced), the verb as the API server's
authorizer names it (get, list, watch, create, update, patch, delete, deletecollection), the
resource with its subresource (`deployments/scale`). A Role grants only namespaced permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .server import RequestRecord, _truthy


@dataclass(frozen=True, order=True)
class Permission:
    group: str
    resource: str
    verb: str
    namespaced: bool = True
    """Asked within a namespace: what a Role can grant (a list across all namespaces, or of nodes, cannot)."""

    def __str__(self) -> str:
        where = "" if self.namespaced else " (cluster-wide)"
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}{where}"


def permission_of(record: RequestRecord) -> Permission | None:
    """The permission a resource request needs, for resources the emulator does not serve too (a 404 was
    still asked for); None for discovery, OpenAPI, /version and the like."""
    parts = record.path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespaced = rest[0] == "namespaces" and len(rest) >= 3
    if namespaced:
        rest = rest[2:]
    if len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else None
    if record.method == "GET":
        verb = "get" if name else ("watch" if _truthy(record.query.get("watch")) else "list")
    elif record.method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[record.method]
    return Permission(group, "/".join(rest[::2]), verb, namespaced)


def granted_by(role: dict[str, Any]) -> set[Permission]:
    """Every permission a Role's rules grant, spelled out; a wildcard or resourceNames would need more than a set."""
    granted = set()
    for rule in role.get("rules") or []:
        spelled = [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
        if "*" in spelled or rule.get("resourceNames"):
            raise ValueError(f"a rule this check cannot spell out: {rule}")
        granted |= {Permission(group, resource, verb) for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    return granted
