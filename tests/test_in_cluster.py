"""A controller the cluster runs: the in-cluster configuration, found from a service account's files and the environment.

The pod is played by this process (or a child of it): KUBERNETES_SERVICE_HOST and _PORT name the emulator, served
over HTTPS with a certificate of its own, and a service-account directory in tmp_path holds its token and that
certificate, where the kubelet would mount them (/var/run/secrets/kubernetes.io/serviceaccount).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from console.plan import load_plan
from console.targets import kube_api
from console.targets.base import TargetError
from console.targets.kube_api import KubeApi, load_api_client
from console.targets.kube_lease import RolloutLease
from testbed.kube_emulator import KubeEmulator
from tests.conftest import ROOT, SAMPLES

PLAN = SAMPLES / "kubernetes-canary.yaml"
ROLLOUT = "checkout-2.4.1"
LAPTOP = "alice@laptop pid 101"


@pytest.fixture
def cluster(tmp_path: Path):
    """The emulator over HTTPS, as a pod's API server is."""
    with KubeEmulator(tmp_path / "kube" / "kubeconfig", tls=True) as kube:
        yield kube


def service_account(kube: KubeEmulator, directory: Path, token: str | None = None) -> Path:
    """The files the kubelet mounts in a pod: the token, the cluster's CA, the namespace."""
    directory.mkdir(parents=True)
    (directory / "token").write_text(token or kube.token)
    assert kube.ca_path is not None
    shutil.copy(kube.ca_path, directory / "ca.crt")
    (directory / "namespace").write_text("default")
    return directory


@pytest.fixture
def pod(cluster: KubeEmulator, tmp_path: Path, monkeypatch) -> Path:
    """This process as a pod of the emulator's cluster, with no kubeconfig anywhere; the service account's directory."""
    directory = service_account(cluster, tmp_path / "serviceaccount")
    monkeypatch.setattr(kube_api, "SERVICE_ACCOUNT_DIR", directory)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.port))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    return directory


def lease_holder(kube: KubeEmulator) -> str | None:
    return kube.get("leases", f"brahma-{ROLLOUT}")["spec"].get("holderIdentity")


def test_in_a_pod_the_service_account_reaches_the_api_over_verified_tls(cluster, pod):
    client = load_api_client(plan_context="the-plan's-laptop-context")  # a plan's context names no cluster in a pod
    assert client.configuration.host == f"https://127.0.0.1:{cluster.port}"
    lease = RolloutLease(KubeApi(client, "default"), "default", ROLLOUT, "brahma-7d9f pid 1")
    lease.acquire()
    assert lease_holder(cluster) == "brahma-7d9f pid 1"
    answered = [r for r in cluster.requests if r.path.endswith(f"/leases/brahma-{ROLLOUT}") or r.path.endswith("/leases")]
    assert [r.status for r in answered] == [404, 201], "read with the token (a wrong one is 401), then created"


def test_the_rollout_lease_is_found_from_the_plan_in_a_pod(cluster, pod):
    lease = RolloutLease.from_plan(load_plan(PLAN), None, LAPTOP)
    lease.acquire()
    lease.release()
    assert lease_holder(cluster) is None


def test_a_certificate_that_is_not_the_cluster_s_is_refused(cluster, pod, tmp_path):
    with KubeEmulator(tmp_path / "other" / "kubeconfig", tls=True) as other:
        assert other.ca_path is not None
        shutil.copy(other.ca_path, pod / "ca.crt")
    api = KubeApi(load_api_client(), "default", retry_budget_s=0.1)
    with pytest.raises(TargetError, match=r"is unreachable: self-signed certificate"):
        RolloutLease(api, "default", ROLLOUT, LAPTOP).acquire()


def test_a_token_the_cluster_does_not_know_is_refused(cluster, pod):
    (pod / "token").write_text("stolen")
    with pytest.raises(TargetError, match="Unauthorized"):
        RolloutLease.from_plan(load_plan(PLAN), None, LAPTOP).acquire()


def test_a_pod_without_its_token_says_what_is_missing(pod):
    (pod / "token").unlink()
    with pytest.raises(TargetError, match="in-cluster config: Service token file does not exist"):
        load_api_client()


def test_a_context_asked_for_is_never_replaced_by_the_service_account(pod):
    with pytest.raises(TargetError, match="no kubeconfig found .* for the context asked for; in a pod, name none to use its service account"):
        load_api_client("prod")


