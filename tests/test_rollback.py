"""A rollback is `rolled_back` only once the target reads back stable serving everything; until then it
stays open (rollback_failed), is retried for as long as its controller lives, and a stop says so (exit 5)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
from pathlib import Path

import pytest

from console.app.exits import EXIT_ROLLBACK_UNVERIFIED
from console.app.wiring import RunOptions, build_rollout
from console.atomic import atomic_write
from console.controller.clock import VirtualClock
from console.controller.rollback_pacing import MAX_RETRY_S, RETOLD_EVERY_S, RollbackPacing
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state_dir import RolloutFiles
from console.rollout import Rollout
from console.sim import target as sim_target
from console.sim.target import SimTarget
from console.targets.base import TargetError
from tests.conftest import SAMPLES, sim_controller

FLAG = "new-checkout-flow"
"""The sample canary's flag marked disable_on_rollback."""


class FailingSaves:
    """The simulator's atomic_write, failing with EACCES `failures` times once armed (a state dir gone read-only)."""

    def __init__(self, failures: int, armed: bool = False):
        self.left, self.armed = failures, armed

    def __call__(self, path: Path, data: bytes) -> None:
        if self.armed and self.left > 0:
            self.left -= 1
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        atomic_write(path, data)


def saved(state_file: Path) -> dict:
    return json.loads(state_file.read_text())


async def test_a_sim_target_whose_save_fails_changes_nothing_and_a_retry_rolls_back(tmp_path, monkeypatch):
    state_file = tmp_path / "r.sim.json"
    target = SimTarget("canary", "r/app:2", "r/app:1", 10, state_file)
    before, _ = await target.prepare()
    await target.set_weight(5)
    monkeypatch.setattr(sim_target, "atomic_write", FailingSaves(2, armed=True))
    for mutation in (target.rollback(before), target.set_weight(25)):
        with pytest.raises(PermissionError):
            await mutation
    assert (target.cluster.weight, target.cluster.new_deployed) == (5, True), "memory is what the file says"
    assert saved(state_file)["weight"] == 5
    read_back = await target.read_back_rollback(before)
    assert not read_back.verified and "serving 5%" in read_back.problems[0]
    assert await target.rollback(before), "the retry rolls back (it found 'already rolled back' before)"
    assert (await target.read_back_rollback(before)).verified
    assert (saved(state_file)["weight"], saved(state_file)["new_deployed"]) == (0, False)


def error_spike_rollout(tmp_path: Path) -> Rollout:
    """The sample canary with its disable_on_rollback flag, on the simulator's error spike, virtual wall time."""
    from console.plan import load_plan

    options = RunOptions(fast=True, state_dir=tmp_path, scenario="error-spike")
    rollout = build_rollout(load_plan(SAMPLES / "canary.yaml"), options, "tester@host")
    rollout.controller.wall_clock = VirtualClock()
    return rollout


@pytest.mark.parametrize("failures", [1, 3, 12])
async def test_a_rollback_whose_save_fails_is_never_rolled_back_until_the_saved_state_says_so(tmp_path, monkeypatch, failures):
    saves = FailingSaves(failures)
    monkeypatch.setattr(sim_target, "atomic_write", saves)
    rollout = error_spike_rollout(tmp_path)
    controller = rollout.controller
    state_file = RolloutFiles.of_journal(controller.journal.path).sim_state
    flag_when_first_failed: list[bool] = []

    def watch(event: ev.Event) -> None:
        if isinstance(event, ev.StageStarted) and event.stage == 1:
            rollout.flags.store.enable(FLAG, actor="captain@laptop", reason="on for the canary's users")
        if isinstance(event, ev.RollbackStarted):
            assert rollout.flags.store.get(FLAG).enabled
            saves.armed = True
        if isinstance(event, ev.RollbackFailed) and not flag_when_first_failed:
            assert saved(state_file)["weight"] > 0, "the target really failed"
            flag_when_first_failed.append(rollout.flags.store.get(FLAG).enabled)
        if isinstance(event, ev.RolledBack):
            assert (saved(state_file)["weight"], saved(state_file)["new_deployed"]) == (0, False), "rolled_back while the canary serves"

    controller.subscribe(watch)
    assert await controller.run() == "rolled_back"
    journal = list(read_events(controller.journal.path))
    failed = [e for e in journal if isinstance(e, ev.RollbackFailed)]
    assert flag_when_first_failed == [False], "the flags went off while the target still failed"
    assert failed[0].reason == "rollback" and "Permission denied" in failed[0].detail and "serving 25%" in failed[0].detail
    assert (failed[0].attempts, failed[0].since_s, failed[0].retry_in_s) == (1, 0.0, 1.0)
    assert len(failed) == 1 + (failures >= 10), "journaled at the first failure, then once a minute, not at every attempt"
    names = [e.name for e in journal]
    assert names.count("rolled_back") == 1 and names.index("rollback_failed") < names.index("rolled_back")
    assert "saved state: stable registry.example.com/checkout:previous, new version not deployed" == journal[-1].read_back
    assert rollout.flags.store.get(FLAG).enabled is False
    assert not controller.state.rollback_failure


