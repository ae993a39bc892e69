"""What the Kubernetes end-to-end tests share: a rollout of a sample plan on the emulator, and kubectl.

A rollout runs the sample plan (sample_configs/kubernetes-*.yaml) through the real Controller
against the emulator, whose objects come from the sample manifests applied with kubectl. Metrics
come from the simulator's scenarios (healthy, error-spike, ...), their canary share following
the controller's weight; time is virtual, so an hour's window passes in an instant while every
cluster call happens for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from console.controller.clock import Clock, VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state import Phase
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.targets.kubernetes import KubernetesTarget
from testbed import SAMPLES
from testbed.kube_emulator import KubeEmulator

KUBECTL = shutil.which("kubectl") or "kubectl"
KUBECTL_TIMEOUT_S = 60
OPERATOR = "captain@laptop"
ROLLBACK_BUDGET_S = 1.0
"""Brahma's own time from the rollback decision to stable serving 100%, the design's aim."""


def kubectl(kube: KubeEmulator, *args: str) -> str:
    """Run kubectl against the emulator (no shell, a timeout, its own KUBECONFIG) and return stdout."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.kubeconfig_path),
        "KUBECACHEDIR": str(kube.kubeconfig_path.parent / "kube-cache"),
    }
    result = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S)
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def kubectl_json(kube: KubeEmulator, *args: str) -> dict[str, Any]:
    return json.loads(kubectl(kube, "get", *args, "-o", "json"))


def deployments(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    """Every Deployment by name, as `kubectl get deploy -o json` shows them."""
    return {item["metadata"]["name"]: item for item in kubectl_json(kube, "deployments")["items"]}


def image(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def apply_sample(kube: KubeEmulator, manifest: str) -> None:
    """`kubectl apply` a sample manifest (sample_configs/kubernetes/NAME) and wait until it has rolled out."""
    kubectl(kube, "apply", "-f", str(SAMPLES / "kubernetes" / manifest))
    for name in deployments(kube):
        kubectl(kube, "rollout", "status", f"deployment/{name}", "--timeout=20s")


class _TrafficShare:
    """Stands in for the simulator's cluster: the canary's share of traffic is the controller's weight."""

    def __init__(self) -> None:
        self.controller: Controller | None = None

    @property
    def cluster(self) -> SimpleNamespace:
        state = self.controller.state if self.controller else None
        deployed = state is not None and state.stage >= 0 and state.phase not in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
        return SimpleNamespace(weight=state.weight if state else 0, new_deployed=deployed)


@dataclass
class KubeRollout:
    """A controller on a sample plan, the Kubernetes target on the emulator, and what it emitted."""

    kube: KubeEmulator
    controller: Controller
    target: KubernetesTarget
    events: list[ev.Event] = field(default_factory=list)

    def when(self, happens: Callable[[ev.Event], bool], action: Callable[[Any], None]) -> None:
        """Call `action(event)` the first time the controller emits an event for which `happens` holds."""
        done = False

        def listener(event: ev.Event) -> None:
            nonlocal done
            if not done and happens(event):
                done = True
                action(event)

        self.controller.subscribe(listener)

    async def run(self) -> Phase:
        try:
            return await self.controller.run()
        finally:
            self.controller.journal.close()
            await self.target.close()

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def journal(self) -> list[ev.Event]:
        return list(read_events(self.controller.journal.path))


def kube_rollout(
    kube: KubeEmulator,
    state_dir: Path,
    plan_file: str,
    scenario: str = "healthy",
    options: ControllerOptions | None = None,
    retry_budget_s: float = 3.0,
    wall_clock: Clock | None = None,
) -> KubeRollout:
    """The sample plan `plan_file` as a rollout on the emulator, judged on a simulator scenario.

    `wall_clock` paces a failing rollback's retries (real time by default)."""
    plan = load_plan(SAMPLES / plan_file)
    target = KubernetesTarget.from_plan(plan, kubeconfig=str(kube.kubeconfig_path), retry_budget_s=retry_budget_s)
    share = _TrafficShare()
    metrics = SimMetricSource(load_scenario(scenario), share)  # type: ignore[arg-type]
    controller = Controller(
        plan,
        target,
        metrics,
        RolloutFiles(state_dir, plan.name).journal,
        VirtualClock(),
        options or ControllerOptions(),
        actor="tester@host",
        wall_clock=wall_clock,
    )
    share.controller = controller
    rollout = KubeRollout(kube, controller, target)
    controller.subscribe(rollout.events.append)
    return rollout


@contextlib.asynccontextmanager
async def prepared_target(kube: KubeEmulator, state_dir: Path, plan_file: str) -> AsyncIterator[tuple[KubernetesTarget, dict[str, Any]]]:
    """The sample plan's target on the emulator, prepared: (target, the state before), closed after."""
    target = kube_rollout(kube, state_dir, plan_file).target
    try:
        before, _ = await target.prepare()
        yield target, before
    finally:
        await target.close()


def api_gone_then_back(rollout: KubeRollout, stage: int) -> None:
    """The API server goes away at the stage's first sample; once the rollout has paused on the failed
    shift, it comes back and the operator resumes."""
    kube = rollout.kube
    rollout.when(event(ev.SampleTaken, stage=stage), lambda e: kube.stop())

    def come_back(e: ev.Paused) -> None:
        kube.start()
        rollout.controller.submit("resume", OPERATOR)

    rollout.when(event(ev.Paused, trigger="target"), come_back)


def event(kind: type[ev.Event], **fields: Any) -> Callable[[ev.Event], bool]:
    """A test for events of `kind` whose fields have these values: event(ev.SampleTaken, stage=1)."""
    return lambda e: isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())


def requests_answered(kube: KubeEmulator, status: int) -> int:
    return sum(1 for record in list(kube.requests) if record.status == status)
