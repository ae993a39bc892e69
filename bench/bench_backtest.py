"""BENCH backtest_full_canary_wall_s: `brahma backtest` of the default canary over a real Prometheus's history.

The plan is sample_configs/minimal.yaml: 5% → 25% → 50% → 100%, 10m/15m/20m windows and 60m of monitoring
(1h45m), 10 s samples, every default metric history has (error_rate, success_rate, latency p50/p95/p99):
630 samples. The history (testbed/history.py: 15 s scrapes of both tracks, healthy, 100 requests/s each) is served from promtool
blocks by a Prometheus of its own; the blocks are cached (~/.cache/brahma/history, or BRAHMA_HISTORY_CACHE).
The figure is the whole command as a person runs it, from process start to its exit (promoted, 0): Python's
start-up, the range queries that fetch the history ahead, and the replay. The median of RUNS runs; its CPU
time beside it (the machine is shared: the CPU figure is the steadier one).

    python bench/bench_backtest.py
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.backtest.times import format_wall  # noqa: E402
from testbed.history import DAY_S, History, default_cache_dir, promtool_missing, serving_history  # noqa: E402
from testbed.prometheus_server import prometheus_missing, prometheus_required  # noqa: E402

RUNS = 3
PLAN = ROOT / "sample_configs" / "minimal.yaml"
SPAN_S = 2.5 * 3600
"""The plan's 1h45m, its pause_timeout (a replay may run that much longer) and the first sample's lead."""
COMMAND_TIMEOUT_S = 120.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    reason = prometheus_missing() or promtool_missing()
    if reason:
        print(f"bench_backtest: skipped: {reason}", file=sys.stderr)
        return 1 if prometheus_required() else 0
    # Yesterday from midnight: the same blocks all day, so the cache serves every run but the day's first.
    start = (time.time() // DAY_S - 1) * DAY_S
    history = History(start, start + SPAN_S)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as work_dir:
        with serving_history(history, Path(work_dir), default_cache_dir()) as (server, _):
            argv = [sys.executable, "-m", "console.app", "backtest", str(PLAN), "--at", format_wall(start + 300), "--prometheus", server.url]
            for _ in range(RUNS):
                cpu_before, began = children_cpu_s(), time.perf_counter()
                done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
                walls.append(time.perf_counter() - began)
                cpus.append(children_cpu_s() - cpu_before)
                if done.returncode != 0:
                    print(f"bench_backtest: the backtest exited {done.returncode}, not 0 (promoted):\n{done.stderr}{done.stdout[-2000:]}", file=sys.stderr)
                    return 1
    print(f"BENCH backtest_full_canary_wall_s {statistics.median(walls):.3f} s")
    print(f"BENCH backtest_full_canary_cpu_s {statistics.median(cpus):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
