"""A real terminal for end-to-end console tests and benchmarks: tmux, driven by send-keys and read by
capture-pane, on a private server socket so nothing else is touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

TMUX_TIMEOUT_S = 10


class TmuxTerminal:
    """One tmux session running one program at a fixed size."""

    def __init__(self, argv: list[str], width: int = 80, height: int = 24, cwd: Path | None = None, env: dict[str, str] | None = None):
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (.ci/run installs it)")
        self.socket = f"brahma-test-{uuid.uuid4().hex[:8]}"
        self.session = "console"
        environment = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        # With the program given as separate arguments tmux runs it directly, not through a shell.
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), *environment, "-c", str(cwd or os.getcwd()), "--", *argv)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=TMUX_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", self.session, "#{pane_pid}").strip())

    def pipe_output(self, path: Path) -> None:
        """Copy everything the program writes to the terminal into `path` (to count bytes)."""
        self._tmux("pipe-pane", "-o", "-t", self.session, f"cat >> {path}")

    def wait_for(self, text: str, timeout_s: float = 30.0, step_s: float = 0.05) -> str:
        """Poll the screen until `text` shows; the screen, or TimeoutError with the last screen."""
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(step_s)
        raise TimeoutError(f"{text!r} never showed; the screen was:\n{screen}")

    def wait_closed(self, timeout_s: float = 10.0) -> bool:
        """Poll until the program has ended (its session is gone); False if it is still running."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session], capture_output=True, timeout=TMUX_TIMEOUT_S).returncode == 0

    def kill_session(self) -> None:
        """What an SSH drop does to a session: the program gets SIGHUP and its terminal is gone."""
        self._tmux("kill-session", "-t", self.session)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=TMUX_TIMEOUT_S)

    def __enter__(self) -> TmuxTerminal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
