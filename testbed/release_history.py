"""A release history to read: a sample plan run again and again, headless in virtual time, into one state dir.

Each run is `brahma run PLAN --headless --fast --scenario S` in this process, as CI would run it; the
finished run's journal is archived beside the next one's (RolloutFiles.archive_finished), as on any
machine that releases the same app many times. `python -m testbed.release_history DIR` records the
ten runs of TEN_RUNS into DIR and prints `brahma assess` of the sample canary there.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from testbed import SAMPLES

TEN_RUNS = ("healthy", "healthy", "error-spike", "healthy", "latency-creep", "healthy", "flapping", "healthy", "error-spike", "healthy")
"""Six releases that complete and four that do not: two critical rollbacks, two pauses that time out."""


def record_releases(state_dir: Path, scenarios: Sequence[str] = TEN_RUNS, plan: Path = SAMPLES / "canary.yaml") -> list[int]:
    """Run `plan` once per scenario into `state_dir`; the exit codes (0 promoted, 3 rolled back)."""
    from console.app.cli import main

    codes = []
    for scenario in scenarios:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            codes.append(main(["run", str(plan), "--headless", "--fast", "--state-dir", str(state_dir), "--scenario", scenario]))
    return codes


if __name__ == "__main__":
    from console.app.cli import main

    directory = Path(sys.argv[1])
    print("exit codes:", record_releases(directory), file=sys.stderr)
    sys.exit(main(["assess", str(SAMPLES / "canary.yaml"), "--state-dir", str(directory)]))
