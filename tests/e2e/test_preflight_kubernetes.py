"""The kubernetes check against the Kubernetes API emulator, over HTTP with the official client.

The emulator serves no nodes and no ResourceQuotas, so here capacity is reported as not checked
(the arithmetic is table-tested in tests/test_preflight.py)."""

from __future__ import annotations

from typing import Any

import pytest

from console.plan.model import PreflightSpec
from console.preflight import CheckResult, Gate, PreflightContext
from testbed.kube_emulator import CONTEXT, KubeEmulator
from tests.conftest import plan_from

PLAN = "app: checkout\nimage: r/checkout:2.4.1\ntarget: {kind: kubernetes, namespace: default}\n"


def deployment(name: str = "checkout", image: str = "r/checkout:2.4.0", replicas: int = 3) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": name, "image": image, "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    }


def service(name: str = "checkout", selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": selector or {"app": name}, "ports": [{"port": 80}]}}


@pytest.fixture
def cluster(kube_emulator: KubeEmulator, monkeypatch) -> KubeEmulator:
    monkeypatch.setenv("KUBECONFIG", str(kube_emulator.kubeconfig_path))
    return kube_emulator


async def check(objects: list[str] | None = None, plan_text: str = PLAN, **context) -> CheckResult:
    spec = PreflightSpec(name="cluster", kind="kubernetes", objects=objects, timeout=5)
    [result] = await Gate((spec,), PreflightContext(plan_from(plan_text), **context)).run_checks(lambda result: None)
    return result


async def test_ready_objects_pass_and_capacity_is_said_to_be_unchecked(cluster):
    cluster.create(deployment())
    cluster.create(service())
    assert cluster.wait_idle()
    result = await check()
    assert result.status == "pass", result.output
    assert result.output.splitlines() == [
        f"namespace default on {cluster.url}",
        "deployment/checkout: ready, 3/3 available",
        "capacity: the canary release adds up to 2 pods of cpu 250m, memory 256Mi; NOT CHECKED: quotas not readable (HTTP 404), nodes not readable (HTTP 404)",
        "service/checkout: 3 ready endpoints",
    ]


async def test_missing_objects_fail(cluster):
    cluster.create(deployment())
    assert cluster.wait_idle()
    result = await check(["deployment/checkout", "service/checkout", "deployment/checkout-worker"])
    assert result.status == "fail"
    assert "service/checkout: NOT FOUND" in result.output
    assert "deployment/checkout-worker: NOT FOUND" in result.output


async def test_pods_that_never_get_ready_fail_the_deployment_and_leave_the_service_without_endpoints(cluster):
    cluster.break_image("r/checkout:broken")
    cluster.create(deployment(image="r/checkout:broken"))
    cluster.create(service())
    assert cluster.wait_idle()
    result = await check()
    assert result.status == "fail"
    lines = result.output.splitlines()
    assert lines[1].startswith("deployment/checkout: NOT READY: 0/3 available")
    assert lines[-1] == "service/checkout: NO ENDPOINTS: none of the 3 pods its selector matches is ready"


async def test_the_plan_names_the_objects_by_default(cluster):
    cluster.create(deployment("shop-api"))
    cluster.create(service("shop-api-active", selector={"app": "shop-api"}))
    assert cluster.wait_idle()
    plan = "app: checkout\nimage: r/checkout:2\nstrategy: blue-green\ntarget: {kind: kubernetes, deployment: shop-api, service: shop-api-active}\n"
    result = await check(plan_text=plan)
    assert result.status == "pass", result.output
    assert "capacity: the blue-green release adds up to 3 pods" in result.output


async def test_a_denied_read_fails_with_the_status(cluster):
    cluster.create(deployment())
    cluster.deny(verb="get", resource="deployments")
    result = await check(["deployment/checkout"])
    assert result.status == "fail"
    assert result.output.startswith("the Kubernetes API refused: HTTP 403")


async def test_an_api_that_is_down_fails_clearly(cluster):
    cluster.stop()
    result = await check(["deployment/checkout"])
    assert result.status == "fail"
    assert result.output == f"cannot reach the Kubernetes API at {cluster.url}: [Errno 111] Connection refused"


async def test_the_kubeconfig_context_is_chosen(cluster):
    cluster.create(deployment())
    assert cluster.wait_idle()
    assert (await check(["deployment/checkout"], kube_context=CONTEXT)).status == "pass"
    unknown = await check(["deployment/checkout"], kube_context="production")
    assert unknown.status == "fail"
    assert unknown.output.startswith("no Kubernetes configuration: ")
