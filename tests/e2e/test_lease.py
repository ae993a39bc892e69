"""One controller per rollout on a cluster: the rollout's Lease on the API server (the emulator), checked with kubectl.

Time on the lease is an injected clock, so expiry is a number, never a wait. keep() runs with a
short renewal interval of its own; the tests wait on the emulator's store, never on a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.journal import events as ev
from console.plan import load_plan
from console.rollout import Rollout, run_controller
from console.targets.base import TargetError
from console.targets.kube_api import LEASES, KubeApi, load_api_client
from console.targets.kube_lease import LEASE_DURATION_S, LeaseHeld, RolloutLease, micro_time, parse_micro_time
from testbed.kube_emulator import KubeEmulator
from testbed.kubernetes_support import apply_sample, event, kube_rollout, kubectl, kubectl_json, requests_answered
from tests.conftest import ROOT, SAMPLES

ROLLOUT = "checkout-2.4.1"
"""The release of sample_configs/kubernetes-canary.yaml, in namespace default."""
LEASE = f"brahma-{ROLLOUT}"
ALICE, BOB, MALLORY = "alice@laptop pid 101", "bob@desk pid 202", "mallory@elsewhere pid 303"
START = 1_796_016_179.123456
"""2026-11-30T05:22:59.123456Z"""
MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
QUICK_RETRIES_S = 0.2
"""The retry budget when the API is meant to fail: long enough for a retry, short enough for a test."""


class Clock:
    """Seconds since the epoch that move only when told: by `advance`, or by `step` at every reading."""

    def __init__(self, now: float = START, step: float = 0.0):
        self.now, self.step = now, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lease_of(kube: KubeEmulator, holder: str, clock: Clock, rollout: str = ROLLOUT, retry_budget_s: float = 3.0) -> RolloutLease:
    api = KubeApi(load_api_client(kubeconfig=str(kube.kubeconfig_path)), "default", retry_budget_s=retry_budget_s)
    return RolloutLease(api, "default", rollout, holder, clock=clock)


def spec_seen(kube: KubeEmulator, name: str = LEASE) -> dict[str, Any]:
    """The Lease's spec as `kubectl get lease NAME -n default -o json` shows it."""
    return kubectl_json(kube, "lease", name, "-n", "default")["spec"]


def steal(kube: KubeEmulator, holder: str, renewed: float) -> None:
    """Another controller (or an operator) writes itself into the lease behind the holder's back."""
    patch = {"spec": {"holderIdentity": holder, "renewTime": micro_time(renewed)}}
    kubectl(kube, "patch", "lease", LEASE, "-n", "default", "--type", "merge", "-p", json.dumps(patch))


async def until(kube: KubeEmulator, predicate: Callable[[], bool]) -> None:
    """Wait for the emulator's store to satisfy `predicate` (off the event loop, so keep() runs meanwhile)."""
    assert await asyncio.to_thread(kube.wait_for, predicate, 10.0), "the lease never reached the expected state"


# --- taking the lease ---------------------------------------------------------------------------


def test_acquire_creates_the_lease_that_kubectl_sees(kube_emulator):
    plan = load_plan(SAMPLES / "kubernetes-canary.yaml")
    lease = RolloutLease.from_plan(plan, None, ALICE, kubeconfig=str(kube_emulator.kubeconfig_path))

    lease.acquire()

    spec = spec_seen(kube_emulator)
    assert spec["holderIdentity"] == ALICE
    assert spec["leaseDurationSeconds"] == LEASE_DURATION_S == 15
    assert MICRO_TIME.fullmatch(spec["renewTime"]), spec["renewTime"]
    assert abs(parse_micro_time(spec["renewTime"]) - time.time()) < 60, "renewTime is now, in UTC"
    assert spec["acquireTime"] == spec["renewTime"]
    assert spec["leaseTransitions"] == 0
    holders = kubectl(kube_emulator, "get", "lease", "-n", "default")
    assert re.search(rf"^{re.escape(LEASE)}\s+{re.escape(ALICE)}\s", holders, re.MULTILINE), holders


def test_acquiring_a_lease_already_ours_renews_it_without_a_transition(kube_emulator):
    clock = Clock()
    lease = lease_of(kube_emulator, ALICE, clock)
    lease.acquire()
    clock.advance(40)  # long expired: still ours to renew, not a takeover

    lease.acquire()

    spec = spec_seen(kube_emulator)
    assert (spec["acquireTime"], spec["renewTime"]) == ("2026-11-30T05:22:59.123456Z", "2026-11-30T05:23:39.123456Z")
    assert spec["leaseTransitions"] == 0


