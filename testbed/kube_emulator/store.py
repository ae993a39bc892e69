"""The object store: objects by resource, one global resourceVersion, and the event history watches read."""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import already_exists, gone, not_found, stale_write
from .resources import ResourceType


@dataclass(frozen=True)
class StoreEvent:
    resource_version: int
    type: str
    """ADDED, MODIFIED or DELETED."""
    resource: ResourceType
    obj: dict[str, Any]
    """The object after the change; for DELETED its last state, stamped with the deletion's version."""
    previous: dict[str, Any] | None
    """The object before the change (MODIFIED and DELETED), so watches can tell when it left their selector."""


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


class Store:
    """Thread-safe; stored dicts are never changed in place, so events can share them with readers.

    `lock` is reentrant: the API layer holds it around read-modify-write sequences so they are atomic.
    """

    def __init__(self, history_limit: int = 10_000):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[ResourceType, dict[tuple[str, str], dict[str, Any]]] = {}
        self._revision = 1
        self._history: list[StoreEvent] = []
        self._history_versions: list[int] = []
        self._history_limit = history_limit
        self._compacted_through = 0

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._revision

    def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._objects.get(resource, {}).get((namespace if resource.namespaced else "", name))
            return copy.deepcopy(found)

    def list(self, resource: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects sorted by namespace and name; every namespace when `namespace` is None."""
        with self.lock:
            objects = self._objects.get(resource, {})
            return [copy.deepcopy(objects[key]) for key in sorted(objects) if namespace is None or key[0] == namespace]

    def create(self, resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            key = _key(obj)
            objects = self._objects.setdefault(resource, {})
            if key in objects:
                raise already_exists(resource, key[1])
            stored = self._stamp(obj)
            objects[key] = stored
            self._record("ADDED", resource, stored, None)
            return copy.deepcopy(stored)

    def replace(self, resource: ResourceType, obj: dict[str, Any], expected_version: str | None = None) -> dict[str, Any]:
        """Store a new state; with `expected_version`, only if the object is still at that version."""
        with self.lock:
            key = _key(obj)
            objects = self._objects.get(resource, {})
            current = objects.get(key)
            if current is None:
                raise not_found(resource, key[1])
            if expected_version is not None and current["metadata"]["resourceVersion"] != expected_version:
                raise stale_write(resource, key[1])
            stored = self._stamp(obj)
            objects[key] = stored
            self._record("MODIFIED", resource, stored, current)
            return copy.deepcopy(stored)

    def delete(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            objects = self._objects.get(resource, {})
            current = objects.pop((namespace if resource.namespaced else "", name), None)
            if current is None:
                raise not_found(resource, name)
            tombstone = self._stamp(current)
            self._record("DELETED", resource, tombstone, current)
            return copy.deepcopy(tombstone)

    def events_after(self, resource_version: int) -> list[StoreEvent]:
        """Every change after `resource_version`; 410 Expired when history no longer reaches back there."""
        with self.lock:
            if resource_version < self._compacted_through:
                raise gone(f"too old resource version: {resource_version} ({self._compacted_through})")
            start = bisect.bisect_right(self._history_versions, resource_version)
            return self._history[start:]

    def wait_for_change(self, after_version: int, timeout: float, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Block until the store moves past `after_version`, `timeout` passes, or `cancelled()` (on a notify)."""
        with self.changed:
            self.changed.wait_for(lambda: self._revision > after_version or cancelled(), timeout)

    def wake_waiters(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._revision += 1
        stamped = copy.deepcopy(obj)
        stamped["metadata"]["resourceVersion"] = str(self._revision)
        return stamped

    def _record(self, kind: str, resource: ResourceType, obj: dict[str, Any], previous: dict[str, Any] | None) -> None:
        self._history.append(StoreEvent(self._revision, kind, resource, obj, previous))
        self._history_versions.append(self._revision)
        if len(self._history) > self._history_limit:
            dropped = len(self._history) // 2
            self._compacted_through = self._history_versions[dropped - 1]
            del self._history[:dropped], self._history_versions[:dropped]
        self.changed.notify_all()
