"""`make bench`: every bench/bench_*.py in turn; each prints `BENCH <name> <value> <unit>` lines.

One that fails (an error, or past TIMEOUT_S) does not stop the others: every benchmark runs,
then the exit is 1 with the failed ones named."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900


def run(script: Path, timeout_s: float = TIMEOUT_S) -> str | None:
    """Runs one benchmark, its figures on stdout; None when it ran through, or why it did not."""
    # In a session of its own, so that a benchmark cut short takes what it started (servers, controllers) with it.
    process = subprocess.Popen([sys.executable, str(script)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except BaseException as stopped:  # the timeout, or ctrl+c on `make bench`
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        sys.stdout.write(output)
        if not isinstance(stopped, subprocess.TimeoutExpired):
            raise
        return f"timed out after {timeout_s:g}s"
    sys.stdout.write(output)
    sys.stdout.flush()
    return None if process.returncode == 0 else f"exit {process.returncode}"


def main(benchmarks: Path = HERE, timeout_s: float = TIMEOUT_S) -> int:
    failed = [f"{script.name} ({why})" for script in sorted(benchmarks.glob("bench_*.py")) if (why := run(script, timeout_s)) is not None]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
