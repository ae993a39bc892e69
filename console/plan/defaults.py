"""The reference defaults of the design card (§1), applied to whatever a plan leaves out."""

from __future__ import annotations

STAGE_1 = {"error_rate": "< 1%", "latency_p99": "< 500ms", "success_rate": "> 99.9%"}
STAGE_2 = {"error_rate": "< 0.5%", "latency_p99": "< 400ms", "success_rate": "> 99.9%"}
STAGE_3 = {"error_rate": "< 0.1%", "latency_p99": "< 300ms", "success_rate": "> 99.95%"}
POST_DEPLOY = {
    "error_rate": "< 0.1%",
    "latency_p50": "< 100ms",
    "latency_p95": "< 200ms",
    "latency_p99": "< 500ms",
    "success_rate": "> 99.95%",
}

CANARY_STAGES = [
    {"weight": 5, "observe": "10m", "criteria": STAGE_1},
    {"weight": 25, "observe": "15m", "criteria": STAGE_2},
    {"weight": 50, "observe": "20m", "criteria": STAGE_3},
    {"weight": 100, "observe": "60m", "criteria": POST_DEPLOY},
]
# Blue-green: green is checked with smoke traffic beside blue, then takes all traffic at once.
BLUE_GREEN_STAGES = [
    {"name": "preview", "weight": 0, "observe": "5m", "criteria": STAGE_1},
    {"name": "switch", "weight": 100, "observe": "60m", "criteria": POST_DEPLOY},
]
ROLLING_STAGES = [{"name": "rolling", "weight": 100, "observe": "60m", "criteria": POST_DEPLOY}]

STAGES_BY_STRATEGY = {"canary": CANARY_STAGES, "blue-green": BLUE_GREEN_STAGES, "rolling": ROLLING_STAGES}

KUBERNETES_STAGE_WEIGHTS = {"blue-green": frozenset({0, 100}), "rolling": frozenset({100})}
"""What a selector switch or an in-place update can do on a cluster: no traffic share in between."""


def kubernetes_weight_problem(strategy: str, *weights: int) -> str | None:
    """Why stages at these weights cannot run on Kubernetes with `strategy` (the first that cannot); None when all can."""
    allowed = KUBERNETES_STAGE_WEIGHTS.get(strategy)
    odd = [weight for weight in weights if allowed is not None and weight not in allowed]
    if not odd:
        return None
    shown = " or ".join(f"{w}%" for w in sorted(allowed or ()))
    return f"a {strategy} release on Kubernetes takes stages at {shown} only, not {odd[0]}%"


def criteria_for_weight(weight: int) -> dict[str, str]:
    """Criteria for a stage that names none: those of the reference stage of that traffic share."""
    if weight >= 100:
        return POST_DEPLOY
    if weight <= 5:
        return STAGE_1
    if weight <= 25:
        return STAGE_2
    return STAGE_3


CRITICAL = {
    "error_rate": "> 1%",
    "success_rate": "< 99%",
    "latency_p99": "> 1000ms",
    "health_check_failures": "> 3",
    "memory_oom_kills": "> 0",
}
WARNING = {"error_rate": "> 0.5%", "latency_p99": "> 500ms", "cpu": "> 80%", "memory": "> 85%"}
CONSECUTIVE = {"critical": 1, "warning": 2}

MONITORING_OBSERVE = "60m"
"""The post-rollout monitoring window added when a plan's stages stop short of 100%."""
