"""What a supervised rollout keeps beside its journal (its launch record, its socket's address), and the lock that
allows one controller per rollout. The files' names are the state dir's (console/journal/state_dir.py)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from console import strict_json
from console.atomic import atomic_write
from console.journal.state_dir import RolloutFiles
from console.private_files import make_private, make_state_dir, open_private

LAUNCH_ENVIRONMENT = ("KUBECONFIG",)
"""Variables that choose where a rollout runs: a restart from another shell must find the same cluster.
Credentials are left out on purpose (never written to disk); a restart without them says which is missing."""


@dataclass(frozen=True)
class Launch:
    """How a rollout's controller was started: its `brahma supervise` arguments and the environment that matters."""

    argv: list[str]
    environment: dict[str, str]
    """Written down as they are: where the rollout runs, never a secret."""
    needs: dict[str, str] = field(default_factory=dict)
    """Variables holding a secret the controller was given (name: what it holds): the names alone are written
    down, and a restart takes the values from its own environment."""

    @classmethod
    def here(cls, argv: list[str], needs: dict[str, str] | None = None) -> Launch:
        """`argv` with this process's LAUNCH_ENVIRONMENT, its paths made absolute."""
        environment = {
            name: os.pathsep.join(os.path.abspath(part) for part in os.environ[name].split(os.pathsep) if part)
            for name in LAUNCH_ENVIRONMENT
            if os.environ.get(name)
        }
        return cls(argv, environment, dict(needs or {}))

    def missing(self) -> dict[str, str]:
        """What this launch needs that this process's environment lacks."""
        return {name: what for name, what in self.needs.items() if not os.environ.get(name)}

    def write(self, path: Path) -> None:
        make_private(path)  # replaced whole, and its mode kept: 0600 from the first byte
        atomic_write(path, strict_json.dumps({"argv": self.argv, "environment": self.environment, "needs": self.needs}).encode())

    @classmethod
    def read(cls, path: Path) -> Launch | None:
        """The launch record at `path`; None when there is none (or it cannot be read)."""
        try:
            record = json.loads(path.read_text())
            return cls(list(record["argv"]), dict(record["environment"]), dict(record.get("needs", {})))
        except (OSError, ValueError, KeyError, TypeError):
            return None


SOCKET_PATH_MAX = 107
"""Bytes a Unix socket's address may have (sun_path is 108, with its NUL)."""


@contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """`path` as bind and connect take it; a longer one than sun_path holds goes through its directory's descriptor.

    A state dir deep in a home directory is common, and the kernel limits a socket's path to 107 bytes.
    """
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


def take_lock(files: RolloutFiles) -> IO[str] | None:
    """The rollout's lock, held for as long as the returned file stays open; None when another process holds it.

    flock is released by the kernel when its holder dies (kill -9 included), so a dead controller never
    blocks the next one.
    """
    make_state_dir(files.state_dir)
    handle = os.fdopen(open_private(files.lock, os.O_RDWR | os.O_APPEND), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def lock_held(files: RolloutFiles) -> bool:
    """Whether a process holds the rollout's lock now (a controller, a headless run, brahma demo)."""
    try:
        handle = open(files.lock, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def lock_holder(files: RolloutFiles) -> int | None:
    """The pid the lock file names (meaningful only while the lock is held)."""
    try:
        return int(files.lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
