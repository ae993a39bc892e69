"""The state dir and what Brahma keeps in it (journals, logs, locks, launch records) are the operator's alone:
created 0700 and 0600 whatever the umask, since they tell how a release is run and where."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_state_dir(path: Path) -> None:
    """`path` with its parents; the state dir itself, when this creates it, is 0700 (one that exists keeps its mode)."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=STATE_DIR_MODE)
    except FileExistsError:
        return  # made meanwhile by another process, or not a directory: the next open says so
    os.chmod(path, STATE_DIR_MODE)  # mkdir's mode was cut by the umask


def open_private(path: Path, flags: int) -> int:
    """A descriptor on `path` opened with `flags`; a file this creates is 0600 (one that exists keeps its mode)."""
    try:
        descriptor = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return os.open(path, flags | os.O_CLOEXEC)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)  # open's mode was cut by the umask
    return descriptor


def make_private(path: Path) -> None:
    """`path` exists and is 0600: a file about to be replaced whole (atomic_write keeps the mode it finds)."""
    os.close(open_private(path, os.O_WRONLY))
    os.chmod(path, PRIVATE_FILE_MODE)
