"""BENCH rollback latency per strategy, and the Kubernetes requests a stage transition and a sample cost.

Against the Kubernetes API emulator (testbed/kube_emulator, in this process, no step delay), with the
sample plans and manifests (sample_configs/kubernetes*):

- rollback_latency_<strategy>_s: the median, over several runs, of the rollback's duration as the
  Controller journals it (`rolled_back.duration_s`): from the operator's rollback decision to the
  stable version serving 100%, confirmed by the API (canary deleted, selector switched back, or
  the undo rolled out). Canary and rolling are rolled back mid-stage; blue-green after the switch.
  rollback_latency_canary_promoted_s is the canary rolled back after full promotion (the stable
  Deployment rolls back to the old image).
- kube_requests_per_stage_transition: the median of requests one set_weight makes, over the stage
  transitions of the canary sample (replicas); the same per strategy on the lines that name it.
- kube_requests_per_sample: requests one pod-health reading makes (the only cluster call a sample
  needs; the metrics themselves come from Prometheus).
- rollback_after_api_outage_s: the API server goes away for 60 s as an operator rolls the canary
  back (replicas sample, the production retry budget and backoff, real time); seconds from the
  API's return until kubectl reads back stable serving all (the canary gone, stable on its old
  image, rolled out). Bounded by the rollback's longest backoff (30 s) plus one attempt.

    python bench/bench_kubernetes.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.controller.controller import ControllerOptions  # noqa: E402
from console.journal import events as ev  # noqa: E402
from console.journal.state import Phase  # noqa: E402
from console.plan import load_plan  # noqa: E402
from console.targets.kubernetes import KubernetesTarget  # noqa: E402
from testbed import SAMPLES  # noqa: E402
from testbed.kube_emulator import KubeEmulator  # noqa: E402
from testbed.kubernetes_support import deployments, event, image, kube_rollout  # noqa: E402

RUNS = 7
SAMPLES_MEASURED = 10
QUIET_S = 0.6
"""A watch is logged when its stream closes, at most 0.5 s after Brahma lets go of it."""

PLANS = {
    "canary": ("kubernetes-canary.yaml", "canary.yaml"),
    "canary_httproute": ("kubernetes-canary-httproute.yaml", "canary-httproute.yaml"),
    "bluegreen": ("kubernetes-blue-green.yaml", "blue-green.yaml"),
    "rolling": ("kubernetes-rolling.yaml", "rolling.yaml"),
}
ROLLBACK_AT_STAGE = {"canary": 1, "bluegreen": 1, "rolling": 0}
OUTAGE_S = 60.0
STABLE_IMAGE = "registry.example.com/checkout:2.4.0"


def create_sample(kube: KubeEmulator, manifest: str) -> None:
    for document in yaml.safe_load_all((SAMPLES / "kubernetes" / manifest).read_text()):
        kube.create(document)
    if not kube.wait_idle():
        raise RuntimeError("the emulator did not settle")


async def rollback_duration(strategy: str, after_promotion: bool = False) -> float:
    plan_file, manifest = PLANS[strategy]
    with tempfile.TemporaryDirectory(prefix="bench-kubernetes-") as work:
        with KubeEmulator(Path(work) / "kubeconfig") as kube:
            create_sample(kube, manifest)
            options = ControllerOptions(exit_when_finished=not after_promotion)
            rollout = kube_rollout(kube, Path(work), plan_file, options=options)
            roll_back = lambda e: rollout.controller.submit("rollback", "bench")  # noqa: E731
            if after_promotion:
                rollout.when(event(ev.Completed), roll_back)
                rollout.when(event(ev.RolledBack), lambda e: rollout.controller.stop())
            else:
                rollout.when(event(ev.SampleTaken, stage=ROLLBACK_AT_STAGE[strategy]), roll_back)
            if await rollout.run() != "rolled_back":
                raise RuntimeError(f"the {strategy} rollout did not roll back")
            return rollout.of(ev.RolledBack)[0].duration_s


def settled_request_count(kube: KubeEmulator) -> int:
    """The request log's length once nothing more has come in for QUIET_S."""
    count, quiet_since = len(kube.requests), time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:
        time.sleep(0.05)
        if len(kube.requests) != count:
            count, quiet_since = len(kube.requests), time.monotonic()
    return count


