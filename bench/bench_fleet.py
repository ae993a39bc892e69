"""The fleet console through a real terminal (tmux at 80x24): from `brahma fleet` starting to the first frame
that shows its 50 rollouts, in 5 state dirs. The rollouts are one recorded run of the sample canary (1 s
samples would be a day's worth; this is the plan's own 10 s), cut at different points so that they stand in
every phase; medians of ROUNDS, interleaved with a bare Textual app as the yardstick."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bare_textual import SHOWN  # noqa: E402
from bench.bench_tui import ENV, console, opened  # noqa: E402

PLAN = ROOT / "sample_configs" / "canary.yaml"
STATE_DIRS = 5
ROLLOUTS = 50
ROUNDS = 5
SHOWN_FLEET = f"{ROLLOUTS} of {ROLLOUTS} rollouts"


def recorded_journal(directory: Path) -> list[str]:
    """The lines of a headless run of the sample canary, in virtual time."""
    argv = [*console("run", str(PLAN), "--headless", "--fast", "--state-dir", str(directory))]
    subprocess.run(argv, cwd=ROOT, env=ENV | {"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=300)
    return next(directory.glob("*.jsonl")).read_text().splitlines()


def make_fleet(root: Path, lines: list[str]) -> list[Path]:
    """ROLLOUTS journals over STATE_DIRS state dirs, each the recorded run cut after a different number of lines."""
    state_dirs = [root / f"dir{index}" for index in range(STATE_DIRS)]
    for state_dir in state_dirs:
        state_dir.mkdir()
    for number in range(ROLLOUTS):
        name = f"release-{number:02d}"
        cut = 2 + (len(lines) - 2) * (number + 1) // ROLLOUTS
        kept = [json.loads(line) for line in lines[:cut]]
        kept[0]["rollout"] = name
        text = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in kept)  # as the journal writes it
        (state_dirs[number % STATE_DIRS] / f"{name}.jsonl").write_text(text)
    return state_dirs


def fleet_argv(state_dirs: list[Path]) -> list[str]:
    return console("fleet", *(word for state_dir in state_dirs for word in ("--state-dir", str(state_dir))))


def one_round(state_dirs: list[Path]) -> tuple[float, float]:
    """(bare, fleet) first frames, in seconds."""
    bare_app, bare = opened([sys.executable, str(ROOT / "bench" / "bare_textual.py")], SHOWN)
    with bare_app:
        bare_app.press("C-q")
        bare_app.wait_closed()
    fleet, first_frame = opened(fleet_argv(state_dirs), SHOWN_FLEET)
    with fleet:
        fleet.press("q")
        fleet.wait_closed()
    return bare, first_frame


def main() -> None:
    with tempfile.TemporaryDirectory() as recording, tempfile.TemporaryDirectory() as root:
        state_dirs = make_fleet(Path(root), recorded_journal(Path(recording)))
        one_round(state_dirs)  # the first start writes bytecode: not timed
        bare, fleet = zip(*(one_round(state_dirs) for _ in range(ROUNDS)))
    print(f"BENCH fleet_first_frame_s {statistics.median(fleet):.3f} s")
    print(f"BENCH fleet_first_frame_vs_bare_textual {statistics.median(fleet) / statistics.median(bare):.2f} x")
    print(f"bench_fleet: first frames (s) fleet {' '.join(f'{t:.2f}' for t in fleet)}; bare {' '.join(f'{t:.2f}' for t in bare)}", file=sys.stderr)


if __name__ == "__main__":
    main()
