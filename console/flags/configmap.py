"""A flag document held in one key of a Kubernetes ConfigMap, as flagd's Kubernetes sync reads it.

Kept apart from the other backends because importing the `kubernetes` client is slow and
the file backend does not need it.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException

from console.flags.backends import Snapshot
from console.flags.errors import FlagFileError, VersionConflict

_FIELD_MANAGER = "brahma"
_NOT_FOUND, _CONFLICT = 404, 409


class ConfigMapBackend:
    """One key of a ConfigMap; the ConfigMap's resourceVersion guards every write.

    `api` is a `kubernetes.client.CoreV1Api` (or anything with its `read_namespaced_config_map`
    and `replace_namespaced_config_map`). The ConfigMap must exist; the key may not yet.
    """

    def __init__(self, api: Any, namespace: str, name: str, key: str = "flags.json"):
        self._api = api
        self.namespace, self.name, self.key = namespace, name, key

    @property
    def source(self) -> str:
        return f"configmap/{self.name} (namespace {self.namespace}, key {self.key})"

    def read(self) -> Snapshot:
        try:
            config_map = self._api.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as error:
            if error.status == _NOT_FOUND:
                raise FlagFileError(self.source, "no such ConfigMap") from error
            raise
        text = (config_map.data or {}).get(self.key)
        return Snapshot(text, config_map.metadata.resource_version, config_map)

    def write(self, text: str, based_on: Snapshot) -> None:
        # Send back the ConfigMap as read, with its resourceVersion: the API server refuses
        # the replace with 409 Conflict if anyone wrote it since, and keeps labels and other keys.
        config_map = copy.deepcopy(based_on.origin)
        config_map.data = {**(config_map.data or {}), self.key: text}
        try:
            self._api.replace_namespaced_config_map(self.name, self.namespace, config_map, field_manager=_FIELD_MANAGER)
        except ApiException as error:
            if error.status == _CONFLICT:
                raise VersionConflict(f"{self.source} changed since it was read") from error
            raise
