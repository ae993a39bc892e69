"""The whole headless canary on the simulator in virtual time: the wall time of the process, from its start
to its exit (`brahma run sample_configs/canary.yaml --headless --fast`), median of RUNS."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
"""As an installed brahma starts: its bytecode cached (a shell that forbids writing it would time compiling every module)."""


def one_run() -> float:
    with tempfile.TemporaryDirectory() as state_dir:
        command = [sys.executable, "-m", "console.app", "run", str(ROOT / "sample_configs" / "canary.yaml"), "--headless", "--fast", "--state-dir", state_dir]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, env=ENV, timeout=120)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the healthy canary exited {result.returncode}")
    return elapsed


def main() -> None:
    one_run()  # the first start writes the bytecode: not timed
    times = [one_run() for _ in range(RUNS)]
    print(f"BENCH headless_fast_canary_wall_s {statistics.median(times):.3f} s")
    print(f"BENCH headless_fast_canary_wall_max_s {max(times):.3f} s")
    print(f"bench_headless: {' '.join(f'{t:.2f}' for t in times)} s; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
