"""The Role of deploy/kubernetes grants exactly what the controller asks of the API server.

Every strategy runs on the emulator (a release seen through, a release rolled back), with the Lease
and the pre-flight Kubernetes check; the permission each of the controller's requests needs is read
from the emulator's record of them (kubectl's own, applying the sample objects, are left out).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from console.controller.controller import ControllerOptions
from console.journal import events as ev
from console.plan import load_plan
from console.plan.model import PreflightSpec
from console.preflight import Gate, PreflightContext
from console.targets.kube_lease import RolloutLease
from testbed.kube_emulator import KubeEmulator
from testbed.kube_emulator.rbac import Permission, granted_by, permission_of
from testbed.kubernetes_support import OPERATOR, apply_sample, event, kube_rollout
from tests.conftest import ROOT, SAMPLES, plan_from

ROLE = ROOT / "deploy" / "kubernetes" / "role.yaml"
RELEASES = {
    "kubernetes-canary.yaml": "canary.yaml",
    "kubernetes-canary-httproute.yaml": "canary-httproute.yaml",
    "kubernetes-blue-green.yaml": "blue-green.yaml",
    "kubernetes-rolling.yaml": "rolling.yaml",
}
CAPACITY = {Permission("", "nodes", "list", namespaced=False)}
"""What the pre-flight check reads for capacity across the cluster (and, were nodes readable, the running pods of
every namespace): no Role can grant it, and the check reports capacity as not checked."""


def asked_by_brahma(kube: KubeEmulator) -> set[Permission]:
    asked = {permission_of(record) for record in kube.requests if not (record.user_agent or "").startswith("kubectl")}
    return {permission for permission in asked if permission is not None}


async def release_and_rollback(tmp_path: Path, plan_file: str, manifest: str) -> set[Permission]:
    runs = tmp_path / plan_file
    with KubeEmulator(runs / "kubeconfig") as kube:
        apply_sample(kube, manifest)
        lease = RolloutLease.from_plan(load_plan(SAMPLES / plan_file), None, "brahma pid 1", kubeconfig=str(kube.kubeconfig_path))
        lease.acquire()
        lease.release()
        # Each run starts from the release's old version: the two rolled back first, the one seen through last.
        spiked = kube_rollout(kube, runs / "spiked", plan_file, scenario="error-spike")
        assert await spiked.run() == "rolled_back"
        undone = kube_rollout(kube, runs / "undone", plan_file, options=ControllerOptions(exit_when_finished=False))
        undone.when(event(ev.Completed), lambda e: undone.controller.submit("rollback", OPERATOR))
        undone.when(event(ev.RolledBack), lambda e: undone.controller.stop())
        assert await undone.run() == "rolled_back"
        completed = kube_rollout(kube, runs / "completed", plan_file)
        assert await completed.run() == "completed"
        return asked_by_brahma(kube)


async def preflight(tmp_path: Path, monkeypatch) -> set[Permission]:
    with KubeEmulator(tmp_path / "preflight" / "kubeconfig") as kube:
        apply_sample(kube, "canary.yaml")
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_path))
        plan = plan_from("app: checkout\nimage: r/checkout:2.4.1\ntarget: {kind: kubernetes, namespace: default}\n")
        spec = PreflightSpec(name="cluster", kind="kubernetes", objects=None, timeout=5)
        [result] = await Gate((spec,), PreflightContext(plan)).run_checks(lambda result: None)
        assert result.status == "pass", result.output
        return asked_by_brahma(kube)


async def test_the_role_grants_exactly_what_the_controller_asks(tmp_path, monkeypatch):
    asked = await preflight(tmp_path, monkeypatch)
    for plan_file, manifest in RELEASES.items():
        asked |= await release_and_rollback(tmp_path, plan_file, manifest)
    granted = granted_by(yaml.safe_load(ROLE.read_text()))
    assert sorted(map(str, asked - granted - CAPACITY)) == [], "asked for but not granted"
    assert sorted(map(str, granted - asked)) == [], "granted but never asked for"
    assert CAPACITY <= asked, "the capacity reads are what the Role leaves out"