@pytest.mark.parametrize(
    ("failures", "backoff_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, MAX_RETRY_S), (40, MAX_RETRY_S)],
)
def test_retries_back_off_to_ten_seconds_and_stay_there(failures, backoff_s):
    pacing = RollbackPacing()
    for _ in range(failures):
        pacing.failed(0.0, "rollback", "unreachable")
    assert pacing.backoff_s == backoff_s and pacing.next_at == backoff_s
    pacing.retry_now()
    assert pacing.due(0.0) and pacing.failed(0.0, "rollback", "unreachable") is False and pacing.backoff_s == 1.0


@pytest.mark.parametrize(
    ("told_at", "now", "failure", "news"),
    [
        (None, 0.0, ("rollback", "unreachable"), True),
        (0.0, 59.0, ("rollback", "unreachable"), False),
        (0.0, RETOLD_EVERY_S, ("rollback", "unreachable"), True),
        (0.0, 1.0, ("rollback", "forbidden"), True),
        (0.0, 1.0, ("not_verified", "unreachable"), True),
    ],
)
def test_a_failure_is_journaled_when_it_is_news_or_a_minute_old(told_at, now, failure, news):
    pacing = RollbackPacing(told_at=told_at, told=("rollback", "unreachable") if told_at is not None else None)
    assert pacing.failed(now, *failure) is news


class BrokenRollbackTarget:
    """A sim target whose rollback fails (an API out of reach) until `fixed`; records the wall time of each attempt."""

    def __init__(self, inner: SimTarget, wall: VirtualClock):
        self.inner, self.wall = inner, wall
        self.cluster = inner.cluster
        self.fixed = False
        self.attempts: list[float] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def rollback(self, before):
        self.attempts.append(self.wall.now())
        if not self.fixed:
            raise TargetError("the Kubernetes API at https://127.0.0.1:6443 is unreachable: Connection refused")
        return await self.inner.rollback(before)


def broken_rollback(canary_plan, tmp_path: Path, wall: VirtualClock):
    controller = sim_controller(canary_plan, tmp_path, "error-spike", wall_clock=wall)
    target = controller.target = BrokenRollbackTarget(controller.target, wall)
    return controller, target


async def test_a_rollback_is_retried_for_as_long_as_the_controller_lives_and_a_stop_exits_5(canary_plan, tmp_path):
    controller, target = broken_rollback(canary_plan, tmp_path, VirtualClock())
    controller.subscribe(lambda e: controller.stop() if len(target.attempts) >= 400 else None)
    assert await controller.run() == "rolling_back"
    gaps = [b - a for a, b in zip(target.attempts, target.attempts[1:])]
    assert gaps[:6] == [1, 2, 4, 8, 10, 10] and set(gaps[4:]) == {MAX_RETRY_S}, "backoff capped at 10 s, never given up"
    failed = [e for e in read_events(controller.journal.path) if isinstance(e, ev.RollbackFailed)]
    hours = target.attempts[-1] / 3600
    assert len(failed) <= hours * 60 + 2, "journaled at most once a minute"
    assert [e.since_s for e in failed[:3]] == [0.0, 65.0, 125.0]
    assert failed[-1].attempts >= 399 and "unreachable" in failed[-1].detail
    assert controller.state.phase == "rolling_back" and controller.target.cluster.weight > 0
    assert not [e for e in read_events(controller.journal.path) if isinstance(e, ev.RolledBack)]


async def test_an_operators_rollback_tries_the_open_rollback_again_at_once(canary_plan, tmp_path):
    wall = VirtualClock(stop_at=100.0)  # wall time stands still: only a command can bring the next attempt
    controller, target = broken_rollback(canary_plan, tmp_path, wall)
    running = asyncio.create_task(controller.run())
    while wall.now() < 100.0:
        await asyncio.sleep(0)
    held = len(target.attempts)
    target.fixed = True
    controller.submit("rollback", "captain@laptop")
    assert await asyncio.wait_for(running, 10) == "rolled_back"
    assert target.attempts[held:] == [100.0], "the next attempt came with the command, not 30 s later"
    names = [e.name for e in read_events(controller.journal.path)]
    assert names.count("rollback_started") == 1 and names[-3:] == ["command", "rollback_verified", "rolled_back"]


async def test_a_stopped_open_rollback_is_listed_and_taken_up_by_the_next_controller(canary_plan, tmp_path, capsys):
    from console.app.supervision import list_state_dir

    first, target = broken_rollback(canary_plan, tmp_path, VirtualClock())
    first.subscribe(lambda e: first.stop() if isinstance(e, ev.RollbackFailed) else None)
    assert await first.run() == "rolling_back"
    first.journal.close()
    list_state_dir(tmp_path)
    assert "rolling_back" in capsys.readouterr().out

    second = sim_controller(canary_plan, tmp_path, "error-spike", wall_clock=VirtualClock())
    assert second.state.rollback_failure is not None, "the console shows the open rollback from the journal"
    assert await second.run() == "rolled_back"
    names = [e.name for e in read_events(second.journal.path)]
    assert names.count("rollback_started") == 1
    assert names[names.index("rollback_failed") :] == ["rollback_failed", "supervision_resumed", "rollback_verified", "rolled_back"]
    assert second.target.cluster.weight == 0


async def test_a_headless_run_stopped_by_sigterm_during_an_open_rollback_exits_5(canary_plan, tmp_path, capsys):
    from console.app.headless import run_headless

    controller, _ = broken_rollback(canary_plan, tmp_path, VirtualClock())
    controller.subscribe(lambda e: os.kill(os.getpid(), signal.SIGTERM) if isinstance(e, ev.RollbackFailed) else None)
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        assert await run_headless(Rollout(controller), json_lines=False, out=stream) == EXIT_ROLLBACK_UNVERIFIED
    assert "ROLLBACK NOT VERIFIED" in out.read_text()
    assert "not verified on the target" in capsys.readouterr().err
    report = controller.journal.path.with_suffix(".md").read_text()
    assert report.startswith("# Release checkout-2.4.1: ROLLBACK NOT VERIFIED")


async def test_a_detached_controller_stays_while_the_rollback_is_open_and_sigterm_exits_5(canary_plan, tmp_path, capsys):
    from console.app.supervision import serve

    controller, target = broken_rollback(canary_plan, tmp_path, VirtualClock())
    # Attended and nobody attached: a finished rollout's controller would leave now; an open rollback's stays.
    controller.subscribe(lambda e: os.kill(os.getpid(), signal.SIGTERM) if isinstance(e, ev.RollbackFailed) and e.since_s >= 120 else None)
    served = serve(Rollout(controller), RolloutFiles(tmp_path, canary_plan.name), attended=True)
    assert await asyncio.wait_for(served, 30) == EXIT_ROLLBACK_UNVERIFIED
    assert len(target.attempts) > 10 and controller.state.phase == "rolling_back"
    assert "rollback of checkout-2.4.1 not verified on the target" in capsys.readouterr().err