def test_from_plan_finds_the_cluster_by_the_given_context(kube_emulator):
    plan = load_plan(SAMPLES / "kubernetes-canary.yaml")
    RolloutLease.from_plan(plan, "emulator", ALICE, kubeconfig=str(kube_emulator.kubeconfig_path)).acquire()
    assert spec_seen(kube_emulator)["holderIdentity"] == ALICE

    with pytest.raises(TargetError, match="kubeconfig: .*no-such-context"):
        RolloutLease.from_plan(plan, "no-such-context", BOB, kubeconfig=str(kube_emulator.kubeconfig_path))


def test_a_release_name_is_made_a_valid_object_name(kube_emulator):
    lease_of(kube_emulator, ALICE, Clock(), rollout="Checkout_2.4.1").acquire()
    assert spec_seen(kube_emulator, "brahma-checkout-2.4.1")["holderIdentity"] == ALICE


def test_a_second_controller_is_told_who_supervises_the_rollout(kube_emulator):
    clock = Clock()
    lease_of(kube_emulator, ALICE, clock).acquire()
    clock.advance(4)

    with pytest.raises(LeaseHeld) as held:
        lease_of(kube_emulator, BOB, clock).acquire()

    assert held.value.holder == ALICE
    assert str(held.value) == (f"{ROLLOUT} is supervised by {ALICE} (Lease {LEASE} in namespace default, renewed 4s ago)")
    assert spec_seen(kube_emulator)["holderIdentity"] == ALICE


def test_an_expired_lease_is_taken_over(kube_emulator):
    clock = Clock()
    alice, bob = lease_of(kube_emulator, ALICE, clock), lease_of(kube_emulator, BOB, clock)
    alice.acquire()
    clock.advance(LEASE_DURATION_S)
    with pytest.raises(LeaseHeld):  # renewTime + leaseDurationSeconds is now: not yet expired
        bob.acquire()
    clock.advance(0.5)

    bob.acquire()

    spec = spec_seen(kube_emulator)
    assert spec["holderIdentity"] == BOB
    assert spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == spec["renewTime"] == micro_time(clock.now)
    assert alice.renew() is False, "alice's controller learns that it lost the rollout"
    assert spec_seen(kube_emulator)["holderIdentity"] == BOB


