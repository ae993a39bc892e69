"""The three patch formats: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Strategic merge patch follows the rules of the Kubernetes types the emulator serves: lists of
containers, ports, env, volumes, conditions... merge by their key, other lists are replaced,
and the directives kubectl sends ($patch, $retainKeys, $setElementOrder/, $deleteFromPrimitiveList/)
are honoured.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied to the object (answered 422)."""


# --- JSON patch ---------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_insert):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(document: Any, tokens: list[str], path: str) -> Any:
    node = document
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_insert=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _get(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return document
    parent, last = _parent(document, tokens, path), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_insert=False)]
    raise PatchError(f"doc is missing path: {path!r}")


def _remove(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent, last = _parent(document, tokens, path), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_insert=False))
    raise PatchError(f"doc is missing path: {path!r}")


def _add(document: Any, path: str, value: Any, *, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(document, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"doc is missing key: {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, for_insert=False)] = value
        else:
            parent.insert(_index(parent, last, for_insert=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return document


def json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}")
        op, path = operation.get("op"), operation["path"]
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation.get("value")), replace=False)
        elif op == "replace":
            result = _add(result, path, copy.deepcopy(operation.get("value")), replace=True)
        elif op == "remove":
            _remove(result, path)
        elif op == "move":
            result = _add(result, path, _remove(result, operation["from"]), replace=False)
        elif op == "copy":
            result = _add(result, path, copy.deepcopy(_get(result, operation["from"])), replace=False)
        elif op == "test":
            if _get(result, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind of JSON patch operation: {op!r}")
    if not isinstance(result, dict):
        raise PatchError("the patch did not leave an object")
    return result


# --- JSON merge patch ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge patch ----------------------------------------------------------------------

_NAMED_LISTS = ("containers", "initContainers", "ephemeralContainers", "volumes", "imagePullSecrets", "env")
_MERGE_KEYS = {
    **{field: "name" for field in _NAMED_LISTS},
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_MERGED_PRIMITIVE_LISTS = ("finalizers",)
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


def _merge_key(path: tuple[str, ...], field: str) -> str | None:
    if field == "ports":
        return "containerPort" if path and path[-1] in _CONTAINER_LISTS else "port"
    return _MERGE_KEYS.get(field)


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_without_directives(item) for item in value if not (isinstance(item, dict) and "$patch" in item)]
    return value


def _merge_keyed_list(original: list[Any], patch: list[Any], key: str, path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return _without_directives(patch)
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"list items merged by {key!r} must be objects")
        position = next(
            (i for i, existing in enumerate(result) if isinstance(existing, dict) and existing.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(_without_directives(item))
        else:
            result[position] = strategic_merge(result[position], item, path)
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Items in the order given by a $setElementOrder directive; items it does not name go last."""

    def identity(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (wanted.index(identity(pair[1])) if identity(pair[1]) in wanted else len(wanted), pair[0]),
    )
    return [item for _, item in ranked]


def strategic_merge(original: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return _without_directives(patch)
    if patch.get("$patch") == "replace":
        return _without_directives(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {}
    for field, value in patch.items():
        if field in ("$patch", "$retainKeys"):
            continue
        if field.startswith(_ORDER_PREFIX):
            orders[field[len(_ORDER_PREFIX) :]] = value
        elif field.startswith(_DELETE_PRIMITIVE_PREFIX):
            name = field[len(_DELETE_PRIMITIVE_PREFIX) :]
            result[name] = [item for item in result.get(name) or [] if item not in value]
        elif value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(field, None)
        elif isinstance(value, dict):
            result[field] = strategic_merge(result.get(field), value, (*path, field))
        elif isinstance(value, list) and (key := _merge_key(path, field)):
            result[field] = _merge_keyed_list(result.get(field) or [], value, key, (*path, field))
        elif isinstance(value, list) and field in _MERGED_PRIMITIVE_LISTS:
            merged = list(result.get(field) or [])
            result[field] = merged + [item for item in value if item not in merged]
        else:
            result[field] = _without_directives(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _ordered(result[field], order, _merge_key(path, field))
    if "$retainKeys" in patch:
        result = {k: v for k, v in result.items() if k in patch["$retainKeys"]}
    return result


def apply_merge(original: Any, applied: Any, path: tuple[str, ...] = ()) -> Any:
    """Server-side apply, simplified: the applied configuration merged over the live object.

    Lists merge by their strategic key where the type has one. Field ownership is not tracked,
    so fields that an earlier apply set and this one leaves out are kept, not removed.
    """
    if not isinstance(applied, dict) or not isinstance(original, dict):
        return copy.deepcopy(applied)
    result = copy.deepcopy(original)
    for field, value in applied.items():
        key = _merge_key(path, field)
        if isinstance(value, list) and key and isinstance(result.get(field), list):
            merged = result[field]
            for item in value:
                position = next((i for i, old in enumerate(merged) if old.get(key) == item.get(key)), None)
                if position is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[position] = apply_merge(merged[position], item, (*path, field))
        else:
            result[field] = apply_merge(result.get(field), value, (*path, field))
    return result
