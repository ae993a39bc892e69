"""The Kubernetes target: a release on a cluster, by canary, blue-green or rolling update.

    target = KubernetesTarget.from_plan(plan, context="prod")

The cluster is found the way kubectl finds it (see `load_api_client`); the plan's `target`
section names the namespace and the objects (the Deployment defaults to the app's name). Each
strategy's mechanics live in its own module (kube_canary, kube_bluegreen, kube_rolling); this
class adds what all three share: the client, the stage weights each strategy can honour, and the
pods' health for the metrics.

Conventions the cluster's objects follow:

- canary: Brahma creates `<deployment>-canary` from the stable Deployment with the label
  track=canary added to its selector and pod template (the stable Deployment is never changed
  until promotion; labelling its pod template track=stable is recommended, so metrics and a
  route's stable Service can tell the tracks apart). Without an HTTPRoute the stable Service must
  select on labels both tracks share (e.g. `app`).
- blue-green: Deployments `<deployment>-blue` and `<deployment>-green`, the active Service
  selecting one by its `colour` label; `<service>-preview` (or the plan's preview_service)
  selects the new colour.
- rolling: the Deployment itself.
"""

from __future__ import annotations

from typing import Any

from console.plan.defaults import kubernetes_weight_problem
from console.plan.model import RolloutPlan
from console.samples import TrackValues
from console.targets.base import RollbackReadBack, TargetError, TargetStatus
from console.targets.kube_api import PODS, RETRY_BUDGET_S, KubeApi, load_api_client
from console.targets.kube_bluegreen import BlueGreenStrategy
from console.targets.kube_canary import CanaryStrategy
from console.targets.kube_objects import RestartBaseline, pod_health, restart_baseline
from console.targets.kube_release import ROLLOUT_TIMEOUT_S, Release, Strategy
from console.targets.kube_rolling import RollingStrategy

STRATEGIES: dict[str, type[Strategy]] = {"canary": CanaryStrategy, "blue-green": BlueGreenStrategy, "rolling": RollingStrategy}


class KubernetesTarget:
    """The Target protocol on a cluster; every call idempotent, every blocking call in a thread."""

    def __init__(self, api: KubeApi, strategy: Strategy):
        self.api, self.strategy = api, strategy
        self._restart_baseline: RestartBaseline | None = None

    @classmethod
    def from_plan(
        cls,
        plan: RolloutPlan,
        context: str | None = None,
        *,
        kubeconfig: str | None = None,
        retry_budget_s: float = RETRY_BUDGET_S,
        rollout_timeout_s: float = ROLLOUT_TIMEOUT_S,
    ) -> KubernetesTarget:
        """The target for a plan; `context` (--context) wins over the plan's, `kubeconfig` over $KUBECONFIG."""
        # Plans are checked when loaded and the command line when read; this guards direct callers.
        problem = kubernetes_weight_problem(plan.strategy, *(stage.weight for stage in plan.stages))
        if problem:
            raise TargetError(problem)
        client = load_api_client(context, kubeconfig, plan_context=plan.target.context)
        api = KubeApi(client, plan.target.namespace, retry_budget_s=retry_budget_s)
        return cls(api, STRATEGIES[plan.strategy](api, Release.from_plan(plan, rollout_timeout_s)))

    @property
    def image(self) -> str:
        return self.strategy.release.image

    async def prepare(self) -> tuple[dict[str, Any], list[str]]:
        """A server-side dry run of every change and its diff, and the state before (for rollback)."""
        before, changes = await self.strategy.prepare()
        await self._pods_now()  # restarts count from here
        # Where the objects are, so the runbook's kubectl commands for a rollback by hand name it.
        return {**before, "namespace": self.api.namespace}, changes

    async def set_weight(self, weight: int) -> bool:
        return await self.strategy.set_weight(weight)

    async def rollback(self, before: dict[str, Any]) -> bool:
        return await self.strategy.rollback(before)

    async def read_back_rollback(self, before: dict[str, Any]) -> RollbackReadBack:
        return await self.strategy.read_back_rollback(before)

    async def finish(self) -> None:
        await self.strategy.finish()

    async def drift(self, weight: int, before: dict[str, Any]) -> list[str]:
        return await self.strategy.drift(weight, before)

    async def status(self) -> TargetStatus:
        return await self.strategy.status()

    async def pod_health(self) -> dict[str, TrackValues]:
        """health_check_failures and memory_oom_kills, new version (canary) beside the old (stable).

        One list request. Restarts count from the first look at the pods (`prepare`, or the first
        call after a resume); pods of the new version count all their restarts.
        """
        return pod_health(await self._pods_now(), self.image, self._restart_baseline or {})

    async def _pods_now(self) -> list[dict[str, Any]]:
        pods = await self.api.list(PODS, await self.strategy.pod_selector())
        if self._restart_baseline is None:
            self._restart_baseline = restart_baseline(pods, self.image)
        return pods

    async def close(self) -> None:
        await self.api.close()
