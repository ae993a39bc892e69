"""Crash safety: a run killed at any moment resumes at the same stage without shifting traffic twice."""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.journal import events as ev
from console.journal.journal import Journal, JournalError, read_events
from tests.conftest import ROOT, SAMPLES, sim_controller, stop_at

RUN = [sys.executable, "-m", "console.app", "run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--json"]


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
        assert await controller.run() == "rolled_back"
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
    result = subprocess.run([sys.executable, "-m", "console.app", "report", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "r.jsonl:2" in result.stderr and "Traceback" not in result.stderr


def test_a_finished_rollout_is_archived_and_the_release_runs_again(tmp_path):
    for _ in range(2):
        result = subprocess.run(RUN + ["--state-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0
    assert len(list(tmp_path.glob("checkout-2.4.1.*.jsonl"))) == 1
    assert stage_starts(tmp_path / "checkout-2.4.1.jsonl") == [0, 1, 2, 3]


async def test_archiving_moves_only_a_finished_rollout_aside_with_its_simulator_state(canary_plan, tmp_path):
    from console.journal.state_dir import RolloutFiles

    files = RolloutFiles(tmp_path, canary_plan.name)
    assert files.archive_finished() is None, "no journal: nothing to move"
    await journal_left_at(canary_plan, tmp_path, 700)
    assert files.archive_finished() is None and files.journal.exists(), "a rollout under way stays where it is"
    assert await sim_controller(canary_plan, tmp_path).run() == "completed"
    archived = files.archive_finished()
    assert archived is not None and not files.journal.exists() and not files.sim_state.exists()
    assert stage_starts(archived) == [0, 1, 2, 3]
    assert RolloutFiles.of_journal(archived).sim_state.exists(), "the simulator state moved beside its journal"


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


@pytest.mark.parametrize(("gone_s", "restarted"), [(300, True), (60, False), (2, False)])
async def test_a_controller_that_was_gone_says_so_and_restarts_a_window_only_when_its_hole_cannot_be_made_up(canary_plan, tmp_path, gone_s, restarted):
    first = sim_controller(canary_plan, tmp_path, clock=VirtualClock(stop_at=185))
    await stop_at(first, 185)
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
    if not restarted:  # the window kept its start: the time missed is a hole in its coverage, never covered
        assert second.state.window_started_t < last_t and second.state.window.covered_s <= second.now() - (gone_s - 2 * canary_plan.interval)
    assert second.state.phase == "running", "a gap is not a failure: the stage goes on"


# -- a journal is resumed only by its own plan -------------------------------------------------------


async def journal_left_at(plan, state_dir: Path, t: float) -> Path:
    """A rollout of `plan` on the simulator whose controller stopped at rollout time `t` (as if killed)."""
    controller = sim_controller(plan, state_dir, clock=VirtualClock(stop_at=t))
    await stop_at(controller, t)
    return controller.journal.path


def brahma_run(plan: Path, state_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "console.app", "run", str(plan), "--headless", "--fast", "--state-dir", str(state_dir), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def canary_variant(tmp_path: Path, old: str, new: str, name: str = "variant.yaml") -> Path:
    text = (SAMPLES / "canary.yaml").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


async def test_the_journal_records_the_plan_s_identity(canary_plan, tmp_path):
    from console.controller.identity import plan_digest, plan_identity

    started = next(read_events(await journal_left_at(canary_plan, tmp_path, 700)))
    assert isinstance(started, ev.RolloutStarted)
    assert (started.rollout, started.app, started.image, started.strategy) == ("checkout-2.4.1", "checkout", "registry.example.com/checkout:2.4.1", "canary")
    assert started.target == {"kind": "sim"}
    assert [(s["weight"], s["observe_s"]) for s in started.stages] == [(5, 600), (25, 900), (50, 1200), (100, 3600)]
    assert started.digest == plan_digest(canary_plan) and len(started.digest) == 64
    on_a_cluster = plan_identity(canary_plan, "kubernetes")["target"]
    assert on_a_cluster == {"kind": "kubernetes", "namespace": "default", "deployment": "checkout"}


def test_the_digest_is_of_what_is_decided_not_of_how_it_is_written(tmp_path):
    from console.controller.identity import plan_digest
    from console.plan import load_plan

    canary = load_plan(SAMPLES / "canary.yaml")
    assert plan_digest(load_plan(SAMPLES / "canary.hcl")) == plan_digest(canary), "the same plan in HCL"
    commented = canary_variant(tmp_path, "interval: 10s ", "interval: 10s  # sampled every ten seconds, a comment", "commented.yaml")
    assert plan_digest(load_plan(commented)) == plan_digest(canary)
    loosened = canary_variant(tmp_path, 'error_rate: "< 1%"', 'error_rate: "< 2%"', "loosened.yaml")
    assert plan_digest(load_plan(loosened)) != plan_digest(canary), "a limit is decided by"


async def test_a_plan_for_another_app_and_image_does_not_resume_the_journal(canary_plan, tmp_path):
    journal = await journal_left_at(canary_plan, tmp_path / "state", 700)  # stage 2: 25% on the canary
    sim_state = (tmp_path / "state" / "checkout-2.4.1.sim.json").read_bytes()
    written = journal.read_bytes()
    payments = tmp_path / "payments.yaml"
    payments.write_text("name: checkout-2.4.1\napp: payments\nimage: r/payments:9.9\n")
    result = brahma_run(payments, tmp_path / "state")
    assert result.returncode == 2, result.stderr
    assert (
        f"brahma: {journal} is the journal of another plan than {payments}: app: journal checkout, plan payments; "
        f"image: journal registry.example.com/checkout:2.4.1, plan r/payments:9.9;" in result.stderr
    )
    assert f"to start afresh, move the journal aside: mv {journal} {journal.with_name('checkout-2.4.1.old.jsonl')}" in result.stderr
    assert journal.read_bytes() == written and (tmp_path / "state" / "checkout-2.4.1.sim.json").read_bytes() == sim_state, "nothing moved"


async def test_a_journal_whose_first_event_names_another_release_is_not_taken_up(canary_plan, tmp_path):
    journal = await journal_left_at(canary_plan, tmp_path / "state", 700)
    journal.rename(journal.with_name("checkout-2.5.0.jsonl"))
    plan = canary_variant(tmp_path, "name: checkout-2.4.1", "name: checkout-2.5.0")
    result = brahma_run(plan, tmp_path / "state")
    assert result.returncode == 2, result.stderr
    assert "release: journal checkout-2.4.1, plan checkout-2.5.0" in result.stderr


async def test_a_plan_with_fewer_stages_than_the_journal_is_refused_not_an_index_error(canary_plan, tmp_path):
    await journal_left_at(canary_plan, tmp_path / "state", 1600)  # stage 3: 50%
    plan = tmp_path / "short.yaml"
    plan.write_text("name: checkout-2.4.1\napp: checkout\nimage: registry.example.com/checkout:2.4.1\nstages: [{weight: 5}, {weight: 25}]\n")
    result = brahma_run(plan, tmp_path / "state")
    assert result.returncode == 2, result.stderr
    assert (
        "stages: journal stage 1 5% 600s -> stage 2 25% 900s -> stage 3 50% 1200s -> monitoring 100% 3600s, "
        "plan stage 1 5% 600s -> stage 2 25% 600s -> monitoring 100% 3600s"
    ) in result.stderr
    assert "IndexError" not in result.stderr and "internal error" not in result.stderr


async def test_the_target_the_journal_ran_on_is_part_of_its_identity(canary_plan, tmp_path):
    from console.controller.identity import ResumeRefused, check_resume
    from console.journal.state import read_state

    journal = await journal_left_at(canary_plan, tmp_path, 700)
    state = read_state(journal)
    assert check_resume(canary_plan, state, journal, "sim") is None
    with pytest.raises(ResumeRefused, match=r"target: journal kind sim, plan kind kubernetes, namespace default, deployment checkout"):
        check_resume(canary_plan, state, journal, "kubernetes")  # --target kubernetes on the command line


async def test_a_limit_edited_mid_rollout_applies_on_resume_and_the_journal_says_so(canary_plan, tmp_path):
    from console.controller.identity import plan_digest
    from console.plan import load_plan

    journal = await journal_left_at(canary_plan, tmp_path / "state", 700)
    edited = canary_variant(tmp_path, 'cpu: {when: "> 80%"', 'cpu: {when: "> 90%"')
    result = brahma_run(edited, tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert (
        f"brahma: {edited} changed since {journal} last ran it (digest {plan_digest(canary_plan)[:12]} -> {plan_digest(load_plan(edited))[:12]}): "
        "the rollout goes on from where it was, under the plan as it is now" in result.stderr
    )
    archived = next((tmp_path / "state").glob("checkout-2.4.1.*.jsonl"), None) or journal
    resumed = [e for e in read_events(archived) if isinstance(e, ev.SupervisionResumed)]
    assert [e.digest for e in resumed] == [plan_digest(load_plan(edited))]
    assert stage_starts(archived) == [0, 1, 2, 3], "it went on from stage 2, not from the start"


async def test_a_journal_from_before_identities_resumes_when_what_it_recorded_matches(canary_plan, tmp_path):
    journal = await journal_left_at(canary_plan, tmp_path / "state", 700)
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    del first["target"], first["digest"]
    journal.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    before = journal.read_text()
    other_image = canary_variant(tmp_path, "image: registry.example.com/checkout:2.4.1", "image: registry.example.com/checkout:2.4.2")
    refused = brahma_run(other_image, tmp_path / "state")
    assert refused.returncode == 2 and "image: journal registry.example.com/checkout:2.4.1, plan registry.example.com/checkout:2.4.2" in refused.stderr
    assert journal.read_text() == before
    resumed = brahma_run(SAMPLES / "canary.yaml", tmp_path / "state")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming rollout checkout-2.4.1 at stage 2" in resumed.stderr and "changed since" not in resumed.stderr


def test_a_journal_that_is_no_rollout_s_is_not_taken_up(tmp_path):
    (tmp_path / "checkout-2.4.1.jsonl").write_text('{"event":"flag_changed","t":0,"ts":"x","flag":"f","old":{},"new":{},"actor":"a"}\n')
    result = brahma_run(SAMPLES / "canary.yaml", tmp_path)
    assert result.returncode == 2, result.stderr
    assert "checkout-2.4.1.jsonl begins with flag_changed, not rollout_started: it is no rollout's journal" in result.stderr


def brahma(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.app", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


async def test_a_detached_controller_s_refusal_of_another_plan_s_journal_is_exit_2(canary_plan, tmp_path):
    from console.app.supervision import supervise_args
    from console.app.wiring import RunOptions
    from console.journal.state_dir import RolloutFiles
    from console.supervisor.files import Launch

    state_dir = tmp_path / "state"
    journal = await journal_left_at(canary_plan, state_dir, 700)
    other = canary_variant(tmp_path, "image: registry.example.com/checkout:2.4.1", "image: registry.example.com/checkout:9.9")
    expected = "image: journal registry.example.com/checkout:2.4.1, plan registry.example.com/checkout:9.9"
    for command in (["supervise", str(other), "--detach", "--fast"], ["run", str(other)]):  # the controller alone; with a console
        result = brahma(*command, "--state-dir", str(state_dir))
        assert result.returncode == 2, (command, result.stderr)
        assert expected in result.stderr and f"mv {journal}" in result.stderr and "resuming" not in result.stderr
    # The plan a controller was started with, edited since: attach's restart refuses it, with or without a console.
    Launch(supervise_args(other, RunOptions(state_dir=state_dir, fast=True)), {}).write(RolloutFiles(state_dir, canary_plan.name).launch)
    for console in ([], ["--headless"]):
        result = brahma("attach", "checkout-2.4.1", *console, "--state-dir", str(state_dir))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
    assert stage_starts(journal) == [0, 1], "no controller took the journal up"


async def test_a_corrupt_journal_line_is_exit_2_with_its_line_and_ls_lists_the_other_rollouts(canary_plan, tmp_path):
    from tests.conftest import plan_from

    state_dir = tmp_path / "state"
    journal = await journal_left_at(canary_plan, state_dir, 700)
    await journal_left_at(plan_from("name: other-1\napp: other\nimage: r/other:1\n"), state_dir, 100)
    lines = journal.read_text().splitlines()
    lines[4] = '{"event": "sample", "t": 1'
    journal.write_text("\n".join(lines) + "\n")
    where = f"{journal}:5: not a journal event"
    for command in (
        ["run", str(SAMPLES / "canary.yaml"), "--headless", "--fast"],
        ["run", str(SAMPLES / "canary.yaml")],
        ["attach", "checkout-2.4.1", "--headless"],
        ["report", str(journal)],
    ):
        result = brahma(*command, *(["--state-dir", str(state_dir)] if command[0] != "report" else []))
        assert result.returncode == 2, (command, result.stderr)
        assert where in result.stderr and "internal error" not in result.stderr and "Traceback" not in result.stderr
    listed = brahma("ls", "--state-dir", str(state_dir))
    assert listed.returncode == 2, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[1] == f"{'checkout-2.4.1':<28} unreadable: {where}: Expecting ',' delimiter: line 1 column 27 (char 26)"
    assert rows[2].split() == ["other-1", "running", "1", "(5%)", "none"], "the other rollouts are still listed"


def test_a_journal_line_nested_past_the_json_parser_is_corruption_at_its_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"event":"resumed","t":1,"ts":"x"}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"event":"resumed","t":2,"ts":"x"}\n')
    with pytest.raises(JournalError, match=r"r.jsonl:2: not a journal event"):
        list(read_events(path))


# -- write-ahead by group commit: what is on disk before the target or the flag store is touched -----


class Disk:
    """What of a journal is on disk: its size at its last fsync (a machine going down loses the rest)."""

    def __init__(self, monkeypatch, journal: Path):
        self.journal, self.synced, self.fsyncs = journal, 0, 0
        fsync = os.fsync

        def counted(fd: int) -> None:
            fsync(fd)
            if self.journal.exists() and os.path.samestat(os.fstat(fd), self.journal.stat()):
                self.synced, self.fsyncs = os.fstat(fd).st_size, self.fsyncs + 1

        monkeypatch.setattr(os, "fsync", counted)

    def events(self) -> list[ev.Event]:
        on_disk = self.journal.with_name("on-disk.jsonl")
        on_disk.write_bytes(self.journal.read_bytes()[: self.synced])
        return list(read_events(on_disk))

    def holds_everything(self) -> bool:
        return self.synced == self.journal.stat().st_size


class WatchedTarget:
    """A sim target that, at every action, notes whether the journal was on disk and what it said there."""

    def __init__(self, inner, disk: Disk):
        self.inner, self.disk, self.cluster = inner, disk, inner.cluster
        self.actions: list[tuple[str, bool, str]] = []
        """(action, everything journaled was on disk, the last event on disk)."""

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _note(self, action: str) -> None:
        self.actions.append((action, self.disk.holds_everything(), self.disk.events()[-1].name))

    async def prepare(self):
        self._note("prepare")
        return await self.inner.prepare()

    async def set_weight(self, weight):
        self._note(f"set_weight {weight}")
        assert [e.weight for e in self.disk.events() if isinstance(e, ev.StageStarted)][-1] == weight, "the intent is on disk"
        return await self.inner.set_weight(weight)

    async def rollback(self, before):
        self._note("rollback")
        return await self.inner.rollback(before)

    async def finish(self):
        self._note("finish")
        return await self.inner.finish()


def journal_on_wall(controller, wall: list[float]) -> None:
    """The controller's journal, its group commit reading the test's wall clock."""
    controller.journal.close()
    controller.journal = Journal(controller.journal.path, sync_every_s=controller.plan.interval, monotonic=lambda: wall[0])


class WallPerSample:
    """A sim metric source each of whose samples takes a second of wall time; the machine goes down at sample `down_at`."""

    def __init__(self, inner, wall: list[float], down_at: int | None = None):
        self.inner, self.wall, self.down_at, self.taken = inner, wall, down_at, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def sample(self, metrics, t, window_s):
        self.taken += 1
        self.wall[0] += 1.0
        if self.taken == self.down_at:
            raise MachineDown
        return await self.inner.sample(metrics, t, window_s)


class MachineDown(BaseException):
    """Power lost: nothing of the controller runs after it, and the disk keeps only what was fsync'd."""


@pytest.mark.parametrize("scenario", ["healthy", "error-spike"])
async def test_the_journal_is_on_disk_before_every_action_and_synced_in_groups_otherwise(canary_plan, tmp_path, monkeypatch, scenario):
    disk = Disk(monkeypatch, tmp_path / f"{canary_plan.name}.jsonl")
    wall = [0.0]
    flag_actions: list[tuple[str, bool]] = []

    def flag_hook(action: str):
        async def hook(actor: str, reason: str) -> list:
            flag_actions.append((action, disk.holds_everything()))
            return []

        return hook

    options = ControllerOptions(flag_setup=flag_hook("setup"), flag_hooks=[flag_hook("rollback")])
    controller = sim_controller(canary_plan, tmp_path, scenario, options)
    journal_on_wall(controller, wall)
    target = controller.target = WatchedTarget(controller.target, disk)
    source = controller.metrics = WallPerSample(controller.metrics, wall)
    assert await controller.run() == ("completed" if scenario == "healthy" else "rolled_back")
    assert all(on_disk for _, on_disk, _ in target.actions) and all(on_disk for _, on_disk in flag_actions), (target.actions, flag_actions)
    if scenario == "healthy":
        assert [a for a, _, _ in target.actions] == ["prepare", "set_weight 5", "set_weight 25", "set_weight 50", "set_weight 100", "finish"]
    else:
        assert ("rollback", True, "rollback_started") in target.actions and ("rollback", True) in flag_actions
    assert disk.holds_everything(), "the rollout's end is on disk"
    periodic_at_most = source.taken / canary_plan.interval + 1  # a second of wall time a sample: one sync per ten
    assert disk.fsyncs <= periodic_at_most + len(target.actions) + len(flag_actions) + 2, (disk.fsyncs, controller.journal.count)


@pytest.mark.parametrize("down_at", [5, 63, 157, 404, 628])
async def test_a_machine_down_loses_only_unsynced_samples_which_the_next_run_takes_again(canary_plan, tmp_path, monkeypatch, down_at):
    journal = tmp_path / f"{canary_plan.name}.jsonl"
    disk = Disk(monkeypatch, journal)
    wall = [0.0]
    first = sim_controller(canary_plan, tmp_path)
    journal_on_wall(first, wall)
    first.metrics = WallPerSample(first.metrics, wall, down_at=down_at)
    with pytest.raises(MachineDown):
        await first.run()
    written = list(read_events(journal))
    os.truncate(journal, disk.synced)  # the machine came back with what was on disk
    lost = [e.t for e in written[len(list(read_events(journal))) :] if isinstance(e, ev.SampleTaken)]
    assert lost, "the crash lost samples that were journaled but not yet on disk"

    second = sim_controller(canary_plan, tmp_path)
    assert await second.run() == "completed"
    events = list(read_events(journal))
    assert stage_starts(journal) == [0, 1, 2, 3]
    assert [c["weight"] for c in second.target.cluster.changes] == [5, 25, 50, 100], "every traffic shift happened exactly once"
    taken = [e.t for e in events if isinstance(e, ev.SampleTaken)]
    assert set(lost) <= set(taken) and len(taken) == len(set(taken)), "the lost samples were taken again, each once"
    assert [e.stage for e in events if isinstance(e, ev.StagePassed)] == [0, 1, 2, 3]
