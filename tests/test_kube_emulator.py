"""The Kubernetes API emulator, proven against kubectl and the official kubernetes client over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from testbed.kube_emulator import KubeEmulator

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
REPO = Path(__file__).resolve().parent.parent

APP_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"""

ROUTE_MANIFEST = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
  - name: gateway
  hostnames: ["web.example.com"]
  rules:
  - backendRefs:
    - {name: web-stable, port: 80, weight: 90}
    - {name: web-canary, port: 80, weight: 10}
"""


def deployment(name: str = "web", image: str = "nginx:1.25", replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
            **spec,
        },
    }


def kubectl(kube: KubeEmulator, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.kubeconfig_path),
        "KUBECACHEDIR": str(kube.kubeconfig_path.parent / "kube-cache"),
    }
    result = subprocess.run([KUBECTL or "kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def image_of(kube: KubeEmulator, name: str = "web") -> str:
    return kube.get("deployments", name)["spec"]["template"]["spec"]["containers"][0]["image"]


def replicasets_of(kube: KubeEmulator, name: str = "web") -> list[dict[str, Any]]:
    return kube.list("replicasets", selector=f"app={name}")


def revision(obj: dict[str, Any]) -> str:
    return obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"]


@pytest.fixture
def api_client(kube_emulator: KubeEmulator):
    api = config.new_client_from_config(config_file=str(kube_emulator.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def status_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


# --- kubectl ------------------------------------------------------------------------------------


@needs_kubectl
def test_kubectl_get_deployments_prints_the_server_side_table(kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(deployment())
    assert kube_emulator.wait_idle()

    lines = kubectl(kube_emulator, "get", "deployments").stdout.splitlines()

    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["web", "3/3", "3", "3"]


@needs_kubectl
def test_kubectl_apply_creates_then_configures(kube_emulator: KubeEmulator) -> None:
    created = kubectl(kube_emulator, "apply", "-f", "-", stdin=APP_MANIFEST).stdout
    assert created.splitlines() == ["deployment.apps/web created", "service/web created"]

    changed = APP_MANIFEST.replace("nginx:1.25", "nginx:1.26").replace("replicas: 3", "replicas: 4")
    configured = kubectl(kube_emulator, "apply", "-f", "-", stdin=changed).stdout

    assert configured.splitlines() == ["deployment.apps/web configured", "service/web unchanged"]
    live = kube_emulator.get("deployments", "web")
    assert (image_of(kube_emulator), live["spec"]["replicas"], live["metadata"]["generation"]) == ("nginx:1.26", 4, 2)
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
    patch = [r for r in kube_emulator.requests if r.method == "PATCH" and r.path.endswith("/deployments/web")]
    assert patch[-1].content_type == "application/strategic-merge-patch+json"
    assert kubectl(kube_emulator, "apply", "-f", "-", stdin=changed).stdout.splitlines() == [
        "deployment.apps/web unchanged",
        "service/web unchanged",
    ]


@needs_kubectl
def test_kubectl_rollout_status_follows_a_stepped_rollout(tmp_path: Path) -> None:
    with KubeEmulator(tmp_path / "kubeconfig", step_delay=0.2) as kube:
        kube.create(deployment(replicas=4))
        assert kube.wait_for(lambda: kube.get("deployments", "web").get("status", {}).get("availableReplicas") == 4)
        kubectl(kube, "set", "image", "deployment/web", "web=nginx:1.26")

        result = kubectl(kube, "rollout", "status", "deployment/web", "--timeout=20s")

        assert "Waiting for deployment" in result.stdout
        assert result.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
        status = kube.get("deployments", "web")["status"]
        assert (status["updatedReplicas"], status["availableReplicas"], status["replicas"]) == (4, 4, 4)


@needs_kubectl
def test_kubectl_set_image_history_and_undo(kube_emulator: KubeEmulator) -> None:
    kubectl(kube_emulator, "apply", "-f", "-", stdin=APP_MANIFEST)
    kubectl(kube_emulator, "rollout", "status", "deployment/web", "--timeout=20s")
    first_rs = replicasets_of(kube_emulator)[0]["metadata"]["name"]

    kubectl(kube_emulator, "set", "image", "deployment/web", "web=nginx:1.26")
    kubectl(kube_emulator, "rollout", "status", "deployment/web", "--timeout=20s")
    history = kubectl(kube_emulator, "rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    undone = kubectl(kube_emulator, "rollout", "undo", "deployment/web").stdout
    kubectl(kube_emulator, "rollout", "status", "deployment/web", "--timeout=20s")

    assert undone.strip() == "deployment.apps/web rolled back"
    assert image_of(kube_emulator) == "nginx:1.25"
    live = kube_emulator.get("deployments", "web")
    reused = kube_emulator.get("replicasets", first_rs)
    assert (revision(live), revision(reused), reused["spec"]["replicas"]) == ("3", "3", 3)
    history = kubectl(kube_emulator, "rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


@needs_kubectl
def test_kubectl_get_httproutes_as_json(kube_emulator: KubeEmulator) -> None:
    kubectl(kube_emulator, "apply", "-f", "-", stdin=ROUTE_MANIFEST)
    kubectl(
        kube_emulator,
        "apply",
        "-f",
        "-",
        stdin=ROUTE_MANIFEST.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50"),
    )

    listed = json.loads(kubectl(kube_emulator, "get", "httproutes", "-o", "json").stdout)

    [route] = listed["items"]
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    header, row = kubectl(kube_emulator, "get", "httproutes").stdout.splitlines()
    assert (header.split(), row.split()[:2]) == (["NAME", "HOSTNAMES", "AGE"], ["web", "web.example.com"])


@needs_kubectl
def test_kubectl_apply_server_dry_run_stores_nothing(kube_emulator: KubeEmulator) -> None:
    kubectl(kube_emulator, "apply", "-f", "-", stdin=APP_MANIFEST)
    assert kube_emulator.wait_idle()
    before = kube_emulator.get("deployments", "web")

    result = kubectl(kube_emulator, "apply", "--dry-run=server", "-f", "-", stdin=APP_MANIFEST.replace("nginx:1.25", "nginx:9.9"))

    assert "deployment.apps/web configured (server dry run)" in result.stdout
    assert kube_emulator.get("deployments", "web") == before
    fresh = kubectl(kube_emulator, "apply", "--dry-run=server", "-f", "-", stdin=ROUTE_MANIFEST)
    assert "created (server dry run)" in fresh.stdout
    assert kube_emulator.list("httproutes") == []


@needs_kubectl
def test_kubectl_rollout_status_fails_past_the_progress_deadline(kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(deployment(replicas=4, progressDeadlineSeconds=1))
    kube_emulator.break_image("nginx:broken")

    kubectl(kube_emulator, "set", "image", "deployment/web", "web=nginx:broken")
    result = kubectl(kube_emulator, "rollout", "status", "deployment/web", "--timeout=20s", check=False)

    assert result.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in result.stderr
    progressing = kube_emulator.get("deployments", "web")["status"]["conditions"][-1]
    assert (progressing["type"], progressing["status"], progressing["reason"]) == (
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
    )
    pods = kubectl(kube_emulator, "get", "pods", "--no-headers").stdout
    assert pods.count("ImagePullBackOff") == 2 and pods.count("Running") == 3


@needs_kubectl
def test_kubectl_scale_and_delete_cascade(kube_emulator: KubeEmulator) -> None:
    kubectl(kube_emulator, "apply", "-f", "-", stdin=APP_MANIFEST)
    kubectl(kube_emulator, "scale", "deployment/web", "--replicas=5")
    assert kube_emulator.wait_idle()
    assert len(kube_emulator.list("pods", selector="app=web")) == 5

    kubectl(kube_emulator, "delete", "deployment", "web")

    assert kube_emulator.list("replicasets") == [] and kube_emulator.list("pods") == []


WATCH_DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1"


@needs_kubectl
def test_kubectl_sees_a_silent_watch_end_at_its_timeout_and_a_hung_one_only_at_its_own(
    kube_emulator: KubeEmulator,
) -> None:
    kube_emulator.create(deployment())
    assert kube_emulator.wait_idle()
    kube_emulator.silence_watches()
    started = time.monotonic()
    silent = kubectl(kube_emulator, "get", "--raw", WATCH_DEPLOYMENTS, "--request-timeout=10s")
    assert (silent.stdout, silent.returncode) == ("", 0), "opened, nothing sent, ended by the server"
    assert 1 <= time.monotonic() - started < 5, "at its timeoutSeconds, long before kubectl's own timeout"

    kube_emulator.clear_faults()
    kube_emulator.silence_watches(hang=True)
    started = time.monotonic()
    hung = kubectl(kube_emulator, "get", "--raw", WATCH_DEPLOYMENTS, "--request-timeout=2s", check=False)
    assert hung.returncode == 1, "only kubectl's own timeout ends it"
    assert "Client.Timeout" in hung.stderr or "context deadline exceeded" in hung.stderr
    assert time.monotonic() - started >= 2
    shown = kubectl(kube_emulator, "get", "deployment", "web", "--watch", "--request-timeout=2s")
    assert shown.stdout.split()[5:7] == ["web", "3/3"], "the list is shown, then the hung watch times out"

    kube_emulator.clear_faults()
    watched = kubectl(kube_emulator, "get", "--raw", WATCH_DEPLOYMENTS, "--request-timeout=10s")
    assert json.loads(watched.stdout.splitlines()[0])["type"] == "ADDED"


def owners(obj: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """managedFields by (manager, subresource)."""
    return {(e["manager"], e.get("subresource")): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


@needs_kubectl
def test_managed_fields_say_which_manager_set_which_field(kube_emulator: KubeEmulator) -> None:
    kubectl(kube_emulator, "apply", "-f", "-", stdin=APP_MANIFEST)
    kubectl(kube_emulator, "scale", "deployment/web", "--replicas=5")
    kubectl(kube_emulator, "set", "image", "deployment/web", "web=nginx:1.26")
    assert kube_emulator.wait_idle()

    shown = json.loads(kubectl(kube_emulator, "get", "deployment/web", "-o", "json", "--show-managed-fields").stdout)
    fields = owners(shown)
    assert fields[("kubectl", "scale")] == {"f:spec": {"f:replicas": {}}}, "kubectl scale: its User-Agent names it"
    assert fields[("kubectl-set", None)] == {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}}
    applied = fields[("kubectl-client-side-apply", None)]
    assert "f:replicas" not in applied["f:spec"], "a field changed by another manager is theirs now"
    assert 'k:{"name":"web"}' in applied["f:spec"]["f:template"]["f:spec"]["f:containers"], "the rest of the container stays"
    assert "f:status" in fields[("kube-controller-manager", "status")]
    entry = next(e for e in shown["metadata"]["managedFields"] if e["manager"] == "kubectl-set")
    assert (entry["operation"], entry["apiVersion"], entry["fieldsType"]) == ("Update", "apps/v1", "FieldsV1") and entry["time"]
    plain = json.loads(kubectl(kube_emulator, "get", "deployment/web", "-o", "json").stdout)
    assert "managedFields" not in plain["metadata"], "kubectl hides them unless asked"


def test_a_client_writes_as_its_field_manager_or_its_user_agent(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment(), field_manager="brahma")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})
    fields = owners(kube_emulator.get("deployments", "web"))
    assert fields[("OpenAPI-Generator", None)] == {"f:spec": {"f:replicas": {}}}
    assert "f:template" in fields[("brahma", None)]["f:spec"]
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}}, field_manager="other")
    assert ("other", None) not in owners(kube_emulator.get("deployments", "web")), "no change, no claim"


@needs_kubectl
def test_kubectl_typed_create_gets_a_clear_415(kube_emulator: KubeEmulator) -> None:
    """kubectl's generators (create configmap, run) send protobuf, which the emulator does not decode."""
    result = kubectl(kube_emulator, "create", "configmap", "flags", "--from-literal=a=b", check=False)

    assert result.returncode == 1
    assert "reads JSON request bodies only" in result.stderr


