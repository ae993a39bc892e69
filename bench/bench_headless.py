"""The whole headless canary on the simulator in virtual time: the wall time of the process."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7


def one_run() -> float:
    with tempfile.TemporaryDirectory() as state_dir:
        command = [sys.executable, "-m", "console.cli", "run", str(ROOT / "sample_configs" / "canary.yaml"), "--headless", "--fast", "--state-dir", state_dir]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=120)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the healthy canary exited {result.returncode}")
    return elapsed


def main() -> None:
    times = [one_run() for _ in range(RUNS)]
    print(f"BENCH headless_fast_canary_wall_s {statistics.median(times):.3f} s")
    print(f"BENCH headless_fast_canary_wall_max_s {max(times):.3f} s")


if __name__ == "__main__":
    main()