def test_of_two_controllers_taking_an_expired_lease_at_once_one_wins(kube_emulator):
    clock = Clock()
    lease_of(kube_emulator, MALLORY, clock).acquire()
    clock.advance(60)
    # Both read the expired lease before either update lands: one update meets a 409 and reads again.
    kube_emulator.add_latency(0.5, verb="update", resource="leases")
    contenders = {ALICE: lease_of(kube_emulator, ALICE, clock), BOB: lease_of(kube_emulator, BOB, clock)}
    outcomes: dict[str, BaseException | None] = {}

    def take(holder: str) -> None:
        try:
            contenders[holder].acquire()
            outcomes[holder] = None
        except LeaseHeld as held:
            outcomes[holder] = held

    threads = [threading.Thread(target=take, args=(holder,)) for holder in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    winner = spec_seen(kube_emulator)["holderIdentity"]
    loser = BOB if winner == ALICE else ALICE
    assert winner in contenders and outcomes[winner] is None
    assert isinstance(outcomes[loser], LeaseHeld) and outcomes[loser].holder == winner
    assert requests_answered(kube_emulator, 409) == 1
    assert spec_seen(kube_emulator)["leaseTransitions"] == 1, "the loser wrote nothing"


# --- keeping it ---------------------------------------------------------------------------------


def test_a_lease_stolen_behind_our_back_fails_the_renewal(kube_emulator):
    clock = Clock()
    lease = lease_of(kube_emulator, ALICE, clock)
    lease.acquire()
    clock.advance(3)
    assert lease.renew() is True
    assert spec_seen(kube_emulator)["renewTime"] == micro_time(clock.now)

    steal(kube_emulator, MALLORY, renewed=clock.now)

    assert lease.renew() is False
    assert spec_seen(kube_emulator)["holderIdentity"] == MALLORY


async def test_keep_renews_until_another_holder_takes_the_lease(kube_emulator):
    clock = Clock(step=1.0)  # every renewal writes a later renewTime
    lease = lease_of(kube_emulator, ALICE, clock)
    lease.acquire()
    first_renewal = kube_emulator.get("leases", LEASE)["spec"]["renewTime"]
    lost: list[str] = []
    keeping = asyncio.create_task(lease.keep(lost.append, interval_s=0.01))

    await until(kube_emulator, lambda: kube_emulator.get("leases", LEASE)["spec"]["renewTime"] > first_renewal)
    clock.step = 0  # from here on a renewal has nothing new to write
    steal(kube_emulator, MALLORY, renewed=clock.now)
    await asyncio.wait_for(keeping, timeout=10)

    assert lost == [f"another controller took the rollout over: {ROLLOUT} is supervised by {MALLORY} (Lease {LEASE} in namespace default, renewed 0s ago)"]
    assert spec_seen(kube_emulator)["holderIdentity"] == MALLORY


async def test_keep_rides_out_failed_renewals(kube_emulator):
    clock = Clock(step=1.0)
    lease = lease_of(kube_emulator, ALICE, clock, retry_budget_s=QUICK_RETRIES_S)
    lease.acquire()
    kube_emulator.fail(503, count=None, resource="leases")
    lost: list[str] = []
    keeping = asyncio.create_task(lease.keep(lost.append, interval_s=0.01))
    try:
        await until(kube_emulator, lambda: requests_answered(kube_emulator, 503) >= 6)  # renewals over several ticks
        renewed_before = kube_emulator.get("leases", LEASE)["spec"]["renewTime"]
        kube_emulator.clear_faults()
        await until(kube_emulator, lambda: kube_emulator.get("leases", LEASE)["spec"]["renewTime"] > renewed_before)
        assert not keeping.done() and lost == []
    finally:
        keeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keeping
    assert spec_seen(kube_emulator)["holderIdentity"] == ALICE


# --- letting it go ------------------------------------------------------------------------------


def test_release_lets_the_next_controller_in_at_once(kube_emulator):
    clock = Clock()
    alice = lease_of(kube_emulator, ALICE, clock)
    alice.acquire()
    clock.advance(1)

    alice.release()

    assert "holderIdentity" not in spec_seen(kube_emulator)
    lease_of(kube_emulator, BOB, clock).acquire()  # well within alice's 15 seconds
    spec = spec_seen(kube_emulator)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (BOB, 1)


def test_release_leaves_another_holders_lease_alone(kube_emulator):
    clock = Clock()
    alice, bob = lease_of(kube_emulator, ALICE, clock), lease_of(kube_emulator, BOB, clock)
    alice.acquire()
    clock.advance(30)
    bob.acquire()

    alice.release()

    assert spec_seen(kube_emulator)["holderIdentity"] == BOB


# --- an API that refuses or is out of reach -----------------------------------------------------


def test_an_api_out_of_reach_is_a_clear_target_error(kube_emulator):
    clock = Clock()
    lease = lease_of(kube_emulator, ALICE, clock, retry_budget_s=QUICK_RETRIES_S)
    lease.acquire()
    kube_emulator.stop()
    unreachable = (
        rf"the Lease {re.escape(LEASE)} in namespace default: the Kubernetes API at "
        rf"{re.escape(kube_emulator.url)} is unreachable: .*refused \(still failing after 0.2s of retries\)$"
    )

    with pytest.raises(TargetError, match=rf"^cannot take {unreachable}") as raised:
        lease_of(kube_emulator, BOB, clock, retry_budget_s=QUICK_RETRIES_S).acquire()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(TargetError, match=rf"^cannot renew {unreachable}"):
        lease.renew()
    lease.release()  # never raises

    kube_emulator.start()
    assert spec_seen(kube_emulator)["holderIdentity"] == ALICE, "a release that could not be sent changed nothing"


def test_a_denied_lease_names_what_was_refused(kube_emulator):
    kube_emulator.deny(verb="create", resource="leases")

    with pytest.raises(TargetError) as raised:
        lease_of(kube_emulator, ALICE, Clock()).acquire()

    assert str(raised.value).startswith(f"cannot take the Lease {LEASE} in namespace default: forbidden: create ")
    assert 'cannot create resource "leases" in API group "coordination.k8s.io"' in str(raised.value)


# --- the emulator answers for Leases as an API server does --------------------------------------


def write_lease(kube: KubeEmulator, spec: dict[str, Any]) -> dict[str, Any]:
    """Create (or replace) the lease with `spec` through the repo's client; what the server stored."""
    api = KubeApi(load_api_client(kubeconfig=str(kube.kubeconfig_path)), "default", retry_budget_s=QUICK_RETRIES_S)

    def desired(current: dict[str, Any] | None) -> dict[str, Any]:
        lease = current or {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE}}
        return {**lease, "spec": spec}

    _, written = asyncio.run(api.converge(LEASES, LEASE, desired))
    assert written is not None
    return written


