"""metadata.managedFields: which field manager last set which fields, as the API server records it.

Every write names its manager (the request's fieldManager, else its User-Agent up to the first "/",
as the API server derives it: kubectl scale is "kubectl", kubectl set image "kubectl-set", the
kubernetes Python client "OpenAPI-Generator"). An Update gives the writer the fields whose values it
changed and takes them from every other manager; an Apply gives the applier the fields of its
applied configuration. Fields are FieldsV1: `f:<name>` for a map key, `k:{"name":...}` for an item
of a list of named items (containers, env, ports by name), other lists whole.
"""

from __future__ import annotations

import json
from typing import Any

CONTROLLER_MANAGER = "kube-controller-manager"
"""The manager of the emulator's own controllers (the deployment and replica set controllers)."""
MAX_MANAGER_LENGTH = 128

Path = tuple[str, ...]


def manager_from(field_manager: str | None, user_agent: str | None) -> str:
    """The manager a request writes as: its fieldManager, else the first part of its User-Agent."""
    return (field_manager or (user_agent or "").split("/", 1)[0])[:MAX_MANAGER_LENGTH]


def _leaves(value: Any, path: Path, into: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _leaves(item, (*path, f"f:{key}"), into)
    elif isinstance(value, list) and value and all(isinstance(item, dict) and "name" in item for item in value):
        for item in value:
            keyed = (*path, "k:" + json.dumps({"name": item["name"]}, separators=(",", ":")))
            into[(*keyed, ".")] = None
            for key, field in item.items():
                _leaves(field, (*keyed, f"f:{key}"), into)
    else:
        into[path] = value


def fields_of(obj: dict[str, Any] | None, subresource: str | None) -> dict[Path, Any]:
    """The managed fields of an object (status alone for the status subresource) and their values."""
    leaves: dict[Path, Any] = {}
    if obj is None:
        return leaves
    if subresource == "status":
        _leaves({"status": obj.get("status") or {}}, (), leaves)
        return leaves
    metadata = obj.get("metadata") or {}
    managed = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind", "metadata", "status")}
    managed["metadata"] = {key: metadata[key] for key in ("labels", "annotations") if metadata.get(key)}
    _leaves(managed, (), leaves)
    leaves.pop(("f:metadata",), None)  # no labels or annotations: nothing of metadata is managed
    return leaves


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(key, {})
    return root


def from_fields_v1(fields: dict[str, Any], path: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, below in fields.items():
        paths |= from_fields_v1(below, (*path, key)) if below else {(*path, key)}
    return paths


def recorded(
    entries: list[dict[str, Any]],
    before: dict[str, Any] | None,
    after: dict[str, Any],
    manager: str,
    api_version: str,
    now: str,
    subresource: str | None = None,
    applied: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The managedFields after `manager` wrote `after` over `before` (None: created it).

    `applied`, for a server-side apply: the configuration applied, whose fields the applier owns.
    """
    old, new = fields_of(before, subresource), fields_of(after, subresource)
    changed = {path for path, value in new.items() if path not in old or old[path] != value}
    removed = old.keys() - new.keys()
    operation = "Update" if applied is None else "Apply"
    ours = (manager, operation, subresource)
    mine: set[Path] = set(fields_of(applied, subresource)) if applied is not None else set()
    kept = []
    for entry in entries:
        owned = from_fields_v1(entry.get("fieldsV1") or {}) - changed - removed
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource")) == ours:
            mine |= owned if applied is None else set()
        elif owned:
            kept.append({**entry, "fieldsV1": to_fields_v1(owned)})
    if applied is None:
        mine |= changed
    if not mine:
        return kept
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now}
    entry.update(fieldsType="FieldsV1", fieldsV1=to_fields_v1(mine))
    if subresource:
        entry["subresource"] = subresource
    return [*kept, entry]
