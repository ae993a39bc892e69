"""Blue-green on the Kubernetes API (the emulator), through the Controller, checked with kubectl."""

from __future__ import annotations

import asyncio

import pytest

from console.controller.controller import ControllerOptions
from console.journal import events as ev
from testbed.kube_emulator import KubeEmulator
from testbed.kubernetes_support import (
    OPERATOR,
    ROLLBACK_BUDGET_S,
    api_gone_then_back,
    apply_sample,
    deployments,
    event,
    image,
    kube_rollout,
    kubectl,
    kubectl_json,
    prepared_target,
    requests_answered,
)

PLAN = "kubernetes-blue-green.yaml"
OLD = "registry.example.com/billing:2.9.4"
NEW = "registry.example.com/billing:3.0.0"


@pytest.fixture
def kube(kube_emulator: KubeEmulator) -> KubeEmulator:
    apply_sample(kube_emulator, "blue-green.yaml")
    return kube_emulator


def selected_colour(kube: KubeEmulator, service: str = "billing") -> str:
    return kubectl_json(kube, "service", service)["spec"]["selector"]["colour"]


def assert_blue_serves(kube: KubeEmulator) -> None:
    """What kubectl sees after a rollback: billing selects blue, blue runs the old image, green is gone."""
    assert selected_colour(kube) == "blue"
    assert selected_colour(kube, "billing-preview") == "green", "the preview Service as it was"
    found = deployments(kube)
    assert set(found) == {"billing-blue"} and image(found["billing-blue"]) == OLD


def assert_green_serves(kube: KubeEmulator) -> None:
    assert selected_colour(kube) == "green"
    found = deployments(kube)
    assert image(found["billing-green"]) == NEW and image(found["billing-blue"]) == OLD
    kubectl(kube, "rollout", "status", "deployment/billing-green", "--timeout=10s")


async def test_green_is_previewed_then_takes_all_traffic_and_blue_is_kept(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    during_preview: dict[str, object] = {}

    def look(e: ev.SampleTaken) -> None:
        during_preview["selector"] = kube.get("services", "billing")["spec"]["selector"]["colour"]
        during_preview["green_ready"] = len(kube.list("pods", selector="app=billing,colour=green"))

    rollout.when(event(ev.SampleTaken, stage=0), look)
    assert await rollout.run() == "completed"
    assert [e.weight for e in rollout.of(ev.StageStarted)] == [0, 100]
    assert during_preview == {"selector": "blue", "green_ready": 4}
    assert_green_serves(kube)
    blue = deployments(kube)["billing-blue"]
    assert "brahma.io/keep-until" in blue["metadata"]["annotations"], "blue kept for the rollback window"
    assert blue["spec"]["replicas"] == 4
    changes = rollout.of(ev.TargetPrepared)[0].changes
    assert any("create deployment/billing-green" in line for line in changes)
    assert any("service/billing spec.selector.colour: blue → green" in line for line in changes)


async def test_an_error_spike_after_the_switch_switches_back(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, scenario="error-spike")
    assert await rollout.run() == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "error_rate"
    assert started.t > rollout.of(ev.StageStarted)[-1].t and rollout.of(ev.StageStarted)[-1].weight == 100, "after the switch"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_blue_serves(kube)


async def test_the_rollback_key_during_the_preview_keeps_blue(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: rollout.controller.submit("rollback", OPERATOR))
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.RollbackStarted)[0].trigger == "operator"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_blue_serves(kube)


async def test_a_rollback_after_full_promotion_switches_back_to_blue(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, options=ControllerOptions(exit_when_finished=False))
    rollout.when(event(ev.Completed), lambda e: rollout.controller.submit("rollback", OPERATOR))
    rollout.when(event(ev.RolledBack), lambda e: rollout.controller.stop())
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_blue_serves(kube)


async def test_a_conflict_storm_on_the_switch_is_retried_through(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: kube.fail(code=409, count=5, verb="update", resource="services"))
    assert await rollout.run() == "completed"
    assert requests_answered(kube, 409) == 5
    assert not rollout.of(ev.ErrorRaised) and not rollout.of(ev.Paused)
    assert_green_serves(kube)


async def test_the_api_going_away_during_the_preview_pauses_the_switch(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN, retry_budget_s=0.3)
    api_gone_then_back(rollout, stage=0)
    assert await rollout.run() == "completed"
    error = next(e for e in rollout.of(ev.ErrorRaised) if e.where != "target.drift")  # samples meanwhile cannot read it either
    assert error.where == "target.set_weight" and "unreachable" in error.message
    assert_green_serves(kube)


async def test_the_rollback_is_read_back_from_the_cluster(kube, tmp_path):
    async with prepared_target(kube, tmp_path, PLAN) as (target, before):
        await target.set_weight(100)
        problems = (await target.read_back_rollback(before)).problems
        assert problems == ("service/billing selects app=billing,colour=green, not app=billing,colour=blue",)
        await target.rollback(before)
        read_back = await target.read_back_rollback(before)
        assert read_back.verified, read_back.problems
        assert read_back.observed == f"service/billing selects app=billing,colour=blue; deployment/billing-blue runs billing={OLD}"
        kubectl(kube, "patch", "service", "billing", "-p", '{"spec":{"selector":{"colour":"green"}}}')  # switched by hand
        assert not (await target.read_back_rollback(before)).verified


async def test_green_past_its_progress_deadline_fails_the_preview_and_blue_keeps_serving(kube, tmp_path):
    kubectl(kube, "patch", "deployment/billing-blue", "-p", '{"spec": {"progressDeadlineSeconds": 1}}')
    kube.break_image(NEW)
    rollout = kube_rollout(kube, tmp_path, PLAN)
    assert await asyncio.wait_for(rollout.run(), 30) == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "progress_deadline" and "deployment/billing-green" in started.reason
    assert not rollout.of(ev.Paused)
    assert_blue_serves(kube)


async def test_a_failed_smoke_check_fails_the_preview_and_blue_keeps_serving(kube, tmp_path):
    stray = {"name": "stray", "labels": {"app": "billing", "colour": "green"}}
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": stray, "spec": {"containers": [{"name": "billing", "image": OLD}]}})
    rollout = kube_rollout(kube, tmp_path, PLAN)
    assert await asyncio.wait_for(rollout.run(), 30) == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "smoke_check" and "1 of another version" in started.reason
    assert selected_colour(kube) == "blue", "never switched"


async def test_a_switch_made_by_hand_during_the_preview_is_reported_and_pauses(kube, tmp_path):
    rollout = kube_rollout(kube, tmp_path, PLAN)
    switch = '{"spec": {"selector": {"colour": "green"}}}'
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: kubectl(kube, "patch", "service/billing", "-p", switch))
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.DriftDetected)[0].changes == ["service/billing spec.selector.colour: blue → green (by kubectl-patch)"]
    assert [e.weight for e in rollout.of(ev.StageStarted)] == [0], "no switch stage on top of it"
    assert rollout.of(ev.RollbackStarted)[0].trigger == "drift"
    assert_blue_serves(kube)
