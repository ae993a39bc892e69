"""A rollback is done only once the target has it: the simulator's state changes only once it is saved."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from console.atomic import atomic_write
from console.sim import target as sim_target
from console.sim.target import SimTarget


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
