"""State written so that a reader (flagd's watcher, a resumed run) sees the old file or the new one,
never half of either: a temporary file in the same folder, fsync'd, renamed over, the folder fsync'd.

The rename replaces the file whatever its own permissions say, so they are honoured here: a file
this user may not write (or nobody may: mode 0444, even for root) is refused before anything is
written, and a file that is replaced keeps its mode, and its owner and group where this user may
set them, so the readers it was shared with (flagd in the file's group) can still read it."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from contextlib import suppress
from pathlib import Path

NEW_FILE_MODE = 0o644
"""The mode of a file atomic_write creates, less the umask, unless the caller says otherwise."""
_TEMPORARY_MODE = 0o600
"""A replacement being written: no one else reads it until it has the replaced file's mode."""
# flagd's file provider reloads only when the mtime grows; make sure every write makes it grow.
_MTIME_STEP_NS = 1_000_000


class ReadOnlyFileError(PermissionError):
    """The file to replace is not writable (for this user, or for anyone): nothing was written."""


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _refuse_read_only(target: Path, current: os.stat_result) -> None:
    # os.access says yes to root for any file: a file with no write bit at all is read-only for root too.
    if os.access(target, os.W_OK) and current.st_mode & 0o222:
        return
    mode = stat.S_IMODE(current.st_mode)
    raise ReadOnlyFileError(errno.EACCES, f"read-only (mode {mode:04o}, owner uid {current.st_uid})", str(target))


def write_refusal(target: Path) -> str | None:
    """Why atomic_write could not put a file at `target` (its folder missing or not writable, the file
    read-only); None when it could. For refusing a run up front rather than failing in the middle of it."""
    folder = target.parent
    if not folder.is_dir():
        return f"its folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable (the file is replaced by a rename there)"
    try:
        current = target.stat()
    except FileNotFoundError:
        return None
    try:
        _refuse_read_only(target, current)
    except ReadOnlyFileError as error:
        return str(error.strerror)
    return None


def _create_temporary(target: Path, mode: int) -> tuple[int, Path]:
    while True:
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), temporary
        except FileExistsError:
            continue


def _keep_owner_and_group(descriptor: int, current: os.stat_result) -> None:
    try:
        os.fchown(descriptor, current.st_uid, current.st_gid)
    except PermissionError:  # not root: the owner becomes this user; the group stays if this user is in it
        with suppress(PermissionError):
            os.fchown(descriptor, -1, current.st_gid)


def atomic_write(target: Path, data: bytes, new_mode: int = NEW_FILE_MODE) -> None:
    """Put `data` at `target` in one rename, durable before this returns.

    A file that is there keeps its mode (and owner and group where permitted); a file that is not
    is created with `new_mode` less the umask, always read and write for its owner. ReadOnlyFileError, with nothing written, when the
    file there may not be written.
    """
    try:
        current: os.stat_result | None = target.stat()
    except FileNotFoundError:
        current = None
    if current is not None:
        _refuse_read_only(target, current)
    descriptor, temporary = _create_temporary(target, _TEMPORARY_MODE if current is not None else new_mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            if current is not None:
                _keep_owner_and_group(file.fileno(), current)  # before the mode: a chown clears set-id bits
                os.fchmod(file.fileno(), stat.S_IMODE(current.st_mode))
            else:  # whatever the umask, the owner can write it again: a state file Brahma cannot rewrite stalls it
                os.fchmod(file.fileno(), stat.S_IMODE(os.fstat(file.fileno()).st_mode) | 0o600)
            previous_mtime_ns = current.st_mtime_ns if current is not None else 0
            mtime_ns = max(time.time_ns(), previous_mtime_ns + _MTIME_STEP_NS)
            os.utime(file.fileno(), ns=(mtime_ns, mtime_ns))
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(target.parent)