async def request_counts(strategy: str) -> tuple[list[int], float]:
    """Requests of each stage transition of the sample plan, and of a pod-health reading on average."""
    plan_file, manifest = PLANS[strategy]
    plan = load_plan(SAMPLES / plan_file)
    with tempfile.TemporaryDirectory(prefix="bench-kubernetes-") as work:
        with KubeEmulator(Path(work) / "kubeconfig") as kube:
            create_sample(kube, manifest)
            target = KubernetesTarget.from_plan(plan, kubeconfig=str(kube.kubeconfig_path))
            try:
                await target.prepare()
                transitions = []
                for stage in plan.stages:
                    mark = settled_request_count(kube)
                    await target.set_weight(stage.weight)
                    transitions.append(settled_request_count(kube) - mark)
                mark = settled_request_count(kube)
                for _ in range(SAMPLES_MEASURED):
                    await target.pod_health()
                per_sample = (settled_request_count(kube) - mark) / SAMPLES_MEASURED
            finally:
                await target.close()
    return transitions, per_sample


def stable_serves_all(kube: KubeEmulator) -> bool:
    """What kubectl reads: the stable Deployment alone, on its old image, every replica updated and available."""
    found = deployments(kube)
    if set(found) != {"checkout"} or image(found["checkout"]) != STABLE_IMAGE:
        return False
    status, replicas = found["checkout"].get("status") or {}, found["checkout"]["spec"]["replicas"]
    return status.get("updatedReplicas") == replicas == status.get("availableReplicas")


async def rollback_after_api_outage() -> float:
    plan_file, manifest = PLANS["canary"]
    with tempfile.TemporaryDirectory(prefix="bench-kubernetes-") as work:
        with KubeEmulator(Path(work) / "kubeconfig") as kube:
            create_sample(kube, manifest)
            rollout = kube_rollout(kube, Path(work), plan_file)
            returned = threading.Event()
            returned_at = 0.0

            def come_back() -> None:
                nonlocal returned_at
                kube.start()
                returned_at = time.monotonic()
                returned.set()

            def go_away(e: ev.Event) -> None:
                kube.stop()
                threading.Timer(OUTAGE_S, come_back).start()
                rollout.controller.submit("rollback", "bench")

            rollout.when(event(ev.SampleTaken, stage=1), go_away)
            running = asyncio.create_task(rollout.run())

            def served_at() -> float:
                returned.wait()
                while not stable_serves_all(kube):
                    time.sleep(0.1)
                return time.monotonic()

            served = await asyncio.to_thread(served_at)
            if await running != Phase.ROLLED_BACK:
                raise RuntimeError("the canary was not rolled back after the outage")
            return served - returned_at


async def main() -> None:
    for strategy in ("canary", "bluegreen", "rolling"):
        durations = [await rollback_duration(strategy) for _ in range(RUNS)]
        print(f"BENCH rollback_latency_{strategy}_s {statistics.median(durations):.3f} s", flush=True)
    promoted = [await rollback_duration("canary", after_promotion=True) for _ in range(RUNS)]
    print(f"BENCH rollback_latency_canary_promoted_s {statistics.median(promoted):.3f} s", flush=True)
    per_sample: list[float] = []
    for strategy in PLANS:
        transitions, requests_a_sample = await request_counts(strategy)
        per_sample.append(requests_a_sample)
        name = "kube_requests_per_stage_transition" + ("" if strategy == "canary" else f"_{strategy}")
        print(f"BENCH {name} {statistics.median(transitions):g} count", flush=True)
    print(f"BENCH kube_requests_per_sample {statistics.mean(per_sample):g} count", flush=True)
    print(f"BENCH rollback_after_api_outage_s {await rollback_after_api_outage():.1f} s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
