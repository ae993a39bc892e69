"""Feature flags in flagd's flag definition JSON: Brahma's model, the store, and its file backend.

The Kubernetes ConfigMap backend is in `console.flags.configmap` (it imports the kubernetes client).
"""

from console.flags.backends import FileBackend, FlagBackend, Snapshot
from console.flags.errors import FlagError, FlagFileError, ReadOnlyFlagError, UnknownFlagError, VersionConflict
from console.flags.model import NEW_FLAG_KEY, Flag, FlagChange
from console.flags.store import ChangeResult, FlagStore

__all__ = [
    "NEW_FLAG_KEY",
    "ChangeResult",
    "FileBackend",
    "Flag",
    "FlagBackend",
    "FlagChange",
    "FlagError",
    "FlagFileError",
    "FlagStore",
    "ReadOnlyFlagError",
    "Snapshot",
    "UnknownFlagError",
    "VersionConflict",
]
