"""What a cluster says before a release: the image its Deployment runs, and how long its last rollout took.

The last rollout's time is read through the API, as the deployment controller leaves it: its Progressing
condition says when the ReplicaSet it names became available (NewReplicaSetAvailable, lastUpdateTime),
and that ReplicaSet's pods were created from the rollout's start on (their earliest creationTimestamp).
Older revisions' pods are gone, so their rollout times are not on the cluster; the journals of past
releases keep those (each stage's traffic shift waited for its rollout).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from console.history.assess import TargetEvidence
from console.plan.model import RolloutPlan

_PROGRESSED = re.compile(r'ReplicaSet "([^"]+)" has successfully progressed')
POD_TEMPLATE_HASH = "pod-template-hash"


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def last_rollout_s(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[float | None, str]:
    """The Deployment's last rollout time from its Progressing condition and its new ReplicaSet's pods, or why none."""
    conditions = (deployment.get("status") or {}).get("conditions") or []
    progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
    match = _PROGRESSED.match((progressing or {}).get("message", ""))
    if progressing is None or progressing.get("reason") != "NewReplicaSetAvailable" or not match:
        return None, f"its last rollout has not finished ({(progressing or {}).get('reason', 'no Progressing condition')})"
    replicaset = match.group(1)
    template_hash = replicaset.rsplit("-", 1)[-1]
    created = [_seconds(pod["metadata"]["creationTimestamp"]) for pod in pods if (pod["metadata"].get("labels") or {}).get(POD_TEMPLATE_HASH) == template_hash]
    if not created:
        return None, f"no pod of ReplicaSet {replicaset} is left to time its rollout by"
    return max(0.0, _seconds(progressing["lastUpdateTime"]) - min(created)), f"ReplicaSet {replicaset}"


async def deployment_evidence(plan: RolloutPlan, context: str | None = None, kubeconfig: str | None = None) -> TargetEvidence:
    """The running image and the last rollout time of the plan's Deployment; TargetError when the cluster cannot be read."""
    from console.targets.kube_api import DEPLOYMENTS, PODS, KubeApi, load_api_client

    name = plan.target.deployment or plan.app
    where = f"deployment/{name} in {plan.target.namespace}"
    api = KubeApi(load_api_client(context or plan.target.context, kubeconfig), plan.target.namespace)
    try:
        deployment = await api.find(DEPLOYMENTS, name)
        if deployment is None:
            return TargetEvidence(rollout_note=f"{where} not found: no rollout time measured on the cluster")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        labels = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
        pods = await api.list(PODS, ",".join(f"{key}={value}" for key, value in labels.items()))
    finally:
        await api.close()
    seconds, said = last_rollout_s(deployment, pods)
    if seconds is None:
        return TargetEvidence(containers[0]["image"], f"the cluster's {where}", rollout_note=f"{where}: {said}: no rollout time measured on the cluster")
    return TargetEvidence(containers[0]["image"], f"the cluster's {where}", (seconds,), f"{where}'s last rollout ({said})")
