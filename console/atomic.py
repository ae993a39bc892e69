"""State written so that a reader (flagd's watcher, a resumed run) sees the old file or the new one,
never half of either: a temporary file in the same folder, fsync'd, renamed over, the folder fsync'd."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from contextlib import suppress
from pathlib import Path

NEW_FILE_MODE = 0o644
# flagd's file provider reloads only when the mtime grows; make sure every write makes it grow.
_MTIME_STEP_NS = 1_000_000


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(target: Path, data: bytes) -> None:
    """Put `data` at `target` in one rename, durable before this returns; keeps the file's mode."""
    try:
        current = target.stat()
        mode, previous_mtime_ns = stat.S_IMODE(current.st_mode), current.st_mtime_ns
    except FileNotFoundError:
        mode, previous_mtime_ns = NEW_FILE_MODE, 0
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), mode)
            mtime_ns = max(time.time_ns(), previous_mtime_ns + _MTIME_STEP_NS)
            os.utime(file.fileno(), ns=(mtime_ns, mtime_ns))
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(target.parent)
