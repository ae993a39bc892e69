"""Snapshots: the state from a snapshot and the journal's tail is the state the whole journal folds to, at
every position of the sample runs; a snapshot that does not fit its journal is ignored, said, and the whole
journal is read."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from console.journal import events as ev
from console.journal.journal import Position, read_events
from console.journal.snapshot import RecentEvents, resume, snapshot_path, state_from_plain, state_to_plain, write_snapshot
from console.journal.state import RolloutState, fold
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from tests.conftest import sim_controller

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PLANS = ("canary.yaml", "blue-green.yaml", "rolling.yaml", "minimal.yaml", "canary-gated.yaml", "payments.yaml")
SCENARIOS = ("healthy", "error-spike")


async def sample_run(plan_name: str, scenario: str, state_dir: Path, snapshot_every: int | None = None) -> Path:
    """The journal of a sample plan run headless on the simulator to its end, in virtual time (its snapshots
    every `snapshot_every` events, when given)."""
    plan = load_plan(ROOT / "sample_configs" / plan_name)
    controller = sim_controller(plan, state_dir, scenario, monotonic=lambda: 0.0)  # no snapshot is due by the clock
    if snapshot_every is not None:
        controller.snapshots.every_events = snapshot_every
    await controller.run()
    controller.journal.close()
    return controller.journal.path


def position(lines: list[bytes], covered: int) -> SimpleNamespace:
    """What write_snapshot reads of a journal that holds the first `covered` of `lines`."""
    return SimpleNamespace(position=Position(covered, 0, covered, sum(map(len, lines[:covered]))), first_line=lines[0], last_line=lines[covered - 1])


def snapshot_at(journal: Path, covered: int) -> RolloutState:
    """A snapshot of the journal's first `covered` events written beside it; the state it holds."""
    lines = journal.read_bytes().splitlines(keepends=True)
    events = list(read_events(journal))
    recent = RecentEvents()
    for number, event in enumerate(events[:covered]):
        recent.add(number, event)
    state = fold(events[:covered])
    write_snapshot(snapshot_path(journal), state, position(lines, covered), recent)  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("plan_name", SAMPLE_PLANS)
async def test_a_snapshot_and_the_tail_fold_to_the_whole_journal_s_state_at_every_position(plan_name, scenario, tmp_path):
    journal = await sample_run(plan_name, scenario, tmp_path)
    events = list(read_events(journal))
    whole = state_to_plain(fold(events))
    # At every position the snapshot's state reads back as one that folds on exactly as the original does:
    # so a snapshot at k and the events after it fold to the whole journal's state.
    state = RolloutState()
    for number, event in enumerate(events):
        taken_back = state_from_plain(json.loads(json.dumps(state_to_plain(state))))
        assert state_to_plain(taken_back) == state_to_plain(state), f"event {number}"
        state.apply(event)
        assert state_to_plain(taken_back.apply(event)) == state_to_plain(state), f"after event {number} ({event.name})"
    assert state_to_plain(state) == whole
    # And as files: a snapshot at the start, at each stage's start, in the middle and at the end, with the journal's tail.
    stage_starts = [n for n, e in enumerate(events) if isinstance(e, ev.StageStarted)]
    for covered in sorted({1, len(events) // 2, len(events), *stage_starts, *(n + 1 for n in stage_starts)} - {0}):
        snapshot_at(journal, covered)
        said: list[str] = []
        resumed = resume(journal, said.append)
        assert said == [] and resumed.snapshot_events == covered and resumed.events == len(events)
        assert state_to_plain(resumed.state) == whole, f"snapshot at event {covered}"


async def test_the_controller_writes_snapshots_and_a_resumed_controller_goes_on_from_one(canary_plan, tmp_path):
    journal = await sample_run("canary.yaml", "healthy", tmp_path)
    snapshot = json.loads(snapshot_path(journal).read_bytes())
    events = list(read_events(journal))
    assert snapshot["journal"]["events"] == len(events), "the last event (completed) is in the last snapshot"
    assert state_to_plain(resume(journal).state) == state_to_plain(fold(events))


async def test_a_long_run_is_snapshotted_every_so_many_events(tmp_path, monkeypatch):
    from console.journal import snapshot as snapshot_module

    covered: list[int] = []
    write = snapshot_module.write_snapshot
    monkeypatch.setattr(
        snapshot_module,
        "write_snapshot",
        lambda path, state, journal, recent, judge: (covered.append(journal.count), write(path, state, journal, recent, judge)),
    )
    journal = await sample_run("canary.yaml", "healthy", tmp_path, snapshot_every=50)
    total = len(list(read_events(journal)))
    assert total > 200
    assert all(b - a <= 50 for a, b in zip([0, *covered], covered, strict=False)) and covered[-1] == total


@pytest.fixture
async def snapshotted(tmp_path) -> Path:
    """A finished run's journal, its snapshot covering its first half."""
    journal = await sample_run("canary.yaml", "error-spike", tmp_path)
    snapshot_at(journal, len(list(read_events(journal))) // 2)
    return journal


def breaks(journal: Path, how: str) -> None:
    snapshot = snapshot_path(journal)
    if how == "corrupt":
        snapshot.write_bytes(snapshot.read_bytes()[:-40])
    elif how == "another version":
        content = json.loads(snapshot.read_bytes())
        del content["state"]["phase"]
        snapshot.write_text(json.dumps(content))
    elif how == "another journal":  # the same release run again: its first line (rollout_started) has another ts
        lines = journal.read_bytes().splitlines(keepends=True)
        first = json.loads(lines[0])
        first["ts"] = "2030-01-01T00:00:00.000+00:00"
        journal.write_bytes(json.dumps(first).encode() + b"\n" + b"".join(lines[1:]))
    elif how == "cut short":
        journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:3]))
    elif how == "rewritten":
        lines = journal.read_bytes().splitlines(keepends=True)
        middle = len(lines) // 2 - 1
        lines[middle] = lines[middle].replace(b'"t":', b'"t": ')
        journal.write_bytes(b"".join(lines))


