"""Where a flag document lives, read whole and written only over the version that was read.

Every backend offers the same compare-and-swap: `write(text, based_on)` replaces the document
only if it is still the version `based_on` was read from, and raises VersionConflict otherwise.
The store builds optimistic concurrency on that: read, apply the change, write, and on a
conflict read again and re-apply.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from console.atomic import NEW_FILE_MODE, ReadOnlyFileError, atomic_write
from console.flags.errors import FlagFileError, VersionConflict


@dataclass(frozen=True)
class Snapshot:
    """A document as read: its text (None when there is none yet) and the version it had."""

    text: str | None
    version: str | None
    origin: Any = field(default=None, compare=False, repr=False)
    """What the backend read the text from (the ConfigMap object), for writing the next version."""


class FlagBackend(Protocol):
    """A store of one flag document with compare-and-swap writes."""

    @property
    def source(self) -> str:
        """Where the document is, for messages."""
        ...

    def read(self) -> Snapshot: ...

    def write(self, text: str, based_on: Snapshot) -> None:
        """Replace the document with `text` if it is still at `based_on`'s version; VersionConflict if not."""
        ...


class FileBackend:
    """A flag file on local disk, as flagd and the OpenFeature file provider watch it.

    Writes are atomic (a temporary file beside it, fsynced, renamed over it, the directory
    fsynced) so a watcher never reads half a file; the file keeps its mode and group, and a
    read-only file is refused (FlagFileError), not renamed over. A lock file beside it
    (`NAME.lock`) makes the version check and the rename one step between Brahma processes;
    the version is the hash of the content, so edits by other tools are noticed too.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def source(self) -> str:
        return str(self.path)

    def read(self) -> Snapshot:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Snapshot(None, None)
        except OSError as error:
            raise FlagFileError(self.source, f"cannot read: {error.strerror}") from error
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FlagFileError(self.source, "not UTF-8 text", data.count(b"\n", 0, error.start) + 1) from error
        return Snapshot(text, hashlib.sha256(data).hexdigest())

    def write(self, text: str, based_on: Snapshot) -> None:
        target = Path(os.path.realpath(self.path))
        with self._locked(target):
            if self.read().version != based_on.version:
                raise VersionConflict(f"{self.source} changed since it was read")
            try:
                atomic_write(target, text.encode("utf-8"))
            except ReadOnlyFileError as error:
                raise FlagFileError(self.source, f"{error.strerror}: not changed (make it writable to change its flags)") from error

    @contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        lock_path = target.with_name(target.name + ".lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, NEW_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)
