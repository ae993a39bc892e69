"""The console through a real terminal (tmux at 80x24), as a person sees it: from the process's start to
the first frame that shows the rollout. `brahma run` (which starts the controller), `brahma attach` to
that running controller (as after an SSH drop), and a bare Textual app (bare_textual.py) as the
yardstick, measured the same way and interleaved in each round so that the machine's load falls on all
three alike; medians of ROUNDS. Then, in one more session: key to confirm dialog, bytes written to the
terminal and the console's CPU while a stage runs with one sample a second."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bare_textual import SHOWN  # noqa: E402
from testbed.tmux_terminal import TmuxTerminal  # noqa: E402

PLAN = ROOT / "sample_configs" / "canary.yaml"
SPEED = 10
"""The plan samples every 10 s of rollout time: at 10x that is one sample a second."""
ROUNDS = 5
MEASURE_S = 20
CONFIRM_TRIES = 10
FRAME_POLL_S = 0.01
ENV = {"TERM": "xterm-256color", "PYTHONDONTWRITEBYTECODE": ""}
"""As an installed brahma starts: its bytecode cached (a shell that forbids writing it would time compiling every module)."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def console(*args: str) -> list[str]:
    return [sys.executable, "-m", "console.app", *args]


def run_console(state_dir: str) -> list[str]:
    return console("run", str(PLAN), "--target", "sim", "--speed", str(SPEED), "--state-dir", state_dir)


def opened(argv: list[str], shown: str) -> tuple[TmuxTerminal, float]:
    """A terminal running `argv`, and the seconds from starting it to `shown` on its screen."""
    started = time.perf_counter()
    terminal = TmuxTerminal(argv, 80, 24, cwd=ROOT, env=ENV)
    terminal.wait_for(shown, timeout_s=60, step_s=FRAME_POLL_S)
    return terminal, time.perf_counter() - started


def roll_back_and_quit(terminal: TmuxTerminal) -> None:
    """Ends the rollout, so that no controller outlives its round."""
    terminal.press("C-r")
    terminal.wait_for("Roll back (Enter / y)", timeout_s=10)
    terminal.press("y")
    terminal.wait_for("ROLLED BACK", timeout_s=20)
    terminal.press("q")
    terminal.wait_closed()


def one_round() -> tuple[float, float, float]:
    """(bare, run, attach) first frames, in seconds."""
    bare_app, bare = opened([sys.executable, str(ROOT / "bench" / "bare_textual.py")], SHOWN)
    with bare_app:
        bare_app.press("C-q")
        bare_app.wait_closed()
    with tempfile.TemporaryDirectory() as state_dir:
        running, run = opened(run_console(state_dir), "RUNNING")
        with running:
            running.press("q")  # detaches: the controller goes on, as after an SSH drop
            running.wait_closed()
        attached, attach = opened(console("attach", "--state-dir", state_dir), "RUNNING")
        with attached:
            roll_back_and_quit(attached)
    return bare, run, attach


def responsiveness() -> tuple[list[float], float, float]:
    """Key-to-dialog latencies (ms), bytes a second to the terminal and the console's CPU percent."""
    with tempfile.TemporaryDirectory() as state_dir:
        output = Path(state_dir) / "terminal-output"
        terminal, _ = opened(run_console(state_dir), "RUNNING")
        with terminal:
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
            roll_back_and_quit(terminal)
    return latencies, written / wall, cpu_used / wall * 100


def main() -> None:
    one_round()  # the first start of each program writes its bytecode: not timed
    bare, run, attach = zip(*(one_round() for _ in range(ROUNDS)))
    latencies, bytes_per_s, cpu_percent = responsiveness()
    print(f"BENCH tui_first_frame_s {statistics.median(run):.3f} s")
    print(f"BENCH tui_attach_first_frame_s {statistics.median(attach):.3f} s")
    print(f"BENCH tui_bare_textual_first_frame_s {statistics.median(bare):.3f} s")
    print(f"BENCH tui_first_frame_vs_bare_textual {statistics.median(run) / statistics.median(bare):.2f} x")
    print(f"BENCH tui_attach_first_frame_vs_bare_textual {statistics.median(attach) / statistics.median(bare):.2f} x")
    print(f"BENCH tui_confirm_latency_ms {statistics.median(latencies):.1f} ms")
    print(f"BENCH tui_confirm_latency_max_ms {max(latencies):.1f} ms")
    print(f"BENCH tui_bytes_per_s {bytes_per_s:.0f} B/s")
    print(f"BENCH tui_cpu_percent {cpu_percent:.2f} %")
    print(
        f"bench_tui: first frames (s) run {' '.join(f'{t:.2f}' for t in run)}; attach {' '.join(f'{t:.2f}' for t in attach)}; "
        f"bare {' '.join(f'{t:.2f}' for t in bare)}; load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