@pytest.mark.parametrize("how", ["corrupt", "another version", "another journal", "cut short", "rewritten"])
async def test_a_snapshot_that_does_not_fit_its_journal_is_ignored_said_and_the_whole_journal_read(snapshotted, how):
    breaks(snapshotted, how)
    said: list[str] = []
    resumed = resume(snapshotted, said.append)
    assert len(said) == 1 and "ignored" in said[0] and str(snapshot_path(snapshotted)) in said[0]
    assert resumed.snapshot_events == 0
    assert state_to_plain(resumed.state) == state_to_plain(fold(read_events(snapshotted)))


async def test_an_archived_rollout_keeps_its_snapshot_beside_its_journal(tmp_path):
    journal = await sample_run("canary.yaml", "healthy", tmp_path)
    archived = RolloutFiles.of_journal(journal).archive_finished()
    assert archived is not None and not snapshot_path(journal).exists()
    said: list[str] = []
    assert resume(archived, said.append).snapshot_events > 0 and said == []


async def test_a_resumed_controller_takes_the_sequential_judge_s_evidence_from_the_snapshot_and_the_samples_after_it(canary_plan, tmp_path, monkeypatch):
    from console.controller import controller as controller_module
    from console.controller.clock import VirtualClock
    from console.controller.sequential import SequentialJudge
    from tests.conftest import stop_at

    assert canary_plan.judge == "sequential"
    killed_at = 900.0  # before the latency creep is rolled back (at 990 s)
    killed = sim_controller(canary_plan, tmp_path, "latency-creep", clock=VirtualClock(stop_at=killed_at), monotonic=lambda: 0.0)
    killed.snapshots.every_events = 37  # the kill comes some samples after the last snapshot
    await stop_at(killed, killed_at)
    journal = killed.journal.path
    resumed = resume(journal)
    assert resumed.judge is not None and resumed.samples_after and 0 < resumed.snapshot_events < resumed.events

    def judge() -> SequentialJudge:
        compared = sum(stage.weight < 100 for stage in canary_plan.stages)
        return SequentialJudge(canary_plan.alpha, canary_plan.tolerance, canary_plan.floor, canary_plan.metric_names, compared)

    whole = judge()  # the full fold's: every sample the journal holds
    whole.replay((event.stage, event.counts) for event in read_events(journal) if isinstance(event, ev.SampleTaken))
    taken_up = judge()
    assert taken_up.restore(resumed.judge)
    taken_up.replay((event.stage, event.counts) for event in resumed.samples_after)
    assert whole.evidence().canary_requests > 0 and len(whole.metrics) > 1, "evidence on errors and a latency"
    assert taken_up.to_plain() == whole.to_plain() == killed.judge.to_plain()
    assert taken_up.journaled() == whole.journaled() and taken_up.regression() == whole.regression()

    # The resumed controller reads the snapshot and the tail, never the whole journal's samples.
    monkeypatch.setattr(controller_module, "read_events", lambda *args, **kwargs: pytest.fail("the whole journal was read"))
    again = sim_controller(canary_plan, tmp_path, "latency-creep")
    assert again.judge is not None and again.judge.to_plain() == whole.to_plain()
    again.journal.close()

    # A judge of another plan (its tolerance edited since) does not take the evidence up: the samples are replayed.
    edited = SequentialJudge(canary_plan.alpha, canary_plan.tolerance * 2, canary_plan.floor, canary_plan.metric_names, 3)
    assert not edited.restore(resumed.judge) and edited.evidence().canary_requests == 0