def test_a_kubeconfig_in_the_pod_comes_first(cluster, pod, tmp_path, monkeypatch):
    kubeconfig = cluster.kubeconfig()
    kubeconfig["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    assert load_api_client().configuration.host == "https://127.0.0.1:9"


def test_brahma_supervise_in_a_pod_takes_the_lease_through_the_service_account(cluster, tmp_path):
    """The command a Deployment runs, as a process: in-cluster config from its environment and the mounted files,
    refused while another controller's Lease is live, as on a laptop."""
    directory = service_account(cluster, tmp_path / "serviceaccount")
    api = KubeApi(load_api_client(kubeconfig=str(cluster.kubeconfig_path)), "default")
    RolloutLease(api, "default", ROLLOUT, LAPTOP, clock=time.time).acquire()
    # The kubelet's mount point cannot be written here: the child is pointed at the directory before it runs brahma.
    in_pod = "import sys; from pathlib import Path; from console.targets import kube_api; kube_api.SERVICE_ACCOUNT_DIR = Path(sys.argv[1]); "
    in_pod += "from console.app.cli import main; sys.exit(main(sys.argv[2:]))"
    environment = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    environment |= {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.port), "HOME": str(tmp_path)}
    refused = subprocess.run(
        [sys.executable, "-c", in_pod, str(directory), "supervise", str(PLAN), "--state-dir", str(tmp_path / "volume")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1, refused.stderr
    assert f"{ROLLOUT} is supervised by {LAPTOP} (Lease brahma-{ROLLOUT} in namespace default" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert any(r.path.endswith(f"/leases/brahma-{ROLLOUT}") and r.status == 200 and "python" in (r.user_agent or "").lower() for r in cluster.requests)


# --- the manifests (deploy/kubernetes) -------------------------------------------------------------

MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def manifests() -> dict[str, dict]:
    """Each manifest of the kustomization by kind."""
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    documents = [yaml.safe_load((MANIFESTS / name).read_text()) for name in listed]
    return {document["kind"]: document for document in documents}


def kubectl(kube: KubeEmulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_path), "KUBECACHEDIR": str(kube.kubeconfig_path.parent / "kube-cache")}
    return subprocess.run([KUBECTL or "kubectl", *args], env=env, capture_output=True, text=True, timeout=60)


@needs_kubectl
@pytest.mark.parametrize("apply", [[], ["--server-side"]], ids=["client-side", "server-side"])
def test_the_manifests_pass_a_server_side_dry_run_and_store_nothing(kube_emulator, apply):
    result = kubectl(kube_emulator, "apply", "--dry-run=server", *apply, "-k", str(MANIFESTS))
    assert result.returncode == 0, result.stderr
    verb = "serverside-applied" if apply else "created"
    assert result.stdout.splitlines() == [
        f"serviceaccount/brahma {verb} (server dry run)",
        f"role.rbac.authorization.k8s.io/brahma {verb} (server dry run)",
        f"rolebinding.rbac.authorization.k8s.io/brahma {verb} (server dry run)",
        f"persistentvolumeclaim/brahma-state {verb} (server dry run)",
        f"deployment.apps/brahma {verb} (server dry run)",
    ]
    writes = [r for r in kube_emulator.requests if r.method in ("POST", "PATCH", "PUT")]
    assert len(writes) == 5 and all(r.query.get("dryRun") == "All" for r in writes)
    assert {r.method for r in writes} == ({"PATCH"} if apply else {"POST"})
    for kind in ("serviceaccounts", "roles", "rolebindings", "persistentvolumeclaims", "deployments"):
        assert kube_emulator.list(kind) == [], f"a dry run stored {kind}"


@needs_kubectl
def test_a_role_rule_without_verbs_is_refused_by_the_dry_run(kube_emulator, tmp_path):
    role = manifests()["Role"]
    role["rules"][0]["verbs"] = []
    (tmp_path / "role.yaml").write_text(yaml.safe_dump(role))
    result = kubectl(kube_emulator, "apply", "--dry-run=server", "-f", str(tmp_path / "role.yaml"))
    assert result.returncode == 1
    assert result.stderr == 'The Role "brahma" is invalid: rules[0].verbs: Required value: verbs must contain at least one value\n'


def test_one_controller_runs_with_its_own_account_and_state_volume_and_no_port():
    found = manifests()
    spec = found["Deployment"]["spec"]
    pod_spec = spec["template"]["spec"]
    [container] = pod_spec["containers"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate"), "two controllers never run at once"
    assert pod_spec["serviceAccountName"] == found["ServiceAccount"]["metadata"]["name"] == found["RoleBinding"]["subjects"][0]["name"]
    assert found["RoleBinding"]["roleRef"]["name"] == found["Role"]["metadata"]["name"]
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    state_dir = container["args"][container["args"].index("--state-dir") + 1]
    [state_mount] = [mount for mount in container["volumeMounts"] if state_dir.startswith(mount["mountPath"])]
    assert volumes[state_mount["name"]]["persistentVolumeClaim"]["claimName"] == found["PersistentVolumeClaim"]["metadata"]["name"]
    assert Path(container["workingDir"], ".brahma") == Path(state_dir), "a relay's default --state-dir is the controller's"
    assert "ports" not in container and "Service" not in found, "consoles come in through kubectl exec, not a port"
    assert container["args"][:2] == ["supervise", "/etc/brahma/plan.yaml"] and "--stay" in container["args"], "never released again on a restart"
