"""The fsyncs of a headless canary on the simulator in virtual time (--fast): how many, and their share of the run.

The run happens in a child process whose os.fsync is wrapped to count and time every call (the journal's,
the simulator's state file, the report), so the figures are the whole run's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5

COUNTED_RUN = """
import json, os, sys, time
calls, spent = 0, 0.0
real_fsync = os.fsync
def counted_fsync(fd):
    global calls, spent
    began = time.perf_counter()
    try:
        real_fsync(fd)
    finally:
        calls, spent = calls + 1, spent + time.perf_counter() - began
os.fsync = counted_fsync
began = time.perf_counter()
from console.app.cli import main
code = main(sys.argv[1:])
figures = {"code": code, "fsyncs": calls, "fsync_s": spent, "wall_s": time.perf_counter() - began}
print(json.dumps(figures), file=sys.stderr)
"""


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as state_dir:
        plan = ROOT / "sample_configs" / "canary.yaml"
        command = [sys.executable, "-c", COUNTED_RUN, "run", str(plan), "--headless", "--fast", "--state-dir", state_dir]
        result = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    figures = json.loads(result.stderr.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise SystemExit(f"the healthy canary exited {figures['code']}")
    return figures


def main() -> None:
    runs = [one_run() for _ in range(RUNS)]
    print(f"BENCH headless_fast_canary_fsyncs {statistics.median(r['fsyncs'] for r in runs):.0f} count")
    print(f"BENCH headless_fast_canary_fsync_s {statistics.median(r['fsync_s'] for r in runs):.3f} s")
    print(f"BENCH headless_fast_canary_run_s {statistics.median(r['wall_s'] for r in runs):.3f} s")


if __name__ == "__main__":
    main()
