"""Who is acting: user@host, with the SSH client's address when the session came over SSH."""

from __future__ import annotations

import getpass
import os
import socket


def current_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    actor = f"{user}@{socket.gethostname()}"
    ssh_client = os.environ.get("SSH_CLIENT", "").split()
    return f"{actor} (ssh from {ssh_client[0]})" if ssh_client else actor
