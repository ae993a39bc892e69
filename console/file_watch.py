"""Which files of some directories were written, created, renamed or removed: Linux inotify, through ctypes.

The fleet (console/tui/fleet_app.py) reads a rollout's row again when its journal is written, and only then:
no journal is looked at on a timer. `DirectoryWatch` raises OSError where inotify cannot be had (another
system, no libc symbol, the per-user limit on instances or watches reached); the fleet then rescans slowly.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

IN_MODIFY = 0x2
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_Q_OVERFLOW = 0x4000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
WATCHED = IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
EVENT_HEADER = struct.Struct("iIII")
"""struct inotify_event: wd, mask, cookie, len; then `len` bytes of the name, NUL padded."""
READ_BYTES = 64 * 1024


@dataclass
class Changes:
    """What one read of the notifications says."""

    paths: set[Path] = field(default_factory=set)
    overflowed: bool = False
    """The kernel's queue overflowed: some changes were lost, every directory must be looked at again."""


class DirectoryWatch:
    """Notifications for the files directly inside `directories`; `fileno()` is readable when some are waiting."""

    def __init__(self, directories: list[Path]):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError) as error:
            raise OSError(f"no inotify here: {error}") from None
        add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self._directories: dict[int, Path] = {}
        for directory in directories:
            watch = add_watch(self._fd, os.fsencode(directory), WATCHED)
            if watch < 0:
                errno = ctypes.get_errno()
                self.close()
                raise OSError(errno, f"inotify_add_watch {directory}: {os.strerror(errno)}")
            self._directories[watch] = directory

    def fileno(self) -> int:
        return self._fd

    def changes(self) -> Changes:
        """The notifications waiting now, as the paths they name (none waiting: no paths)."""
        changes = Changes()
        while True:
            try:
                buffer = os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                return changes
            offset = 0
            while offset < len(buffer):
                watch, mask, _cookie, length = EVENT_HEADER.unpack_from(buffer, offset)
                name = buffer[offset + EVENT_HEADER.size : offset + EVENT_HEADER.size + length].rstrip(b"\0")
                offset += EVENT_HEADER.size + length
                if mask & IN_Q_OVERFLOW:
                    changes.overflowed = True
                elif name and watch in self._directories:
                    changes.paths.add(self._directories[watch] / os.fsdecode(name))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
