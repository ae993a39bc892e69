"""The console through a real terminal (tmux at 80x24): first frame (`brahma run`, which starts the
controller, then `brahma attach` to the running one, as after an SSH drop), key to confirm dialog, bytes
written to the terminal and the console's CPU while a stage runs with one sample a second."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.tmux_terminal import TmuxTerminal  # noqa: E402

PLAN = ROOT / "sample_configs" / "canary.yaml"
SPEED = 10
"""The plan samples every 10 s of rollout time: at 10x that is one sample a second."""
MEASURE_S = 20
CONFIRM_TRIES = 10


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        output = Path(state_dir) / "terminal-output"
        argv = [sys.executable, "-m", "console.cli", "run", str(PLAN), "--target", "sim", "--speed", str(SPEED), "--state-dir", state_dir]
        started = time.perf_counter()
        with TmuxTerminal(argv, 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"}) as terminal:
            terminal.wait_for("ROLL BACK", timeout_s=60)
            terminal.wait_for("RUNNING", timeout_s=60)
            first_frame = time.perf_counter() - started

            latencies = []
            for _ in range(CONFIRM_TRIES):
                pressed = time.perf_counter()
                terminal.press("C-r")
                terminal.wait_for("Roll back checkout-2.4.1?", timeout_s=10, step_s=0.002)
                latencies.append((time.perf_counter() - pressed) * 1000)
                terminal.press("Escape")
                terminal.wait_for("RUNNING", timeout_s=10)

            pid = terminal.pid()
            terminal.pipe_output(output)
            cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
            time.sleep(MEASURE_S)
            cpu_used, wall = cpu_seconds(pid) - cpu_before, time.perf_counter() - wall_before
            written = output.stat().st_size if output.exists() else 0
            terminal.press("q")  # detaches: the controller goes on, as after an SSH drop
            terminal.wait_closed()
        attach = [sys.executable, "-m", "console.cli", "attach", "--state-dir", state_dir]
        started = time.perf_counter()
        with TmuxTerminal(attach, 80, 24, cwd=ROOT, env={"TERM": "xterm-256color"}) as terminal:
            terminal.wait_for("RUNNING", timeout_s=60)
            attach_frame = time.perf_counter() - started
            terminal.press("C-r", "Enter")
            terminal.wait_for("ROLLED BACK", timeout_s=10)
            terminal.press("q")
            terminal.wait_closed()
    print(f"BENCH tui_first_frame_s {first_frame:.3f} s")
    print(f"BENCH tui_attach_first_frame_s {attach_frame:.3f} s")
    print(f"BENCH tui_confirm_latency_ms {statistics.median(latencies):.1f} ms")
    print(f"BENCH tui_confirm_latency_max_ms {max(latencies):.1f} ms")
    print(f"BENCH tui_bytes_per_s {written / wall:.0f} B/s")
    print(f"BENCH tui_cpu_percent {cpu_used / wall * 100:.2f} %")


if __name__ == "__main__":
    main()
