"""Release names: they name files in the state dir, so they must be safe there and fit every derived name."""

from __future__ import annotations

import re

RELEASE_NAME_MAX = 63
"""A DNS label's length. It keeps every file a release names valid: the longest, an archived simulator
state `NAME.YYYYMMDDTHHMMSS.sim.json`, is 88 bytes (NAME_MAX is 255), and the socket `NAME.sock` reached
through its directory's descriptor (`/proc/self/fd/N/NAME.sock`, for a deep state dir) stays within the
107 bytes of a Unix socket address."""
_RELEASE_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9._-]*")
RESERVED_NAMES = ("flags", "brahma-error")
"""Names the state dir already uses: the flag editor's journal `flags.jsonl`, the last-guard `brahma-error.log`."""
ARCHIVE_STAMP = re.compile(r"\.\d{8}T\d{6}$")
"""The suffix a finished rollout's journal is archived with (`NAME.20261201T000000.jsonl`)."""


def release_name_problem(name: str) -> str | None:
    """Why `name` cannot name a release (and its journal, lock, socket, log and report); None when it can."""
    if not name:
        return "a release name cannot be empty"
    bad = next((c for c in name if not _RELEASE_NAME_CHARACTERS.fullmatch(c)), None)
    if bad is not None:
        return f"a release name takes letters, digits, '.', '-' and '_' only, not {bad!r}"
    if len(name) > RELEASE_NAME_MAX:
        return f"a release name has at most {RELEASE_NAME_MAX} characters (it names files in the state dir), not {len(name)}"
    if name[0] in ".-":
        return "a release name starts with a letter or a digit"
    if name.lower() in RESERVED_NAMES:
        return f"{name!r} is taken by the state dir itself ({', '.join(RESERVED_NAMES)} are reserved)"
    if ARCHIVE_STAMP.search(name):
        return "a release name cannot end like an archived journal's time stamp (.YYYYMMDDTHHMMSS)"
    return None