def test_the_emulator_keeps_micro_times_in_their_canonical_form(kube_emulator):
    created = write_lease(kube_emulator, {"holderIdentity": ALICE, "renewTime": "2026-11-30T07:22:59.123456+02:00"})
    assert created["spec"]["renewTime"] == "2026-11-30T05:22:59.123456Z"

    replaced = write_lease(kube_emulator, {"holderIdentity": BOB, "renewTime": "2026-11-30T05:23:00.000001Z"})
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert spec_seen(kube_emulator) == {"holderIdentity": BOB, "renewTime": "2026-11-30T05:23:00.000001Z"}


@pytest.mark.parametrize(
    "spec, refusal",
    [
        (
            {"renewTime": "2026-11-30T05:22:59Z"},
            'failed: 400 Lease in version "v1" cannot be handled as a Lease: parsing time "2026-11-30T05:22:59Z" '
            'as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"',
        ),
        (
            {"acquireTime": 1796016179},
            'failed: 400 Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number into Go value of type string',
        ),
        (
            {"leaseDurationSeconds": 0},
            f'failed: 422 Lease.coordination.k8s.io "{LEASE}" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0',
        ),
        (
            {"leaseTransitions": -1},
            f'failed: 422 Lease.coordination.k8s.io "{LEASE}" is invalid: spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0',
        ),
    ],
)
def test_the_emulator_refuses_lease_fields_an_api_server_refuses(kube_emulator, spec, refusal):
    with pytest.raises(TargetError) as raised:
        write_lease(kube_emulator, {"holderIdentity": ALICE, **spec})
    assert str(raised.value) == f"create leases/{LEASE} in namespace default {refusal}"
    assert kube_emulator.list("leases") == []


# --- the lease around a rollout -----------------------------------------------------------------


@pytest.mark.parametrize("command", [["run", "--headless"], ["supervise"]])
def test_a_second_machine_is_refused_while_another_controller_holds_the_lease(kube_emulator, tmp_path, command):
    bob = lease_of(kube_emulator, BOB, Clock(time.time()))
    bob.acquire()
    plan = SAMPLES / "kubernetes-canary.yaml"
    environment = {**os.environ, "KUBECONFIG": str(kube_emulator.kubeconfig_path)}
    refused = subprocess.run(
        [sys.executable, "-m", "console.app", command[0], str(plan), *command[1:], "--state-dir", str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1, refused.stderr
    assert f"checkout-2.4.1 is supervised by {BOB} (Lease {LEASE} in namespace default" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / f"{ROLLOUT}.jsonl").exists() and not (tmp_path / f"{ROLLOUT}.launch.json").exists(), "nothing was started"
    assert spec_seen(kube_emulator)["holderIdentity"] == BOB


async def test_a_controller_whose_lease_is_taken_stops_and_says_so_then_lets_it_go(kube_emulator, tmp_path):
    apply_sample(kube_emulator, "canary.yaml")
    rollout = kube_rollout(kube_emulator, tmp_path, "kubernetes-canary.yaml", options=ControllerOptions(exit_when_finished=False))
    rollout.controller.clock = VirtualClock(stop_at=300)
    lease = lease_of(kube_emulator, ALICE, Clock(time.time()))
    lease.duration_s = 0.3  # renewed every 0.1 s: the theft is seen at once
    lease.acquire()
    rollout.when(event(ev.SampleTaken), lambda _: steal(kube_emulator, MALLORY, time.time()))
    try:
        await asyncio.wait_for(run_controller(Rollout(rollout.controller, lease=lease)), 30)
    finally:
        await rollout.target.close()
    lost = [e for e in rollout.journal() if isinstance(e, ev.ErrorRaised) and e.where == "lease"]
    assert len(lost) == 1 and MALLORY in lost[0].message and "stops supervising" in lost[0].message
    assert spec_seen(kube_emulator)["holderIdentity"] == MALLORY, "release leaves another holder's lease alone"
