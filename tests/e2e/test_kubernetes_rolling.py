"""A rolling update on the Kubernetes API (the emulator), through the Controller, checked with kubectl."""

from __future__ import annotations

import asyncio

import pytest

from console.controller.controller import ControllerOptions
from console.journal import events as ev
from testbed.kube_emulator import KubeEmulator
from testbed.kubernetes_support import (
    OPERATOR,
    ROLLBACK_BUDGET_S,
    apply_sample,
    deployments,
    event,
    image,
    kube_rollout,
    kubectl,
    prepared_target,
    requests_answered,
)

PLAN = "kubernetes-rolling.yaml"
OLD = "registry.example.com/search:1.8.2"
NEW = "registry.example.com/search:1.8.3"
RELEASED = "brahma: release search-1.8.3 (registry.example.com/search:1.8.3)"
UNDONE = "brahma: rollback of search-1.8.3 to revision 1"


@pytest.fixture
def kube(kube_emulator: KubeEmulator) -> KubeEmulator:
    apply_sample(kube_emulator, "rolling.yaml")
    return kube_emulator


def history(kube: KubeEmulator) -> list[str]:
    """`kubectl rollout history` rows: revision and change-cause."""
    lines = kubectl(kube, "rollout", "history", "deployment/search").splitlines()
    return [" ".join(line.split()) for line in lines[2:] if line.strip()]


def assert_runs(kube: KubeEmulator, wanted_image: str) -> None:
    assert image(deployments(kube)["search"]) == wanted_image
    kubectl(kube, "rollout", "status", "deployment/search", "--timeout=10s")


async def test_the_image_is_rolled_out_in_place(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    assert await rollout.run() == "completed"
    assert_runs(kube, NEW)
    assert history(kube) == ["1 <none>", f"2 {RELEASED}"]
    changes = rollout.of(ev.TargetPrepared)[0].changes
    assert any(f"spec.template.spec.containers[search].image: {OLD} → {NEW}" in line for line in changes)
    assert rollout.of(ev.TargetPrepared)[0].before["revision"] == 1


async def test_an_error_spike_undoes_to_the_previous_revision(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, scenario="error-spike")
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.RollbackStarted)[0].trigger == "error_rate"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_runs(kube, OLD)
    # As `kubectl rollout undo` does: revision 1's ReplicaSet comes back as revision 3.
    assert history(kube) == [f"2 {RELEASED}", f"3 {UNDONE}"]


async def test_the_rollback_key_mid_stage_undoes(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: rollout.controller.submit("rollback", OPERATOR))
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_runs(kube, OLD)


async def test_a_rollback_after_full_promotion_undoes(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, options=ControllerOptions(exit_when_finished=False))
    rollout.when(event(ev.Completed), lambda e: rollout.controller.submit("rollback", OPERATOR))
    rollout.when(event(ev.RolledBack), lambda e: rollout.controller.stop())
    assert await rollout.run() == "rolled_back"
    assert_runs(kube, OLD)
    assert history(kube)[-1] == f"3 {UNDONE}"


async def test_a_conflict_storm_on_the_image_update_is_retried_through(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.when(event(ev.TargetPrepared), lambda e: kube.fail(code=409, count=5, verb="update"))
    assert await rollout.run() == "completed"
    assert requests_answered(kube, 409) == 5
    assert not rollout.of(ev.ErrorRaised)
    assert_runs(kube, NEW)


async def test_the_api_going_away_mid_stage_delays_the_rollback_until_it_is_back(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, retry_budget_s=0.3)

    def outage_then_rollback(e: ev.SampleTaken) -> None:
        kube.outage(1.0)
        rollout.controller.submit("rollback", OPERATOR)

    rollout.when(event(ev.SampleTaken, stage=0), outage_then_rollback)
    assert await rollout.run() == "rolled_back"
    failed = rollout.of(ev.RollbackFailed)
    assert failed and "unreachable" in failed[0].detail, "the controller tried again"
    assert rollout.of(ev.RolledBack)
    assert_runs(kube, OLD)


@pytest.mark.parametrize("headless", [True, False], ids=["headless", "console"])
async def test_a_rollout_past_its_progress_deadline_fails_the_stage_and_is_undone(kube, tmp_path, headless):
    kubectl(kube, "patch", "deployment/search", "-p", '{"spec": {"progressDeadlineSeconds": 1}}')
    kube.break_image(NEW)  # its pods never get Ready
    rollout = kube_rollout(kube, tmp_path, PLAN, options=ControllerOptions(headless=headless))
    assert await asyncio.wait_for(rollout.run(), 30) == "rolled_back", "rolled back by itself, with nobody to decide"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "progress_deadline"
    assert "rolling (100%) cannot come up: deployment/search exceeded its progress deadline" in started.reason
    assert not rollout.of(ev.Paused) and not rollout.of(ev.ErrorRaised), "no pause, no retries"
    assert_runs(kube, OLD)
    assert history(kube) == [f"2 {RELEASED}", f"3 {UNDONE}"], "undone to the last good revision"


async def test_the_rollback_is_read_back_from_the_cluster(kube, tmp_path):
    async with prepared_target(kube, tmp_path, PLAN) as (target, before):
        await target.set_weight(100)
        problems = (await target.read_back_rollback(before)).problems
        assert problems == (f"deployment/search runs search={NEW}, not search={OLD}",)
        await target.rollback(before)
        read_back = await target.read_back_rollback(before)
        assert read_back.verified, read_back.problems
        assert read_back.observed.startswith(f"deployment/search runs search={OLD}, revision 3")
        kube.break_image(NEW)
        kubectl(kube, "set", "image", "deployment/search", f"search={NEW}")  # redone by hand, and it never becomes ready
        problems = (await target.read_back_rollback(before)).problems
        assert problems[0] == f"deployment/search runs search={NEW}, not search={OLD}"
        assert problems[1].startswith("deployment/search has not rolled out")


async def test_a_watch_that_never_answers_does_not_hang_the_stage(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.target.api.watch_timeout_s = 1
    kube.silence_watches(hang=True)  # every watch opens and says nothing, past its timeoutSeconds
    assert await asyncio.wait_for(rollout.run(), 30) == "completed"
    assert_runs(kube, NEW)


async def test_the_rollback_key_cuts_a_stage_waiting_on_a_watch_that_never_answers(kube, tmp_path):
    kube.break_image(NEW)
    kube.silence_watches(hang=True, count=1)
    rollout = kube_rollout(kube, tmp_path, PLAN)

    async def roll_back_while_watching() -> None:
        # The shift's watch is the one silenced (the fault taken), not the rollback's own.
        assert await asyncio.to_thread(kube.wait_for, lambda: not kube.faults.snapshot(), 10)
        rollout.controller.submit("rollback", OPERATOR)

    operator = asyncio.create_task(roll_back_while_watching())
    assert await asyncio.wait_for(rollout.run(), 30) == "rolled_back"
    await operator
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_runs(kube, OLD)


async def test_a_hotfix_set_mid_stage_is_reported_and_the_rollback_leaves_it(kube, tmp_path):
    hotfix = "registry.example.com/search:1.8.3-hotfix"
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: kubectl(kube, "set", "image", "deployment/search", f"search={hotfix}"))
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.DriftDetected)[0].changes == [f"deployment/search spec.template.spec.containers[search].image: {NEW} → {hotfix} (by kubectl-set)"]
    assert rollout.of(ev.RollbackStarted)[0].trigger == "drift", "headless: paused for a person, then rolled back"
    assert_runs(kube, hotfix)
    assert not any(UNDONE in row for row in history(kube)), "not undone over the hotfix"
