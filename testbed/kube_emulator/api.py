"""The API verbs over the store: what create, update, patch and delete mean, apart from HTTP."""

from __future__ import annotations

import copy
import itertools
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import managed_fields, patches
from .admission import DEFAULTERS, Undecodable, decode_typed_fields, default_service, validate
from .errors import ApiError, bad_request, conflict, internal_error, invalid, not_found, unsupported_media_type
from .resources import ALL_RESOURCES, NAMESPACES, ResourceType
from .selectors import parse_field_selector, parse_label_selector, selector_from_object
from .store import Store
from .timestamps import format_time

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The characters of generated name suffixes (no vowels, so no words)."""
_UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")
_SERVER_MANAGED = ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp")


def random_suffix(length: int = 5) -> str:
    return "".join(random.choices(NAME_ALPHABET, k=length))


def prune_nulls(value: Any) -> Any:
    """JSON null means "not set" to the API server: it never stores one."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(item) for item in value]
    return value


def _without_meta_and_status(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _parse_document(raw: bytes, content_type: str) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        if content_type != APPLY_PATCH:
            raise bad_request("the request body is not valid JSON") from None
    import yaml  # only server-side apply bodies may be YAML; kubectl sends JSON even then

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise bad_request(f"error decoding YAML: {error}") from None


def scale_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale that the /scale subresource reads and writes."""
    metadata = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
        "spec": {"replicas": obj["spec"].get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": str(selector_from_object(obj["spec"].get("selector"))),
        },
    }


class Api:
    """Every verb validates and defaults like the API server; `dry_run` answers without storing."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time):
        self.store = store
        self._clock = clock
        self._cluster_ips = (f"10.96.{n // 250}.{n % 250 + 1}" for n in itertools.count(10))
        self._node_ports = itertools.count(30000)

    def now(self) -> str:
        return format_time(self._clock())

    # --- reads ----------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        found = self.store.get(resource, namespace, name)
        if found is None:
            raise not_found(resource, name)
        return found

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching objects and the resourceVersion they were read at."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, resource.supports_field)
        with self.store.lock:
            objects, version = self.store.list(resource, namespace), self.store.resource_version
        matching = [obj for obj in objects if labels.matches(obj["metadata"].get("labels")) and fields(obj)]
        return matching, version

    # --- writes ---------------------------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Any,
        dry_run: bool = False,
        manager: str = managed_fields.CONTROLLER_MANAGER,
        applied: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        obj = self._decoded(resource, body)
        metadata = obj["metadata"]
        if resource.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if metadata.get("resourceVersion"):
            raise internal_error("resourceVersion should not be set on objects to be created")
        with self.store.lock:
            if resource.namespaced and self.store.get(NAMESPACES, "", namespace) is None:
                raise not_found(NAMESPACES, namespace)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + random_suffix()
            if resource.has_status:
                obj.pop("status", None)
            self._default(resource, obj)
            validate(resource, obj)
            metadata.pop("deletionTimestamp", None)
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=self.now())
            if resource.tracks_generation:
                metadata["generation"] = 1
            metadata["managedFields"] = managed_fields.recorded([], None, obj, manager, resource.group_version, self.now(), applied=applied)
            if dry_run:
                return obj
            return self.store.create(resource, obj)

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str = managed_fields.CONTROLLER_MANAGER,
    ) -> dict[str, Any]:
        with self.store.lock:
            current = self.get(resource, namespace, name)
            if subresource == "scale":
                replicas = ((body or {}).get("spec") or {}).get("replicas", 0)
                return scale_view(self._scale(resource, current, replicas, dry_run, manager))
            obj = self._decoded(resource, body)
            if obj["metadata"].get("name") not in (None, name):
                raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on the URL ({name})")
            obj["metadata"]["name"] = name
            expected = obj["metadata"].get("resourceVersion")
            return self._write(resource, current, obj, subresource, expected, dry_run, manager)

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw_body: bytes,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The patched object, and whether it was created (server-side apply of a new object)."""
        document = _parse_document(raw_body, content_type)
        if content_type == APPLY_PATCH and not field_manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        manager = managed_fields.manager_from(field_manager, user_agent)
        applied = document if content_type == APPLY_PATCH else None
        with self.store.lock:
            current = self.store.get(resource, namespace, name)
            if current is None:
                if content_type == APPLY_PATCH and subresource is None:
                    return self.create(resource, namespace, document, dry_run, manager, applied), True
                raise not_found(resource, name)
            if subresource == "scale":
                patched_scale = self._patched(resource, content_type, scale_view(current), document)
                replicas = patched_scale.get("spec", {}).get("replicas", 0)
                return scale_view(self._scale(resource, current, replicas, dry_run, manager)), False
            patched = prune_nulls(self._patched(resource, content_type, current, document))
            patched.setdefault("metadata", {})["name"] = name
            try:
                decode_typed_fields(resource, patched)
            except Undecodable as error:  # the patch itself was well-formed: its result is what is invalid
                cause = {"reason": "FieldValueInvalid", "message": str(error), "field": "patch"}
                raise invalid(resource, name, [cause]) from None
            expected = patched["metadata"].get("resourceVersion")
            return self._write(resource, current, patched, subresource, expected, dry_run, manager, applied), False

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if resource is NAMESPACES and name in _UNDELETABLE_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        with self.store.lock:
            current = self.get(resource, namespace, name)
            self._check_preconditions(resource, current, preconditions or {})
            if dry_run:
                return current
            return self._delete_tree(resource, current, propagation or "Background")

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        with self.store.lock:
            matching, _ = self.list(resource, namespace, label_selector, field_selector)
            if dry_run:
                return matching
            return [self._delete_tree(resource, obj, propagation or "Background") for obj in matching]

    # --- helpers --------------------------------------------------------------------------------

    def _decoded(self, resource: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request is not a {resource.kind} object")
        obj = prune_nulls(copy.deepcopy(body))
        if obj.get("apiVersion") not in (None, resource.group_version):
            raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({resource.group_version})")
        if obj.get("kind") not in (None, resource.kind):
            raise bad_request(f"the kind in the data ({obj['kind']}) does not match the expected kind ({resource.kind})")
        obj.update(kind=resource.kind, apiVersion=resource.group_version)
        obj.setdefault("metadata", {}).pop("managedFields", None)
        try:
            decode_typed_fields(resource, obj)
        except Undecodable as error:
            raise bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: {error}') from None
        return obj

    def _default(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        if resource.kind == "Service":
            default_service(obj, lambda: next(self._cluster_ips), lambda: next(self._node_ports))
        elif resource.kind in DEFAULTERS:
            DEFAULTERS[resource.kind](obj)

    def _patched(self, resource: ResourceType, content_type: str, base: dict[str, Any], document: Any) -> dict[str, Any]:
        try:
            if content_type == JSON_PATCH:
                return patches.json_patch(base, document)
            if not isinstance(document, dict):
                raise patches.PatchError("a merge patch must be a JSON object")
            if content_type == MERGE_PATCH:
                return patches.merge_patch(base, document)
            if content_type == STRATEGIC_MERGE_PATCH and resource.builtin:
                return patches.strategic_merge(base, document)
            if content_type == APPLY_PATCH:
                return patches.apply_merge(base, document)
        except patches.PatchError as error:
            raise ApiError(422, "Invalid", str(error)) from None
        raise unsupported_media_type(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}" + (f", {STRATEGIC_MERGE_PATCH}" if resource.builtin else "")
        )

    def _scale(self, resource: ResourceType, current: dict[str, Any], replicas: Any, dry_run: bool, manager: str) -> dict[str, Any]:
        if "scale" not in resource.subresources:
            raise not_found(resource, current["metadata"]["name"])
        scaled = copy.deepcopy(current)
        scaled["spec"]["replicas"] = replicas
        return self._write(resource, current, scaled, "scale", None, dry_run, manager)

    def _write(
        self,
        resource: ResourceType,
        current: dict[str, Any],
        proposed: dict[str, Any],
        subresource: str | None,
        expected_version: str | None,
        dry_run: bool,
        manager: str = managed_fields.CONTROLLER_MANAGER,
        applied: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store `proposed` as the new state of `current`, keeping what clients may not change.

        `subresource` is status (only the status changes), scale (only the replicas do) or None;
        the write is recorded in managedFields under `manager`.
        """
        if expected_version and expected_version != current["metadata"]["resourceVersion"]:
            raise conflict(
                resource,
                current["metadata"]["name"],
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = proposed.get("status", {})
        else:
            new = proposed
            if resource.has_status:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
        metadata = new.setdefault("metadata", {})
        for field in _SERVER_MANAGED:
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
            else:
                metadata.pop(field, None)
        metadata.pop("managedFields", None)
        if resource.kind == "Service":
            self._keep_allocations(new, current)
        self._default(resource, new)
        validate(resource, new, old=current)
        if resource.tracks_generation and _without_meta_and_status(new) != _without_meta_and_status(current):
            metadata["generation"] = current["metadata"].get("generation", 1) + 1
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        ownership = current["metadata"].pop("managedFields", [])
        if new == current:
            current["metadata"]["managedFields"] = ownership
            return current
        now = self.now()
        metadata["managedFields"] = managed_fields.recorded(ownership, current, new, manager, resource.group_version, now, subresource, applied)
        if dry_run:
            return new
        return self.store.replace(resource, new)

    @staticmethod
    def _keep_allocations(new: dict[str, Any], current: dict[str, Any]) -> None:
        """An update that leaves out the cluster IP and node ports keeps the allocated ones."""
        spec, old_spec = new.setdefault("spec", {}), current.get("spec", {})
        for field in ("clusterIP", "clusterIPs"):
            if not spec.get(field) and field in old_spec:
                spec[field] = old_spec[field]
        old_node_ports = {port.get("port"): port.get("nodePort") for port in old_spec.get("ports", [])}
        for port in spec.get("ports", []):
            if "nodePort" not in port and old_node_ports.get(port.get("port")):
                port["nodePort"] = old_node_ports[port["port"]]

    @staticmethod
    def _check_preconditions(resource: ResourceType, current: dict[str, Any], preconditions: dict[str, Any]) -> None:
        metadata, name = current["metadata"], current["metadata"]["name"]
        if preconditions.get("uid") and preconditions["uid"] != metadata["uid"]:
            raise conflict(
                resource,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {metadata['uid']}",
            )
        version = preconditions.get("resourceVersion")
        if version and version != metadata["resourceVersion"]:
            raise conflict(
                resource,
                name,
                f"Precondition failed: ResourceVersion in precondition: {version}, ResourceVersion in object meta: {metadata['resourceVersion']}",
            )

    def _delete_tree(self, resource: ResourceType, obj: dict[str, Any], propagation: str) -> dict[str, Any]:
        """Delete `obj` and what it owns, as the garbage collector would (at once, not eventually)."""
        metadata = obj["metadata"]
        if propagation == "Foreground":
            self._handle_dependents(metadata, propagation)
        tombstone = self.store.delete(resource, metadata.get("namespace", ""), metadata["name"])
        if propagation != "Foreground":
            self._handle_dependents(metadata, propagation)
        if resource is NAMESPACES:
            for contained in ALL_RESOURCES:
                if contained.namespaced:
                    for child in self.store.list(contained, metadata["name"]):
                        if self.store.get(contained, metadata["name"], child["metadata"]["name"]) is not None:
                            self._delete_tree(contained, child, "Background")
        return tombstone

    def _handle_dependents(self, owner_metadata: dict[str, Any], propagation: str) -> None:
        owner_uid = owner_metadata["uid"]
        for resource in ALL_RESOURCES:
            if not resource.namespaced:
                continue
            for dependent in self.store.list(resource, owner_metadata.get("namespace")):
                references = dependent["metadata"].get("ownerReferences") or []
                if not any(reference.get("uid") == owner_uid for reference in references):
                    continue
                namespace, name = dependent["metadata"]["namespace"], dependent["metadata"]["name"]
                if propagation == "Orphan":
                    kept = [reference for reference in references if reference.get("uid") != owner_uid]
                    dependent["metadata"]["ownerReferences"] = kept
                    if not kept:
                        del dependent["metadata"]["ownerReferences"]
                    self.store.replace(resource, dependent)
                elif self.store.get(resource, namespace, name) is not None:
                    self._delete_tree(resource, dependent, propagation)
