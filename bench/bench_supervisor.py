"""The detached controller: how fast it acts alone after the console's terminal is dropped, and whether its
memory stays bounded over a 24-hour monitoring window sampled every second (virtual time)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.supervisor_support import ssh_drop_then_fault  # noqa: E402

DAY_S = 86_400
RSS_TIMEOUT_S = 600
PLAN_24H = """\
name: monitor-24h
app: checkout
image: registry.example.com/checkout:2.4.1
interval: 1s
stages:
  - name: monitoring
    weight: 100
    observe: 24h
"""


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def supervise_a_day(state_dir: str) -> None:
    """In the child: the supervisor's own server and controller over 24h of virtual time; prints RSS by hour mark."""
    from console.controller import events as ev
    from console.plan import load_plan_text
    from console.runner import RunOptions, build_rollout
    from console.supervisor.files import RolloutFiles
    from console.supervisor.server import SupervisorServer

    plan = load_plan_text(PLAN_24H, "monitor-24h.yaml")
    rollout = build_rollout(plan, RunOptions(fast=True, state_dir=Path(state_dir)), "bench@host")
    marks = {3600: "1h", DAY_S: "24h"}
    rss: dict[str, float] = {}

    def record(event: ev.Event) -> None:
        for at, label in marks.items():
            if label not in rss and isinstance(event, ev.SampleTaken) and event.t >= at - 1e-6:
                rss[label] = resident_mb()

    rollout.controller.subscribe(record)
    with open(Path(state_dir) / "supervisor.log", "w") as log:
        sys.stdout = log  # the narration goes to the log, as in the detached process
        code = asyncio.run(SupervisorServer(rollout, RolloutFiles(Path(state_dir), plan.name)).run())
        sys.stdout = sys.__stdout__
    print(json.dumps({"exit": code, **rss}))


def controller_rss() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as state_dir:
        result = subprocess.run([sys.executable, __file__, "--day", state_dir], cwd=ROOT, capture_output=True, text=True, timeout=RSS_TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"the 24h supervisor failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.splitlines()[-1])
    if figures.pop("exit") != 0:
        raise SystemExit("the 24h monitoring window did not complete")
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        print(f"BENCH ssh_drop_fault_to_rollback_s {ssh_drop_then_fault(Path(state_dir)):.3f} s")
    rss = controller_rss()
    print(f"BENCH controller_rss_mb_1h {rss['1h']:.1f} MB")
    print(f"BENCH controller_rss_mb_24h {rss['24h']:.1f} MB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--day"]:
        supervise_a_day(sys.argv[2])
    else:
        main()
