"""A canary on the Kubernetes API (the emulator), through the Controller, checked with kubectl.

Both sample layouts: traffic split by replicas (kubernetes-canary.yaml) and exact weights on an
HTTPRoute (kubernetes-canary-httproute.yaml).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.controller.rollback_pacing import MAX_RETRY_S
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

OLD = "registry.example.com/checkout:2.4.0"
NEW = "registry.example.com/checkout:2.4.1"
REPLICAS_PLAN, ROUTE_PLAN = "kubernetes-canary.yaml", "kubernetes-canary-httproute.yaml"
MANIFESTS = {REPLICAS_PLAN: "canary.yaml", ROUTE_PLAN: "canary-httproute.yaml"}
ORIGINAL_BACKENDS = [{"group": "", "kind": "Service", "name": "checkout", "port": 80, "weight": 100}]


@pytest.fixture(params=[REPLICAS_PLAN, ROUTE_PLAN])
def plan_file(request: pytest.FixtureRequest, kube_emulator: KubeEmulator) -> str:
    apply_sample(kube_emulator, MANIFESTS[request.param])
    return request.param


@pytest.fixture
def replica_canary(kube_emulator: KubeEmulator) -> str:
    apply_sample(kube_emulator, MANIFESTS[REPLICAS_PLAN])
    return REPLICAS_PLAN


def backends(kube: KubeEmulator) -> list[dict]:
    return kubectl_json(kube, "httproute", "checkout")["spec"]["rules"][0]["backendRefs"]


def assert_stable_serves_alone(kube: KubeEmulator, plan_file: str, stable_image: str) -> None:
    """What kubectl sees: the stable Deployment on `stable_image`, rolled out, no canary left behind."""
    found = deployments(kube)
    assert set(found) == {"checkout"}, "the canary Deployment is gone"
    assert image(found["checkout"]) == stable_image
    kubectl(kube, "rollout", "status", "deployment/checkout", "--timeout=10s")
    services = {item["metadata"]["name"] for item in kubectl_json(kube, "services")["items"]}
    assert "checkout-canary" not in services
    if plan_file == ROUTE_PLAN:
        assert backends(kube) == ORIGINAL_BACKENDS


async def test_a_healthy_canary_is_promoted_stage_by_stage(kube_emulator, tmp_path, plan_file):
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file)
    seen: dict[int, tuple[int, list[dict] | None]] = {}

    def look(e: ev.SampleTaken) -> None:
        canary = kube_emulator.get("deployments", "checkout-canary")
        route = kube_emulator.get("httproutes", "checkout")["spec"]["rules"][0]["backendRefs"] if plan_file == ROUTE_PLAN else None
        seen[e.stage] = (canary["spec"]["replicas"], route)

    for stage in range(3):
        rollout.when(event(ev.SampleTaken, stage=stage), look)

    assert await rollout.run() == "completed"
    assert [e.weight for e in rollout.of(ev.StageStarted)] == [5, 25, 50, 100]
    assert not rollout.of(ev.ErrorRaised)
    if plan_file == REPLICAS_PLAN:
        # round(10 x w / (100 - w)) beside 10 stable pods: 9%, 23%, 50% of the pods.
        assert {stage: replicas for stage, (replicas, _) in seen.items()} == {0: 1, 1: 3, 2: 10}
    else:
        assert {stage: [(r["name"], r["weight"]) for r in route] for stage, (_, route) in seen.items()} == {
            0: [("checkout", 95), ("checkout-canary", 5)],
            1: [("checkout", 75), ("checkout-canary", 25)],
            2: [("checkout", 50), ("checkout-canary", 50)],
        }
    assert_stable_serves_alone(kube_emulator, plan_file, NEW)
    history = kubectl(kube_emulator, "rollout", "history", "deployment/checkout")
    assert "brahma: release checkout-2.4.1 (registry.example.com/checkout:2.4.1)" in history


async def test_the_diff_and_the_state_before_are_journaled_from_a_server_side_dry_run(kube_emulator, tmp_path, plan_file):
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file)
    served_before = len(kube_emulator.requests)
    assert await rollout.run() == "completed"
    prepared = rollout.of(ev.TargetPrepared)[0]
    assert prepared.before["images"] == {"checkout": OLD} and prepared.before["replicas"] == 10
    assert any("create deployment/checkout-canary" in line for line in prepared.changes)
    assert any(f"spec.template.spec.containers[checkout].image: {OLD} → {NEW}" in line for line in prepared.changes)
    writes = [r for r in list(kube_emulator.requests)[served_before:] if r.method in ("POST", "PUT", "DELETE")]
    first_real = next(i for i, r in enumerate(writes) if r.query.get("dryRun") != "All")
    assert first_real > 0 and all(r.query.get("dryRun") == "All" for r in writes[:first_real]), "dry runs come first"


async def test_an_error_spike_rolls_back_to_stable_automatically(kube_emulator, tmp_path, plan_file):
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file, scenario="error-spike")
    assert await rollout.run() == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "error_rate"
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_stable_serves_alone(kube_emulator, plan_file, OLD)


async def test_the_rollback_key_mid_stage_restores_stable(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary)
    rollout.when(event(ev.SampleTaken, stage=1), lambda e: rollout.controller.submit("rollback", OPERATOR))
    assert await rollout.run() == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "operator" and OPERATOR in started.reason
    assert rollout.of(ev.RolledBack)[0].duration_s < ROLLBACK_BUDGET_S
    assert_stable_serves_alone(kube_emulator, replica_canary, OLD)


async def test_a_rollback_after_full_promotion_puts_the_old_image_back(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary, options=ControllerOptions(exit_when_finished=False))
    rollout.when(event(ev.Completed), lambda e: rollout.controller.submit("rollback", OPERATOR))
    rollout.when(event(ev.RolledBack), lambda e: rollout.controller.stop())
    assert await rollout.run() == "rolled_back"
    assert_stable_serves_alone(kube_emulator, replica_canary, OLD)
    history = kubectl(kube_emulator, "rollout", "history", "deployment/checkout")
    assert "brahma: rollback of checkout-2.4.1" in history


async def test_a_conflict_storm_is_retried_through(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary)
    # Every update of the next stage's canary meets a conflict, five times over: each is read again and retried.
    rollout.when(event(ev.SampleTaken, stage=0), lambda e: kube_emulator.fail(code=409, count=5, verb="update"))
    assert await rollout.run() == "completed"
    assert requests_answered(kube_emulator, 409) == 5
    assert not rollout.of(ev.ErrorRaised) and not rollout.of(ev.Paused)
    assert_stable_serves_alone(kube_emulator, replica_canary, NEW)


async def test_the_api_going_away_mid_stage_pauses_then_the_rollout_resumes(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary, retry_budget_s=0.3)
    api_gone_then_back(rollout, stage=1)
    assert await rollout.run() == "completed"
    error = next(e for e in rollout.of(ev.ErrorRaised) if e.where != "target.drift")  # samples meanwhile cannot read it either
    assert error.where == "target.set_weight" and "unreachable" in error.message
    assert "failed to shift traffic" in rollout.of(ev.Paused)[0].reason
    assert [e.weight for e in rollout.of(ev.StageStarted)] == [5, 25, 50, 100]
    assert_stable_serves_alone(kube_emulator, replica_canary, NEW)


async def test_the_rollback_key_cuts_short_a_stage_whose_rollout_never_becomes_available(kube_emulator, tmp_path, plan_file):
    kube_emulator.break_image(NEW)  # the canary's pods never get Ready: set_weight would wait out the rollout timeout
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file)
    rollout_timeout_s = rollout.target.strategy.release.rollout_timeout_s
    rolled_back_at: list[float] = []
    rollout.when(event(ev.RolledBack), lambda e: rolled_back_at.append(time.monotonic()))
    running = asyncio.create_task(rollout.run())
    canary_written = await asyncio.to_thread(kube_emulator.wait_for, lambda: kube_emulator.list("pods", selector="track=canary"), 10)
    assert canary_written, "stage 1's canary is written and its rollout awaited"
    asked_at = time.monotonic()
    rollout.controller.submit("rollback", OPERATOR)
    assert await asyncio.wait_for(running, timeout=30) == "rolled_back"
    assert rolled_back_at[0] - asked_at < ROLLBACK_BUDGET_S, f"the rollback waited (the rollout timeout is {rollout_timeout_s:g}s)"
    journal = [e.name for e in rollout.journal()]
    assert journal[journal.index("stage_started") :] == ["stage_started", "command", "rollback_started", "rollback_verified", "rolled_back"]
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "operator" and OPERATOR in started.reason
    assert not rollout.of(ev.Paused) and not rollout.of(ev.ErrorRaised)
    assert_stable_serves_alone(kube_emulator, plan_file, OLD)


async def test_a_write_given_up_in_flight_lands_before_the_rollbacks_writes(kube_emulator, tmp_path, replica_canary):
    target = kube_rollout(kube_emulator, tmp_path, replica_canary).target
    try:
        before, _ = await target.prepare()
        kube_emulator.add_latency(0.5, verb="create", resource="deployments")
        canary_create = kube_emulator.arrival(verb="create", resource="deployments")
        mark = len(kube_emulator.requests)
        shift = asyncio.create_task(target.set_weight(5))
        assert await asyncio.to_thread(canary_create.wait, 10), "the canary's create is on its way"
        shift.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shift
        await target.rollback(before)
    finally:
        await target.close()
    writes = [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in list(kube_emulator.requests)[mark:] if r.method != "GET"]
    assert writes == [("POST", "deployments", 201), ("DELETE", "checkout-canary", 200)], "the rollback's delete came after the create"
    assert_stable_serves_alone(kube_emulator, replica_canary, OLD)


async def test_the_rollback_is_read_back_from_the_cluster(kube_emulator, tmp_path, plan_file):
    async with prepared_target(kube_emulator, tmp_path, plan_file) as (target, before):
        await target.set_weight(25)
        problems = (await target.read_back_rollback(before)).problems
        assert any("deployment/checkout-canary still runs" in p for p in problems)
        if plan_file == ROUTE_PLAN:
            assert "httproute/checkout sends checkout 75, checkout-canary 25, not its backends before the release" in problems
        await target.rollback(before)
        read_back = await target.read_back_rollback(before)
        assert read_back.verified, read_back.problems
        assert f"deployment/checkout runs checkout={OLD}; no deployment/checkout-canary" in read_back.observed
        kubectl(kube_emulator, "set", "image", "deployment/checkout", f"checkout={NEW}")  # stable changed behind Brahma's back
        problems = (await target.read_back_rollback(before)).problems
        assert f"deployment/checkout runs checkout={NEW}, not checkout={OLD}" in problems


async def test_a_rollback_through_a_minute_long_api_outage_ends_with_stable_serving_all(kube_emulator, tmp_path, plan_file):
    wall = VirtualClock()  # the backoff (1 s, 2 s ... 30 s) passes at once; every attempt meets the API for real
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file, retry_budget_s=0.3, wall_clock=wall)
    seen: dict[str, float] = {}

    def api_goes_away(e: ev.SampleTaken) -> None:
        kube_emulator.stop()
        rollout.controller.submit("rollback", OPERATOR)

    def api_comes_back(e: ev.RollbackFailed) -> None:
        assert rollout.controller.state.phase == "rolling_back"
        seen["back"] = wall.now()
        kube_emulator.start()

    rollout.when(event(ev.SampleTaken, stage=1), api_goes_away)
    rollout.when(lambda e: isinstance(e, ev.RollbackFailed) and e.since_s >= 60, api_comes_back)
    rollout.when(event(ev.RolledBack), lambda e: seen.setdefault("rolled_back", wall.now()))
    assert await rollout.run() == "rolled_back"
    failed = rollout.of(ev.RollbackFailed)
    assert (failed[0].reason, failed[0].attempts) == ("rollback", 1) and "unreachable" in failed[0].detail
    assert failed[-1].since_s >= 60 and len(failed) <= 3, "journaled at once and a minute on, not at every attempt"
    names = [e.name for e in rollout.journal()]
    assert names[-3:] == ["rollback_failed", "rollback_verified", "rolled_back"]
    assert 0 < seen["rolled_back"] - seen["back"] <= MAX_RETRY_S, "tried again within one backoff of the API's return"
    assert "no deployment/checkout-canary" in rollout.of(ev.RolledBack)[0].read_back
    assert_stable_serves_alone(kube_emulator, plan_file, OLD)


async def test_a_canary_past_its_progress_deadline_fails_the_stage_and_rolls_back(kube_emulator, tmp_path, plan_file):
    kubectl(kube_emulator, "patch", "deployment/checkout", "-p", '{"spec": {"progressDeadlineSeconds": 1}}')
    kube_emulator.break_image(NEW)  # the canary copies stable's spec: its deadline too
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file)
    assert await asyncio.wait_for(rollout.run(), 30) == "rolled_back"
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "progress_deadline"
    assert "deployment/checkout-canary exceeded its progress deadline" in started.reason
    assert not rollout.of(ev.Paused)
    assert_stable_serves_alone(kube_emulator, plan_file, OLD)


HOTFIX = "registry.example.com/checkout:2.4.0-hotfix"


def canary_replicas_now(kube: KubeEmulator) -> int:
    return kubectl_json(kube, "deployment", "checkout-canary")["spec"]["replicas"]


async def test_a_scaled_canary_pauses_the_rollout_and_a_resume_puts_its_replicas_back(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary, options=ControllerOptions(headless=False))
    rollout.when(event(ev.SampleTaken, stage=1), lambda e: kubectl(kube_emulator, "scale", "deployment/checkout-canary", "--replicas=7"))
    rollout.when(event(ev.Paused, trigger="drift"), lambda e: rollout.controller.submit("resume", OPERATOR))
    after_resume: list[int] = []
    rollout.when(event(ev.DriftResolved), lambda e: after_resume.append(canary_replicas_now(kube_emulator)))
    assert await rollout.run() == "completed"
    drift = rollout.of(ev.DriftDetected)[0]
    assert (drift.changes, drift.weight) == (["deployment/checkout-canary spec.replicas: 3 → 7 (by kubectl (scale))"], 25)
    paused = rollout.of(ev.Paused)[0]
    assert "the target changed beside the release: deployment/checkout-canary spec.replicas: 3 → 7" in paused.reason
    assert after_resume == [3], "the operator's resume put the stage's replicas back"
    assert_stable_serves_alone(kube_emulator, replica_canary, NEW)


async def test_a_deleted_canary_is_not_recreated_behind_the_operator_and_headless_rolls_back(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary)
    rollout.when(event(ev.SampleTaken, stage=1), lambda e: kubectl(kube_emulator, "delete", "deployment/checkout-canary"))
    assert await rollout.run() == "rolled_back"
    assert rollout.of(ev.DriftDetected)[0].changes == ["deployment/checkout-canary deleted"]
    started = rollout.of(ev.RollbackStarted)[0]
    assert started.trigger == "drift" and started.reason.startswith("paused 15m with no decision: the target changed beside")
    ours = [r for r in list(kube_emulator.requests) if r.query.get("fieldManager") == "brahma" and not r.query.get("dryRun")]
    creates = [r for r in ours if r.method == "POST" and r.path.endswith("/deployments")]
    assert len(creates) == 1, "the canary was created once, for stage 1, never again over the deletion"
    assert_stable_serves_alone(kube_emulator, replica_canary, OLD)


async def test_a_hotfix_on_stable_holds_promotion_and_the_rollback_leaves_it(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary, options=ControllerOptions(headless=False))
    rollout.when(event(ev.SampleTaken, stage=1), lambda e: kubectl(kube_emulator, "set", "image", "deployment/checkout", f"checkout={HOTFIX}"))
    rollout.when(event(ev.Paused, trigger="drift"), lambda e: rollout.controller.submit("promote", OPERATOR))
    rollout.when(event(ev.ErrorRaised, where="promote"), lambda e: rollout.controller.submit("rollback", OPERATOR))
    assert await rollout.run() == "rolled_back"
    hotfix = f"deployment/checkout spec.template.spec.containers[checkout].image: {OLD} → {HOTFIX} (by kubectl-set)"
    assert rollout.of(ev.DriftDetected)[0].changes == [hotfix]
    refused = next(e for e in rollout.of(ev.ErrorRaised) if e.where == "promote")
    assert hotfix in refused.message and "resume to accept" in refused.message
    assert [e.weight for e in rollout.of(ev.StageStarted)] == [5, 25], "the promote was not applied over the hotfix"
    found = deployments(kube_emulator)
    assert set(found) == {"checkout"} and image(found["checkout"]) == HOTFIX, "the canary is gone, the hotfix stays"
    assert "brahma: rollback" not in kubectl(kube_emulator, "rollout", "history", "deployment/checkout")


async def test_a_hotfix_on_stable_is_promoted_over_only_after_the_operator_resumes(kube_emulator, tmp_path, replica_canary):
    rollout = kube_rollout(kube_emulator, tmp_path, replica_canary, options=ControllerOptions(headless=False))
    rollout.when(event(ev.SampleTaken, stage=1), lambda e: kubectl(kube_emulator, "set", "image", "deployment/checkout", f"checkout={HOTFIX}"))
    rollout.when(event(ev.Paused, trigger="drift"), lambda e: rollout.controller.submit("resume", OPERATOR))
    assert await rollout.run() == "completed"
    journal = [(e.name, getattr(e, "actor", None)) for e in rollout.journal()]
    drifted, resumed = journal.index(("drift_detected", None)), journal.index(("command", OPERATOR))
    promoted = max(i for i, (name, _) in enumerate(journal) if name == "stage_started")
    assert drifted < resumed < promoted, "the hotfix was journaled and a person resumed before promotion replaced it"
    assert_stable_serves_alone(kube_emulator, replica_canary, NEW)
