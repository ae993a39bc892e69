"""BENCH calibrate_week_wall_s: `brahma calibrate` of the default canary over a week of a real Prometheus's history,
a start every 5 minutes: 2,016 A/A replays of the 1h45m canary (goal: under 60 s on the 2-core machine).

The plan is sample_configs/minimal.yaml (5% → 25% → 50% → 100%, 10 s samples: 630 a replay that promotes). The
history (testbed/history.py: 15 s scrapes, healthy, 100 requests/s a track) is a week and the last replays' span,
served from promtool blocks by a Prometheus of its own; the blocks are cached (~/.cache/brahma/history, or
BRAHMA_HISTORY_CACHE): a week takes about 40 s to draw and convert the first time of a day.

All 2,016 replays are run and the week's wall time is measured, fetch included (the replays keep no journal and
share their samples and those samples' judgements, so a replay costs about 0.08 s of CPU, almost all of it the
controller's fold and the sequential judge at each of its 630 samples). Beside it: the fetch's wall time, the
range queries, and the mean CPU time of a replay.

    python bench/bench_calibrate.py
"""

from __future__ import annotations

import json
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

PLAN = ROOT / "sample_configs" / "minimal.yaml"
WEEK_S = 7 * DAY_S
EVERY_S = 300.0
STARTS = int(WEEK_S / EVERY_S)
"""2,016."""
SPAN_S = 2.5 * 3600
"""After the last start: the plan's 1h45m, its pause_timeout, and the first sample's lead."""
COMMAND_TIMEOUT_S = 3600.0


def main() -> int:
    reason = prometheus_missing() or promtool_missing()
    if reason:
        print(f"bench_calibrate: skipped: {reason}", file=sys.stderr)
        return 1 if prometheus_required() else 0
    # The week before yesterday: the same blocks all day, so the cache serves every run but the day's first.
    start = (time.time() // DAY_S - 8) * DAY_S
    history = History(start, start + WEEK_S + SPAN_S)
    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as work_dir:
        began = time.perf_counter()
        with serving_history(history, Path(work_dir), default_cache_dir()) as (server, _):
            served_s = time.perf_counter() - began
            argv = [sys.executable, "-m", "console.app", "calibrate", str(PLAN), "--prometheus", server.url, "--json"]
            to = start + 300 + WEEK_S
            argv += ["--from", format_wall(start + 300), "--to", format_wall(to), "--every", f"{EVERY_S:g}s"]
            began = time.perf_counter()
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
            wall_s = time.perf_counter() - began
    if done.returncode != 0:
        print(f"bench_calibrate: calibrate exited {done.returncode}:\n{done.stderr}{done.stdout[-2000:]}", file=sys.stderr)
        return 1
    summary = json.loads(done.stdout)
    cost, replays = summary["cost"], summary["replays"]["started"]
    if replays != STARTS:
        print(f"bench_calibrate: {replays} replays run, not the week's {STARTS}", file=sys.stderr)
        return 1
    fetch_s = cost["fetch_wall_s"]
    print(f"BENCH calibrate_week_wall_s {wall_s:.1f} s ({replays} replays, fetch included; goal < 60 s)")
    print(f"BENCH calibrate_workers {cost['workers']} workers")
    print(f"BENCH calibrate_replay_cpu_s {cost['replay_cpu_s_mean']:.3f} s (mean per replay)")
    print(f"BENCH calibrate_fetch_wall_s {fetch_s:.2f} s ({cost['range_queries']} range queries for every replay)")
    print(f"BENCH calibrate_history_ready_s {served_s:.1f} s (the week's blocks made or taken from the cache, and Prometheus started)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
