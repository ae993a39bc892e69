"""Crash safety: a run killed at any moment resumes at the same stage without shifting traffic twice."""

import asyncio
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.controller import events as ev
from console.controller.clock import VirtualClock
from console.controller.journal import Journal, JournalError, read_events
from tests.conftest import ROOT, SAMPLES, sim_controller

RUN = [sys.executable, "-m", "console.cli", "run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--json"]


def stage_starts(journal: Path) -> list[int]:
    return [e.stage for e in read_events(journal) if isinstance(e, ev.StageStarted)]


def kill_after_lines(state_dir: Path, lines: int) -> int:
    """Run, read `lines` events from stdout, then SIGKILL: returns how many were read."""
    process = subprocess.Popen(RUN + ["--state-dir", str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    read = 0
    try:
        while read < lines and process.stdout.readline():
            read += 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    return read


@pytest.mark.parametrize("seed", range(8))
def test_killed_run_resumes_at_the_same_stage_without_shifting_twice(tmp_path, seed):
    lines = random.Random(seed).randrange(2, 640)
    kill_after_lines(tmp_path, lines)
    journal = tmp_path / "checkout-2.4.1.jsonl"
    before = list(read_events(journal))
    assert before, "the killed run left a journal that loads"

    result = subprocess.run(RUN + ["--state-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    last_stage = max((e.stage for e in before if isinstance(e, ev.StageStarted)), default=None)
    if last_stage is not None and not any(isinstance(e, ev.Completed) for e in before):
        assert f"resuming rollout checkout-2.4.1 at stage {last_stage + 1}" in result.stderr
        first_new = json.loads(result.stdout.splitlines()[0])
        assert first_new["event"] != "rollout_started", "resumed, not started again"
    assert stage_starts(journal) == [0, 1, 2, 3]
    changes = json.loads((tmp_path / "checkout-2.4.1.sim.json").read_text())["changes"]
    assert [c["weight"] for c in changes] == [5, 25, 50, 100], "every traffic shift happened exactly once"


async def test_a_journal_cut_at_any_byte_loads_and_resumes(canary_plan, tmp_path):
    reference = sim_controller(canary_plan, tmp_path / "reference", "latency-creep")
    await reference.run()
    reference.journal.close()
    content = reference.journal.path.read_bytes()
    rng = random.Random(42)
    for cut in sorted(rng.sample(range(1, len(content)), 25)):
        state_dir = tmp_path / f"cut{cut}"
        state_dir.mkdir()
        (state_dir / reference.journal.path.name).write_bytes(content[:cut])
        controller = sim_controller(canary_plan, state_dir, "latency-creep")
        assert await controller.run() == 3
        controller.journal.close()
        starts = stage_starts(controller.journal.path)
        assert starts == sorted(set(starts)), f"cut at byte {cut}: a stage started twice: {starts}"
        rollbacks = [e for e in read_events(controller.journal.path) if isinstance(e, ev.RolledBack)]
        assert len(rollbacks) == 1


def test_an_incomplete_last_line_is_dropped_and_appends_start_clean(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"event":"resumed","t":1,"ts":"x"}\n{"event":"paus')
    journal = Journal(path)
    journal.append(ev.Resumed(2.0))
    journal.close()
    assert [e.t for e in read_events(path)] == [1, 2]


def test_a_broken_line_in_the_middle_is_corruption_with_its_line_number(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"event":"resumed","t":1,"ts":"x"}\nnot json\n{"event":"resumed","t":2,"ts":"x"}\n')
    with pytest.raises(JournalError, match=r"r.jsonl:2: not a journal event"):
        list(read_events(path))
    result = subprocess.run([sys.executable, "-m", "console.cli", "report", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "r.jsonl:2" in result.stderr and "Traceback" not in result.stderr


def test_a_finished_rollout_is_archived_and_the_release_runs_again(tmp_path):
    for _ in range(2):
        result = subprocess.run(RUN + ["--state-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0
    assert len(list(tmp_path.glob("checkout-2.4.1.*.jsonl"))) == 1
    assert stage_starts(tmp_path / "checkout-2.4.1.jsonl") == [0, 1, 2, 3]


def age_last_event(journal: Path, seconds: float) -> None:
    """Make the journal's last event `seconds` older: the controller was gone that long."""
    from datetime import datetime, timedelta

    lines = journal.read_text().splitlines()
    last = json.loads(lines[-1])
    last["ts"] = (datetime.fromisoformat(last["ts"]) - timedelta(seconds=seconds)).isoformat()
    journal.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")


class WallSpeedClock(VirtualClock):
    """Virtual time for the run, but a gap in wall time counts as rollout time (as a real clock's does)."""

    speed = 1.0


@pytest.mark.parametrize(("gone_s", "restarted"), [(300, True), (2, False)])
async def test_a_controller_that_was_gone_says_so_and_restarts_a_window_it_did_not_watch(canary_plan, tmp_path, gone_s, restarted):
    first = sim_controller(canary_plan, tmp_path, clock=VirtualClock(stop_at=185))
    task = asyncio.create_task(first.run())
    while first.now() < 185:
        await asyncio.sleep(0)
    first.stop()
    await task
    first.journal.close()
    journal = first.journal.path
    last_t = list(read_events(journal))[-1].t
    age_last_event(journal, gone_s)

    second = sim_controller(canary_plan, tmp_path, clock=WallSpeedClock(stop_at=last_t + gone_s + 60))
    task = asyncio.create_task(second.run())
    while second.now() < last_t + gone_s + 60:
        await asyncio.sleep(0)
    second.stop()
    await task
    resumed = [e for e in read_events(journal) if isinstance(e, ev.SupervisionResumed)]
    assert len(resumed) == 1 and resumed[0].window_restarted is restarted
    assert resumed[0].unwatched_s == pytest.approx(gone_s, abs=1.0)
    assert (second.state.window_started_t == resumed[0].t) is restarted
    assert second.state.phase == "running", "a gap is not a failure: the stage goes on"
