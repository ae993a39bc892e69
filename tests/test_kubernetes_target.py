"""The Kubernetes target: pure object functions, client behaviour (config, retries, errors, watch), strategies on the emulator."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.plan import load_plan
from console.plan.model import RolloutPlan
from console.samples import TrackValues
from console.targets.base import TargetError
from console.targets.kube_api import DEPLOYMENTS
from console.targets.kube_objects import (
    canary_replicas,
    changed_by,
    deployment_drift,
    describe_change,
    image_field,
    pod_health,
    restart_baseline,
    rollout_done,
    route_weight,
    with_backends,
    with_canary_weight,
)
from console.targets.kubernetes import KubernetesTarget
from testbed.kube_emulator import KubeEmulator
from tests.conftest import SAMPLES, plan_from

NEW_CHECKOUT = "registry.example.com/checkout:2.4.1"


# --- pure functions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stable", "weight", "routed", "expected"),
    [
        (10, 0, False, 0),
        (10, 5, False, 1),
        (10, 25, False, 3),
        (10, 50, False, 10),
        (3, 5, False, 1),  # never a canary of 0 pods for a share above 0
        (10, 5, True, 1),
        (10, 25, True, 3),
        (10, 50, True, 5),
    ],
)
def test_canary_replicas_approximate_the_weight(stable, weight, routed, expected):
    assert canary_replicas(stable, weight, routed) == expected


def deployment_status(generation=2, observed=2, desired=3, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": desired},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("deployment", "done"),
    [
        (deployment_status(generation=3, updatedReplicas=3, replicas=3, availableReplicas=3), False),  # spec not seen yet
        (deployment_status(updatedReplicas=2, replicas=3, availableReplicas=3), False),  # not every replica updated
        (deployment_status(updatedReplicas=3, replicas=4, availableReplicas=3), False),  # an old replica left
        (deployment_status(updatedReplicas=3, replicas=3, availableReplicas=2), False),  # not all available
        (deployment_status(updatedReplicas=3, replicas=3, availableReplicas=3), True),
        (deployment_status(desired=0), True),  # scaled to zero: nothing to wait for
    ],
)
def test_rollout_done_decides_as_kubectl_rollout_status(deployment, done):
    assert rollout_done(deployment) is done


def test_a_rollout_past_its_progress_deadline_is_an_error():
    stuck = deployment_status(updatedReplicas=1, replicas=3)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": 'ReplicaSet "web-1" has timed out progressing.'}
    ]
    with pytest.raises(TargetError, match="deployment/web exceeded its progress deadline: ReplicaSet"):
        rollout_done(stuck)


def test_describe_change_lists_each_changed_field_and_summarises_a_new_object():
    current = {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"selector": {"app": "web", "colour": "blue"}}}
    proposed = {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"selector": {"app": "web", "colour": "green"}}}
    assert describe_change("switch", "service", current, proposed) == ["switch: service/web spec.selector.colour: blue → green"]
    assert describe_change("switch", "service", current, current) == []
    assert describe_change("preview", "service", None, proposed) == ["preview: create service/web (selector app=web,colour=green)"]


def pod(uid: str, image: str, ready: bool = True, restarts: int = 0, last_end: str | None = None, deleting: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "app", "restartCount": restarts, "lastState": {}}
    if last_end:
        status["lastState"] = {"terminated": {"reason": last_end, "exitCode": 137}}
    metadata: dict[str, Any] = {"uid": uid, "name": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "containerStatuses": [status]},
    }


def test_pod_health_counts_failing_probes_restarts_since_the_start_and_oom_kills_per_track():
    before = [pod("s1", "app:1", restarts=4), pod("s2", "app:1")]
    baseline = restart_baseline(before, "app:2")
    now = [
        pod("s1", "app:1", restarts=5),  # one restart since the rollout started
        pod("s2", "app:1"),
        pod("s3", "app:1", ready=False, deleting=True),  # going away: not judged
        pod("c1", "app:2", ready=False),  # failing readiness
        pod("c2", "app:2", restarts=2, last_end="OOMKilled"),
    ]
    assert pod_health(now, "app:2", baseline) == {
        "health_check_failures": TrackValues(canary=3.0, stable=1.0),
        "memory_oom_kills": TrackValues(canary=1.0, stable=0.0),
    }
    assert pod_health(before, "app:2", baseline)["health_check_failures"] == TrackValues(canary=None, stable=0.0)


def test_route_weights_split_the_stable_backend_and_restore_exactly():
    route = {"spec": {"rules": [{"backendRefs": [{"name": "web", "port": 80, "weight": 100}]}]}}
    split = with_canary_weight(route, "web", "web-canary", 25)
    assert split["spec"]["rules"][0]["backendRefs"] == [
        {"name": "web", "port": 80, "weight": 75},
        {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 25},
    ]
    assert route_weight(split, "web-canary") == 25
    assert with_canary_weight(split, "web", "web-canary", 0) == route
    assert with_backends(split, [[{"name": "web", "port": 80, "weight": 100}]]) == route


# --- configuration --------------------------------------------------------------------------------


def sample_plan(name: str) -> RolloutPlan:
    return load_plan(SAMPLES / name)


def apply_manifests(kube: KubeEmulator, name: str) -> None:
    """Create the objects of sample_configs/kubernetes/NAME and let their rollouts finish."""
    for manifest in yaml.safe_load_all((SAMPLES / "kubernetes" / name).read_text()):
        kube.create(manifest)
    assert kube.wait_idle()


def write_kubeconfig(path: Path, kube: KubeEmulator, **contexts: str) -> Path:
    """A kubeconfig with the emulator's context plus `name=server` ones; the emulator's is current."""
    document = kube.kubeconfig()
    for name, server in contexts.items():
        document["clusters"].append({"name": name, "cluster": {"server": server}})
        document["contexts"].append({"name": name, "context": {"cluster": name, "user": "emulator"}})
    path.write_text(json.dumps(document))
    return path


async def test_the_cluster_is_found_through_kubeconfig_like_kubectl(kube_emulator, tmp_path, monkeypatch):
    apply_manifests(kube_emulator, "canary.yaml")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{kube_emulator.kubeconfig_path}")
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-canary.yaml"))
    try:
        before, _ = await target.prepare()
    finally:
        await target.close()
    assert before["images"] == {"checkout": "registry.example.com/checkout:2.4.0"}


async def test_context_picks_the_cluster_and_an_unknown_context_is_a_clear_error(kube_emulator, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", kube_emulator, elsewhere="http://127.0.0.1:9")
    plan = sample_plan("kubernetes-canary.yaml")
    target = KubernetesTarget.from_plan(plan, context="elsewhere", kubeconfig=str(kubeconfig), retry_budget_s=0.2)
    try:
        with pytest.raises(TargetError, match=r"the Kubernetes API at http://127.0.0.1:9 is unreachable"):
            await target.prepare()
    finally:
        await target.close()
    with pytest.raises(TargetError, match="kubeconfig: .*nowhere"):
        KubernetesTarget.from_plan(plan, context="nowhere", kubeconfig=str(kubeconfig))


def test_without_a_kubeconfig_outside_a_cluster_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TargetError, match="no kubeconfig found"):
        KubernetesTarget.from_plan(sample_plan("kubernetes-canary.yaml"))


@pytest.mark.parametrize(
    ("strategy", "weights"),
    [("rolling", "[50, 100]"), ("blue-green", "[0, 50, 100]")],
)
def test_stage_weights_a_strategy_cannot_honour_are_refused(strategy, weights, kube_emulator):
    stages = ", ".join(f"{{weight: {w}}}" for w in json.loads(weights))
    # A simulator plan (a cluster plan with these stages does not load): the target still guards its callers.
    plan = plan_from(f"app: web\nimage: web:2\nstrategy: {strategy}\nstages: [{stages}]\n")
    with pytest.raises(TargetError, match="takes stages at .* only, not 50%"):
        KubernetesTarget.from_plan(plan, kubeconfig=str(kube_emulator.kubeconfig_path))


# --- the strategies on the emulator ---------------------------------------------------------------


@pytest.fixture
async def canary(kube_emulator: KubeEmulator):
    apply_manifests(kube_emulator, "canary.yaml")
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-canary.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path), retry_budget_s=0.5)
    yield target
    await target.close()


@pytest.fixture
async def blue_green(kube_emulator: KubeEmulator):
    apply_manifests(kube_emulator, "blue-green.yaml")
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-blue-green.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path), retry_budget_s=0.5)
    yield target
    await target.close()


def served_since(kube: KubeEmulator, mark: int) -> list[tuple[str, str, int]]:
    return [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in list(kube.requests)[mark:]]


async def test_prepare_changes_nothing_and_sends_every_write_as_a_dry_run(kube_emulator, canary):
    mark = len(kube_emulator.requests)
    before, changes = await canary.prepare()
    writes = [r for r in list(kube_emulator.requests)[mark:] if r.method != "GET"]
    assert writes and all(r.query.get("dryRun") == "All" for r in writes)
    assert [d["metadata"]["name"] for d in kube_emulator.list("deployments")] == ["checkout"]
    assert changes[0] == (
        "stage 1 (5%): create deployment/checkout-canary (image checkout=registry.example.com/checkout:2.4.1, 1 replicas, selector app=checkout,track=canary)"
    )
    assert before == {
        "strategy": "canary",
        "deployment": "checkout",
        "images": {"checkout": "registry.example.com/checkout:2.4.0"},
        "replicas": 10,
        "revision": 1,
        "canary_deployment": "checkout-canary",
        "canary_existed": False,
        "httproute": None,
        "route_backends": None,
        "canary_service": None,
        "canary_service_existed": False,
        "namespace": "default",
    }


async def test_asking_for_the_weight_already_there_changes_nothing(kube_emulator, canary):
    assert await canary.set_weight(25) is True
    mark = len(kube_emulator.requests)
    assert await canary.set_weight(25) is False
    assert {method for method, _, _ in served_since(kube_emulator, mark)} == {"GET"}
    status = await canary.status()
    assert (status.weight, status.detail["canary_replicas"], status.detail["effective_weight"]) == (25, 3, 23.1)


async def test_a_write_carries_the_resource_version_it_read(kube_emulator, canary):
    stale = kube_emulator.get("deployments", "checkout")
    kube_emulator.patch("deployments", "checkout", {"metadata": {"labels": {"team": "payments"}}})
    mark = len(kube_emulator.requests)

    def annotated(current: dict[str, Any] | None) -> dict[str, Any]:
        changed = json.loads(json.dumps(current))
        changed["metadata"].setdefault("annotations", {})["note"] = "brahma was here"
        return changed

    _, written = await canary.api.converge(DEPLOYMENTS, "checkout", annotated, read=stale)
    assert served_since(kube_emulator, mark) == [("PUT", "checkout", 409), ("GET", "checkout", 200), ("PUT", "checkout", 200)]
    assert written["metadata"]["labels"]["team"] == "payments", "the other writer's change is kept"


async def test_a_denied_request_names_the_verb_and_the_object(kube_emulator, blue_green):
    await blue_green.set_weight(0)
    kube_emulator.deny(verb="update", resource="services")
    with pytest.raises(TargetError, match=r"^forbidden: update services/billing in namespace default \(.*cannot update"):
        await blue_green.set_weight(100)


async def test_a_denied_change_is_caught_by_the_dry_run_before_anything_changes(kube_emulator, canary):
    kube_emulator.deny(verb="create", resource="deployments")
    with pytest.raises(TargetError, match="forbidden: create deployments/checkout-canary in namespace default"):
        await canary.prepare()
    assert [d["metadata"]["name"] for d in kube_emulator.list("deployments")] == ["checkout"]


async def test_a_missing_object_is_named(kube_emulator):
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-rolling.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path))
    try:
        with pytest.raises(TargetError, match="^deployments/search in namespace default not found$"):
            await target.prepare()
    finally:
        await target.close()


async def test_server_errors_are_retried_with_backoff_then_given_up(kube_emulator, canary):
    kube_emulator.fail(code=500, count=3)
    assert await canary.set_weight(5) is True
    kube_emulator.fail(code=503, count=None)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"503 .*still failing after 0.5s of retries"):
        await canary.set_weight(25)
    assert time.monotonic() - started < 2.0, "bounded"


async def test_the_event_loop_keeps_running_while_the_api_is_slow(kube_emulator, canary):
    kube_emulator.add_latency(0.3)  # a loop blocked by a request would stall this long
    longest_gap = 0.0

    async def ticker() -> None:
        nonlocal longest_gap
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest_gap, last = max(longest_gap, now - last), now

    ticking = asyncio.create_task(ticker())
    try:
        await canary.set_weight(5)
    finally:
        ticking.cancel()
    assert longest_gap < 0.15


async def test_a_rollout_is_followed_with_one_watch_not_a_polling_loop(tmp_path):
    with KubeEmulator(tmp_path / "kubeconfig", step_delay=0.1) as kube:
        apply_manifests(kube, "rolling.yaml")
        target = KubernetesTarget.from_plan(sample_plan("kubernetes-rolling.yaml"), kubeconfig=str(kube.kubeconfig_path))
        mark = len(kube.requests)
        started = time.monotonic()
        try:
            assert await target.set_weight(100) is True
        finally:
            await target.close()
        assert time.monotonic() - started > 0.3, "the rollout took several steps"
        deadline = time.monotonic() + 5
        while not any(r.query.get("watch") for r in list(kube.requests)[mark:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # a watch is logged once its stream is closed
        served = list(kube.requests)[mark:]
        assert [(r.method, bool(r.query.get("watch"))) for r in served] == [("GET", False), ("PUT", False), ("GET", True)]


async def test_pod_health_reports_each_track(kube_emulator, canary):
    await canary.prepare()
    await canary.set_weight(50)
    canary_pods = [p["metadata"]["name"] for p in kube_emulator.list("pods", selector="track=canary")]
    kube_emulator.set_pod_health(canary_pods[0], ready=False)
    kube_emulator.set_pod_health(canary_pods[1], oom_killed=True)
    kube_emulator.set_pod_health(selector="track=stable", restart_count=1)
    mark = len(kube_emulator.requests)
    assert await canary.pod_health() == {
        "health_check_failures": TrackValues(canary=2.0, stable=10.0),
        "memory_oom_kills": TrackValues(canary=1.0, stable=0.0),
    }
    assert len(served_since(kube_emulator, mark)) == 1, "one list request a sample"


async def test_a_canary_layout_that_would_get_no_traffic_is_refused(kube_emulator):
    apply_manifests(kube_emulator, "canary.yaml")
    kube_emulator.patch("services", "checkout", {"spec": {"selector": {"track": "stable"}}})
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-canary.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path))
    try:
        with pytest.raises(TargetError, match="service/checkout would send the canary no traffic"):
            await target.prepare()
    finally:
        await target.close()


async def test_blue_green_needs_a_service_that_selects_by_colour(kube_emulator, blue_green):
    kube_emulator.patch("services", "billing", {"spec": {"selector": {"colour": None}}})
    with pytest.raises(TargetError, match="must select pods by a `colour` label"):
        await blue_green.prepare()


async def test_the_smoke_check_fails_when_the_preview_selects_another_version(kube_emulator, blue_green):
    kube_emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stray", "labels": {"app": "billing", "colour": "green"}},
            "spec": {"containers": [{"name": "billing", "image": "registry.example.com/billing:2.0.0"}]},
        }
    )
    with pytest.raises(TargetError, match=r"smoke check failed: service/billing-preview selects 4 ready pods .* and 1 of another version"):
        await blue_green.set_weight(0)
    assert kube_emulator.get("services", "billing")["spec"]["selector"]["colour"] == "blue", "no switch"


async def test_rollback_is_safe_to_repeat_and_checks_what_it_is_given(kube_emulator, canary):
    before, _ = await canary.prepare()
    await canary.set_weight(100)
    assert await canary.rollback(before) is True
    mark = len(kube_emulator.requests)
    assert await canary.rollback(before) is False
    assert {method for method, _, _ in served_since(kube_emulator, mark)} <= {"GET", "DELETE"}
    with pytest.raises(TargetError, match="recorded state is for a rolling release"):
        await canary.rollback({**before, "strategy": "rolling"})


async def test_cancelling_a_rollout_wait_leaves_no_thread_reading_the_watch(kube_emulator):
    apply_manifests(kube_emulator, "rolling.yaml")
    kube_emulator.break_image("registry.example.com/search:1.8.3")  # the rollout never finishes
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-rolling.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path))
    waiting = asyncio.create_task(target.set_weight(100))
    deadline = time.monotonic() + 5
    while not target.api._open_watches and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await target.close()
    # The console quitting mid-wait must not hang on a thread still blocked in the watch.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 2)


@pytest.fixture
async def rolling(kube_emulator: KubeEmulator):
    """The rolling sample on the emulator, its watches one second long, as the server may end them."""
    apply_manifests(kube_emulator, "rolling.yaml")
    target = KubernetesTarget.from_plan(sample_plan("kubernetes-rolling.yaml"), kubeconfig=str(kube_emulator.kubeconfig_path))
    target.api.watch_timeout_s = 1
    yield target
    await target.close()


def watches_since(kube: KubeEmulator, mark: int) -> list[str]:
    return [r.query["timeoutSeconds"] for r in list(kube.requests)[mark:] if r.query.get("watch")]


@pytest.mark.parametrize("hang", [False, True], ids=["ended-by-the-server", "hung"])
async def test_a_silent_watch_cannot_hang_a_rollout_wait(kube_emulator, rolling, hang):
    kube_emulator.silence_watches(hang=hang, count=1)  # the rollout finishes while its watch says nothing
    mark = len(kube_emulator.requests)
    assert await asyncio.wait_for(rolling.set_weight(100), 10) is True
    served = [(r.method, bool(r.query.get("watch"))) for r in list(kube_emulator.requests)[mark:]]
    assert served[:4] == [("GET", False), ("PUT", False), ("GET", True), ("GET", False)], "read afresh after the watch"
    assert watches_since(kube_emulator, mark)[0] == "1", "a server-side timeout on every watch"


async def test_a_wait_watches_again_after_each_silent_watch_until_the_rollout_is_done(kube_emulator, rolling):
    kube_emulator.break_image("registry.example.com/search:1.8.3")
    kube_emulator.silence_watches(count=2)
    mark = len(kube_emulator.requests)
    waiting = asyncio.create_task(rolling.set_weight(100))
    assert await asyncio.to_thread(kube_emulator.wait_for, lambda: len(watches_since(kube_emulator, mark)) >= 2, 10)
    kube_emulator.heal_image("registry.example.com/search:1.8.3")
    kube_emulator.lose_pods("app=search")  # healed pods take the broken ones' place
    assert await asyncio.wait_for(waiting, 15) is True


async def test_a_wait_cut_before_its_watch_opens_leaves_no_thread_reading_it(kube_emulator, rolling):
    kube_emulator.break_image("registry.example.com/search:1.8.3")
    kube_emulator.silence_watches(hang=True)
    kube_emulator.add_latency(2, verb="watch")  # the answer's headers come after the cut
    arrived = kube_emulator.arrival(verb="watch")
    rolling.api.watch_timeout_s = 60
    mark = len(kube_emulator.requests)
    waiting = asyncio.create_task(rolling.set_weight(100))
    assert await asyncio.to_thread(arrived.wait, 10), "the watch request is on its way"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The emulator records a watch once its client has left: no thread reads it when its headers come.
    left = await asyncio.to_thread(kube_emulator.wait_for, lambda: watches_since(kube_emulator, mark) == ["60"], 5)
    assert left, "the watch is still being read"


def test_drift_names_the_field_and_who_changed_it_from_managed_fields():
    deployment = {
        "metadata": {
            "name": "web",
            "managedFields": [
                {"manager": "brahma", "operation": "Update", "time": "2026-01-01T00:00:01Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "subresource": "scale",
                    "time": "2026-01-01T00:00:02Z",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
            ],
        },
        "spec": {"replicas": 7, "template": {"spec": {"containers": [{"name": "web", "image": "web:hotfix"}]}}},
    }
    assert deployment_drift(deployment, "web", {"web": "web:2"}, replicas=3) == [
        "deployment/web spec.template.spec.containers[web].image: web:2 → web:hotfix",
        "deployment/web spec.replicas: 3 → 7 (by kubectl (scale))",
    ]
    assert deployment_drift(deployment, "web", {"web": "web:hotfix"}, replicas=7) == []
    assert deployment_drift(None, "web-canary", {"web": "web:2"}) == ["deployment/web-canary deleted"]
    assert changed_by(deployment, image_field("web")) == "", "managedFields do not name anyone: nothing is made up"


async def test_drift_is_what_others_changed_since_the_release_wrote(kube_emulator, canary):
    before, _ = await canary.prepare()
    await canary.set_weight(25)
    assert await canary.drift(25, before) == []
    written = kube_emulator.get("deployments", "checkout-canary")
    ours = next(e["fieldsV1"] for e in written["metadata"]["managedFields"] if e["manager"] == "brahma")
    assert {"f:replicas", "f:template"} <= ours["f:spec"].keys(), "Brahma writes as field manager brahma"
    mark = len(kube_emulator.requests)
    kube_emulator.patch("deployments", "checkout-canary", {"spec": {"replicas": 7}})
    kube_emulator.patch("deployments", "checkout", {"spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": "r/checkout:2.4.0-hotfix"}]}}}})
    assert await canary.drift(25, before) == [
        "deployment/checkout spec.template.spec.containers[checkout].image: registry.example.com/checkout:2.4.0 → r/checkout:2.4.0-hotfix (by emulator)",
        "deployment/checkout-canary spec.replicas: 3 → 7 (by emulator)",
    ]
    reads = [(r.method, r.path.rsplit("/", 1)[-1]) for r in list(kube_emulator.requests)[mark:] if not r.query.get("watch")]
    assert reads == [("GET", "checkout"), ("GET", "checkout-canary")], "cheap: two reads"


async def test_a_canary_resized_for_a_scaled_stable_is_the_release_own_doing(kube_emulator, canary):
    before, _ = await canary.prepare()
    await canary.set_weight(25)
    kube_emulator.patch("deployments", "checkout", {"spec": {"replicas": 20}})
    assert await canary.drift(25, before) == ["deployment/checkout spec.replicas: 10 → 20 (by emulator)"]
    await canary.set_weight(25)  # the operator resumed: the stage is applied again, for 20 stable pods
    assert kube_emulator.get("deployments", "checkout-canary")["spec"]["replicas"] == 7
    assert await canary.drift(25, before) == ["deployment/checkout spec.replicas: 10 → 20 (by emulator)"], "no drift of its own making"