# --- the kubernetes client: errors --------------------------------------------------------------


def test_stale_update_is_a_409_conflict(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    stale = apps.read_namespaced_deployment("web", "default")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})

    stale.spec.replicas = 5
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment("web", "default", stale)

    body = status_body(raised.value)
    assert raised.value.status == 409
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "Conflict", 409)
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again'
    )
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4


def test_update_with_the_current_version_succeeds_and_bumps_it(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "flags"}, "data": {"a": "1"}})
    created.data["a"] = "2"

    replaced = core.replace_namespaced_config_map("flags", "default", created)

    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)


def test_missing_object_is_a_404(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment("ghost", "default")

    body = status_body(raised.value)
    assert (raised.value.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'deployments.apps "ghost" not found',
    )
    assert body["details"] == {"name": "ghost", "group": "apps", "kind": "deployments"}


def test_creating_an_existing_name_is_409_already_exists(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "flags"}})
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("default", {"metadata": {"name": "flags"}})

    assert (raised.value.status, status_body(raised.value)["reason"]) == (409, "AlreadyExists")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda d: d["spec"]["template"]["spec"].update(containers=[]),
            "spec.template.spec.containers",
            "Required value",
        ),
        (
            lambda d: d["spec"]["template"]["metadata"].update(labels={"app": "other"}),
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`',
        ),
        (
            lambda d: d["spec"].update(replicas=-1),
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
    ids=["no-containers", "selector-mismatch", "negative-replicas"],
)
def test_invalid_deployment_is_a_422(kube_emulator: KubeEmulator, apps: client.AppsV1Api, change, field, message) -> None:
    manifest = deployment()
    change(manifest)

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment("default", manifest)

    body = status_body(raised.value)
    assert (raised.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == f'Deployment.apps "web" is invalid: {field}: {message}'
    assert {"field": field, "message": message} in [{k: cause[k] for k in ("field", "message")} for cause in body["details"]["causes"]]
    assert kube_emulator.list("deployments") == []


def test_denied_request_is_a_403(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    core.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    kube_emulator.deny(verb="patch", resource="services")

    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_service("web", "default", {"metadata": {"labels": {"a": "b"}}})

    body = status_body(raised.value)
    assert (raised.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('services "web" is forbidden: User "emulator" cannot patch resource "services" in API group "" in the namespace "default"')
    assert core.read_namespaced_service("web", "default").metadata.name == "web"


def test_a_wrong_token_is_401(kube_emulator: KubeEmulator) -> None:
    request = urllib.request.Request(f"{kube_emulator.url}/api/v1/namespaces", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)

    assert raised.value.code == 401


# --- the kubernetes client: reads, writes, watches ------------------------------------------------


def test_a_lease_taken_with_a_stale_version_conflicts(kube_emulator: KubeEmulator, api_client: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api_client)
    lease = leases.create_namespaced_lease("default", {"metadata": {"name": "brahma-web"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})
    lease.spec.holder_identity = "b"
    leases.replace_namespaced_lease("brahma-web", "default", lease)

    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as raised:
        leases.replace_namespaced_lease("brahma-web", "default", lease)

    assert raised.value.status == 409
    assert leases.read_namespaced_lease("brahma-web", "default").spec.holder_identity == "b"


def test_list_with_label_and_field_selectors(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"app": "a", "tier": "web"}), ("b", {"app": "b"}), ("c", {"app": "c", "tier": "db"})]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(**selectors: str) -> list[str]:
        return [item.metadata.name for item in core.list_namespaced_config_map("default", **selectors).items]

    assert names(label_selector="app in (a,b)") == ["a", "b"]
    assert names(label_selector="app notin (a),tier") == ["c"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="!tier") == ["b"]
    assert names(label_selector="app=c,tier=db") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="app in (a,b,c)") == ["a", "c"]


def test_patch_types(kube_emulator: KubeEmulator, apps: client.AppsV1Api, api_client: client.ApiClient) -> None:
    manifest = deployment()
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    apps.create_namespaced_deployment("default", manifest)

    strategic = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    assert [(c.name, c.image) for c in strategic.spec.template.spec.containers] == [
        ("web", "nginx:2"),
        ("sidecar", "envoy:1"),
    ]

    merged = apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:3"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert [(c.name, c.image) for c in merged.spec.template.spec.containers] == [("web", "nginx:3")]

    json_patched = apps.patch_namespaced_deployment("web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 1}])
    assert json_patched.spec.replicas == 1

    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        "default",
        "httproutes",
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"}, "spec": {}},
    )
    with pytest.raises(ApiException) as raised:
        custom.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            "default",
            "httproutes",
            "web",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert raised.value.status == 415


def test_server_side_dry_run_validates_without_storing(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    answer = apps.create_namespaced_deployment("default", deployment(), dry_run="All")
    assert answer.metadata.name == "web" and answer.spec.strategy.type == "RollingUpdate"
    assert kube_emulator.list("deployments") == []

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment("default", deployment(replicas=-2), dry_run="All")
    assert raised.value.status == 422


def test_watch_sees_modified_events_and_resumes(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    assert kube_emulator.wait_idle()
    start = apps.list_namespaced_deployment("default").metadata.resource_version

    def change_image() -> None:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})

    threading.Timer(0.1, change_image).start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(apps.list_namespaced_deployment, "default", resource_version=start, timeout_seconds=10):
        live = event["object"]
        seen.append((event["type"], live.metadata.resource_version, live.spec.template.spec.containers[0].image))
        if live.status.observed_generation == 2 and live.status.updated_replicas == live.status.replicas == 3:
            stream.stop()

    assert seen[0][0::2] == ("MODIFIED", "nginx:2")
    assert {kind for kind, _, _ in seen} == {"MODIFIED"}
    assert len(seen) > 2  # the rollout's status changes, not just the spec change

    assert kube_emulator.wait_idle()
    replay = [
        (
            event["type"],
            event["object"].metadata.resource_version,
            event["object"].spec.template.spec.containers[0].image,
        )
        for event in watch.Watch().stream(apps.list_namespaced_deployment, "default", resource_version=start, timeout_seconds=1)
    ]
    assert replay[: len(seen)] == seen


def test_watch_reports_objects_leaving_the_selector_as_deleted(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "flags", "labels": {"track": "canary"}}})
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("flags", "default", {"metadata": {"labels": {"track": "stable"}}})

    events = [
        event["type"]
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="track=canary",
            resource_version=start,
            timeout_seconds=1,
        )
    ]

    assert events == ["DELETED"]


def test_a_silent_watch_sends_nothing_then_ends_at_its_timeout(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    assert kube_emulator.wait_idle()
    start = apps.list_namespaced_deployment("default").metadata.resource_version
    kube_emulator.silence_watches(count=1, resource="deployments")
    threading.Timer(0.1, lambda: apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})).start()

    started = time.monotonic()
    missed = list(watch.Watch().stream(apps.list_namespaced_deployment, "default", resource_version=start, timeout_seconds=1))
    assert missed == [] and 1 <= time.monotonic() - started < 3
    assert kube_emulator.faults.snapshot() == [], "one watch silenced, as asked"
    seen = watch.Watch().stream(apps.list_namespaced_deployment, "default", resource_version=start, timeout_seconds=1)
    assert 4 in {event["object"].spec.replicas for event in seen}, "the next watch catches up"


def test_a_hung_watch_ends_only_when_the_client_gives_up(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    kube_emulator.silence_watches(hang=True)
    started = time.monotonic()
    with pytest.raises(Exception, match="Read timed out"):
        list(watch.Watch().stream(apps.list_namespaced_deployment, "default", timeout_seconds=1, _request_timeout=(2, 2)))
    assert time.monotonic() - started >= 2, "its timeoutSeconds (1s) did not end it"


def test_watch_from_a_compacted_version_is_410_gone(tmp_path: Path) -> None:
    with KubeEmulator(tmp_path / "kubeconfig", history_limit=4) as kube:
        for index in range(10):
            kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{index}"}})
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kube.kubeconfig_path)))

        with pytest.raises(ApiException) as raised:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="2", timeout_seconds=1))

        assert raised.value.status == 410


def test_scale_and_status_subresources(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())

    scale = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    assert (scale.kind, scale.spec.replicas) == ("Scale", 5)
    assert kube_emulator.wait_idle()
    status = apps.read_namespaced_deployment_status("web", "default").status
    assert (status.replicas, status.ready_replicas, status.observed_generation) == (5, 5, 2)
    assert apps.read_namespaced_deployment_scale("web", "default").status.selector == "app=web"


# --- the deployment controller --------------------------------------------------------------------


def test_rollouts_make_revisioned_replicasets_and_keep_the_history_limit(kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(deployment(revisionHistoryLimit=1))
    for image in ("nginx:2", "nginx:3"):
        assert kube_emulator.wait_idle()
        kube_emulator.patch("deployments", "web", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    assert kube_emulator.wait_idle()

    live = kube_emulator.get("deployments", "web")
    replicasets = sorted(replicasets_of(kube_emulator), key=revision)
    assert [revision(rs) for rs in replicasets] == ["2", "3"]
    newest = replicasets[-1]
    template_hash = newest["metadata"]["labels"]["pod-template-hash"]
    assert newest["metadata"]["name"] == f"web-{template_hash}"
    assert newest["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": template_hash}
    assert newest["metadata"]["ownerReferences"][0]["uid"] == live["metadata"]["uid"]
    assert revision(live) == "3"
    assert (replicasets[0]["spec"]["replicas"], newest["spec"]["replicas"]) == (0, 3)
    status = live["status"]
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "observedGeneration": 3,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ]
    pods = kube_emulator.list("pods", selector=f"pod-template-hash={template_hash}")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)


def test_step_delay_rolls_out_in_visible_steps(tmp_path: Path) -> None:
    with KubeEmulator(tmp_path / "kubeconfig", step_delay=0.05) as kube:
        kube.create(deployment(replicas=4))
        assert kube.wait_for(lambda: kube.get("deployments", "web").get("status", {}).get("updatedReplicas") == 4)
        replicas_seen: list[list[int]] = []

        def rolled_out() -> bool:
            replicas_seen.append(sorted(rs["spec"]["replicas"] for rs in replicasets_of(kube)))
            status = kube.get("deployments", "web")["status"]
            return status.get("observedGeneration") == 2 and status.get("updatedReplicas") == status.get("replicas") == 4

        kube.patch(
            "deployments",
            "web",
            {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
        )
        assert kube.wait_for(rolled_out, timeout=10)
        assert any(all(replicas) for replicas in replicas_seen if len(replicas) == 2)  # old and new side by side
        assert max(sum(replicas) for replicas in replicas_seen) == 5  # never beyond replicas + maxSurge (25%)
        assert replicas_seen[-1] == [0, 4]


# --- faults ---------------------------------------------------------------------------------------


def test_injected_500s_then_recovery(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment())
    kube_emulator.fail(code=500, count=2, verb="get", resource="deployments")

    for _ in range(2):
        with pytest.raises(ApiException) as raised:
            apps.read_namespaced_deployment("web", "default")
        assert (raised.value.status, status_body(raised.value)["reason"]) == (500, "InternalError")

    assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    assert kube_emulator.faults.snapshot() == []


def test_faults_over_the_http_admin_endpoint(kube_emulator: KubeEmulator, apps: client.AppsV1Api) -> None:
    def admin(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{kube_emulator.url}/_emulator/faults",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    apps.create_namespaced_deployment("default", deployment())
    fault = admin("POST", {"kind": "error", "code": 409, "count": 1, "verb": "patch"})
    assert admin("GET")["faults"] == [fault]

    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    assert (raised.value.status, status_body(raised.value)["reason"]) == (409, "Conflict")

    silent = admin("POST", {"kind": "silent_watch", "hang": True, "resource": "deployments"})
    assert (silent["verb"], silent["hang"]) == ("watch", True)
    admin("DELETE")

    admin("POST", {"kind": "latency", "seconds": 0.2, "verb": "get"})
    started = time.monotonic()
    apps.read_namespaced_deployment("web", "default")
    assert time.monotonic() - started >= 0.2
    assert admin("DELETE") == {"faults": []}

    assert kube_emulator.wait_idle()
    unready = admin("POST", {"kind": "pod_health", "selector": "app=web", "ready": False})["pods"]
    assert len(unready) == 3
    assert kube_emulator.wait_for(lambda: "readyReplicas" not in kube_emulator.get("deployments", "web")["status"])


def test_pod_health_helpers(kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(deployment())
    assert kube_emulator.wait_idle()
    first, second, _ = [pod["metadata"]["name"] for pod in kube_emulator.list("pods")]

    kube_emulator.set_pod_health(first, oom_killed=True)
    kube_emulator.set_pod_health(second, ready=False, restart_count=4)

    oom = kube_emulator.get("pods", first)["status"]["containerStatuses"][0]
    assert (oom["lastState"]["terminated"]["reason"], oom["restartCount"], oom["ready"]) == ("OOMKilled", 1, True)
    sick = kube_emulator.get("pods", second)["status"]
    assert sick["containerStatuses"][0]["restartCount"] == 4
    assert {c["type"]: c["status"] for c in sick["conditions"]}["Ready"] == "False"
    assert kube_emulator.wait_for(lambda: kube_emulator.get("deployments", "web")["status"]["readyReplicas"] == 2)


def test_lost_pods_are_replaced(kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(deployment())
    assert kube_emulator.wait_idle()

    lost = kube_emulator.lose_pods("app=web")
    assert kube_emulator.wait_idle()

    replacements = {pod["metadata"]["name"] for pod in kube_emulator.list("pods")}
    assert len(lost) == 3 and len(replacements) == 3 and not replacements & set(lost)


def test_stop_and_start_cut_the_api_and_bring_it_back(kube_emulator: KubeEmulator, core: client.CoreV1Api) -> None:
    port = kube_emulator.port
    watching, ended = threading.Event(), threading.Event()

    def watch_namespaces() -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespace, timeout_seconds=30):
                watching.set()
        except Exception:  # the cut connection ends the stream one way or another
            pass
        ended.set()

    threading.Thread(target=watch_namespaces, daemon=True).start()
    assert watching.wait(5)
    kube_emulator.stop()

    assert ended.wait(5)
    with pytest.raises(MaxRetryError):
        core.list_namespace(_request_timeout=2)
    kube_emulator.start()
    assert kube_emulator.port == port
    assert len(core.list_namespace().items) == 4

    kube_emulator.outage(0.2)
    with pytest.raises(MaxRetryError):
        core.list_namespace(_request_timeout=2)
    assert kube_emulator.wait_for(lambda: kube_emulator.serving, timeout=5)
    assert len(core.list_namespace().items) == 4


# --- the command ----------------------------------------------------------------------------------


def test_the_command_prints_its_url_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed.kube_emulator", "--kubeconfig", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/version", timeout=5) as response:
            assert json.loads(response.read())["major"] == "1"
        written = json.loads(kubeconfig.read_text())
        assert written["current-context"] == "emulator"
        assert written["clusters"][0]["cluster"]["server"] == url
        assert written["contexts"][0]["context"]["namespace"] == "default"
        api = config.new_client_from_config(config_file=str(kubeconfig))
        assert "default" in [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
