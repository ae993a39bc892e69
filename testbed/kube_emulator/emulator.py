"""`KubeEmulator`: the store, the API, the controllers and the HTTP server, started and stopped together."""

from __future__ import annotations

import collections
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .api import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, Api
from .errors import bad_request
from .faults import KINDS as FAULT_KINDS
from .faults import Fault, Faults
from .resources import NAMESPACES, PODS, ResourceType, resource_named
from .server import HttpServer, RequestRecord
from .store import Store
from .workloads import Controllers

DEFAULT_TOKEN = "emulator-token"
CONTEXT = "emulator"
DIRECT_MANAGER = "emulator"
"""The field manager of the writes a test makes through `create` and `patch`, not over HTTP."""
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def make_tls_context(certificate: Path) -> ssl.SSLContext:
    """A server context with a new self-signed certificate for 127.0.0.1, written to `certificate` (its key beside it)."""
    key = certificate.with_suffix(".key")
    certificate.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
        + ["-subj", "/CN=kube-emulator", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE"]
        + ["-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


class KubeEmulator:
    """A Kubernetes API server for tests, on 127.0.0.1 over plain HTTP (or HTTPS, with `tls`).

    `with KubeEmulator() as kube:` starts it in this process (server and controllers on threads)
    and writes a kubeconfig (`kube.kubeconfig_path`, context `emulator`, namespace `default`) that
    kubectl and the kubernetes client load. `kube.store` holds the objects; the methods below
    inject faults and read state without going over HTTP.
    """

    def __init__(
        self,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str = DEFAULT_TOKEN,
        step_delay: float = 0.0,
        history_limit: int = 10_000,
        tls: bool = False,
    ):
        self.host, self.token = host, token
        self.store = Store(history_limit)
        self.api = Api(self.store)
        self.faults = Faults()
        self.controllers = Controllers(self.store, self.api, step_delay)
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=10_000)
        """The last requests served, oldest first."""
        self._port = port
        self._own_directory = None if kubeconfig_path else Path(tempfile.mkdtemp(prefix="kube-emulator-"))
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else self._own_directory / "kubeconfig"
        self.ca_path: Path | None = self.kubeconfig_path.parent / "emulator-ca.crt" if tls else None
        """With `tls`: the self-signed certificate it serves HTTPS with (for 127.0.0.1), which is its own CA too."""
        self._tls = make_tls_context(self.ca_path) if self.ca_path is not None else None
        self._server: HttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._restart: threading.Timer | None = None
        self._closed = False
        for namespace in _SYSTEM_NAMESPACES:
            self.api.create(NAMESPACES, "", {"metadata": {"name": namespace}})

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self._port}"

    @property
    def serving(self) -> bool:
        return self._server is not None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> KubeEmulator:
        """Serve (again, on the same port after `stop`); the first start also starts the controllers."""
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("this emulator was closed")
            if self._server is not None:
                return self
            if not self.controllers.running:
                self.controllers.start()
            server = HttpServer((self.host, self._port), self, self._tls)
            self._port = server.server_address[1]
            self._server_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-emulator-http", daemon=True)
            self._server_thread.start()
            self._server = server
            self._write_kubeconfig()
        return self

    def stop(self) -> None:
        """Stop serving: new connections are refused and open ones (watches too) are cut. State is kept."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.stopping = True
            server.shutdown()
            server.server_close()
            server.close_connections()
            self.store.wake_waiters()
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)

    def outage(self, seconds: float) -> None:
        """The API goes away now and comes back on the same port after `seconds`; returns at once."""
        self.stop()
        self._restart = threading.Timer(seconds, self._come_back)
        self._restart.daemon = True
        self._restart.start()

    def _come_back(self) -> None:
        if not self._closed:
            self.start()

    def close(self) -> None:
        self._closed = True
        if self._restart is not None:
            self._restart.cancel()
        self.stop()
        if self.controllers.running:
            self.controllers.stop()
        if self._own_directory is not None:
            shutil.rmtree(self._own_directory, ignore_errors=True)

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url} | ({"certificate-authority": str(self.ca_path)} if self.ca_path else {})}],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
            "current-context": CONTEXT,
            "preferences": {},
        }

    def _write_kubeconfig(self) -> None:
        # JSON is YAML: kubectl and the kubernetes client both read it.
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig_path.write_text(json.dumps(self.kubeconfig(), indent=2) + "\n")

    # --- state, without HTTP --------------------------------------------------------------------

    @staticmethod
    def _resource(resource: str | ResourceType) -> ResourceType:
        return resource if isinstance(resource, ResourceType) else resource_named(resource)

    def create(self, manifest: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        """Create an object as a client would (defaults, validation), e.g. to set up a test."""
        resource = resource_named(manifest["kind"])
        namespace = manifest.get("metadata", {}).get("namespace", namespace) if resource.namespaced else ""
        return self.api.create(resource, namespace, manifest, manager=DIRECT_MANAGER)

    def patch(
        self,
        resource: str | ResourceType,
        name: str,
        patch: Any,
        namespace: str = "default",
        patch_type: str = "strategic",
    ) -> dict[str, Any]:
        """Patch an object as a client would; `patch_type` is "strategic", "merge" or "json"."""
        content_type = {"strategic": STRATEGIC_MERGE_PATCH, "merge": MERGE_PATCH, "json": JSON_PATCH}[patch_type]
        resource = self._resource(resource)
        body = json.dumps(patch).encode()
        return self.api.patch(resource, namespace, name, content_type, body, field_manager=DIRECT_MANAGER)[0]

    def get(self, resource: str | ResourceType, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.api.get(self._resource(resource), namespace, name)

    def list(
        self,
        resource: str | ResourceType,
        namespace: str | None = "default",
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of a resource in a namespace (every namespace for None), optionally by label selector."""
        return self.api.list(self._resource(resource), namespace, selector)[0]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once the controllers have acted on every change so far (work delayed by a step delay aside)."""
        return self.controllers.wait_idle(timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until `predicate()` holds, checking it after every change to the store."""
        deadline = time.monotonic() + timeout
        while True:
            version = self.store.resource_version
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.store.wait_for_change(version, min(remaining, 0.25))

    # --- request faults -------------------------------------------------------------------------

    def add_latency(self, seconds: float, **match: Any) -> Fault:
        """Delay matching requests (verb=, resource=, namespace=, name=; none matches all) by `seconds`."""
        return self.faults.add("latency", seconds=seconds, **match)

    def fail(self, code: int = 500, count: int | None = 1, **match: Any) -> Fault:
        """Answer the next `count` matching requests (all of them for None) with `code` instead of serving them."""
        return self.faults.add("error", code=code, count=count, **match)

    def deny(self, **match: Any) -> Fault:
        """Answer matching requests 403 Forbidden, e.g. `deny(verb="patch", resource="services")`."""
        return self.faults.add("deny", **match)

    def arrival(self, **match: Any) -> threading.Event:
        """Set once a matching request (verb=, resource=, ...) arrives, before a fault holds it back."""
        return self.faults.arrival(**match)

    def silence_watches(self, hang: bool = False, count: int | None = None, **match: Any) -> Fault:
        """The next `count` matching watches (all for None) open and send nothing.

        They end at their timeoutSeconds, as the API server ends every watch; with `hang`, never
        (a connection gone dead on the way), so only the client's own read timeout ends them.
        """
        return self.faults.add("silent_watch", hang=hang, count=count, **match)

    def clear_faults(self) -> None:
        """Remove request faults and broken images (pods already started stay as they are)."""
        self.faults.clear()
        self.controllers.heal_all_images()

    # --- workload faults ------------------------------------------------------------------------

    def break_image(self, image: str, reason: str = "ImagePullBackOff") -> None:
        """Pods started with `image` from now on never get Ready; a rollout to it stalls (CrashLoopBackOff too)."""
        self.controllers.break_image(image, reason)

    def heal_image(self, image: str) -> None:
        self.controllers.heal_image(image)

    def lose_pods(self, selector: str, namespace: str = "default") -> list[str]:
        """A node goes down with these pods: they are deleted, and their ReplicaSets start new ones."""
        names = [pod["metadata"]["name"] for pod in self.list(PODS, namespace, selector)]
        for name in names:
            self.api.delete(PODS, namespace, name)
        return names

    def set_pod_health(
        self,
        name: str | None = None,
        *,
        selector: str | None = None,
        namespace: str = "default",
        ready: bool | None = None,
        restart_count: int | None = None,
        oom_killed: bool = False,
        container: str | None = None,
    ) -> list[str]:
        """Change what the kubelet reports for a pod (by name) or pods (by label selector).

        ready: the containers' `ready` and the pod's Ready and ContainersReady conditions.
        restart_count: containerStatuses[].restartCount.
        oom_killed: the container was OOM-killed and restarted: lastState.terminated.reason
        "OOMKilled", exit code 137, restartCount one higher.
        container: only this container (default: all of them).
        """
        if (name is None) == (selector is None):
            raise ValueError("name a pod or give a selector, not both")
        self.wait_idle()
        changed = []
        with self.store.lock:
            pods = [self.get(PODS, name, namespace)] if name else self.list(PODS, namespace, selector)
            now = self.api.now()
            for pod in pods:
                status = pod.setdefault("status", {})
                statuses = status.get("containerStatuses") or []
                for container_status in statuses:
                    if container in (None, container_status["name"]):
                        _change_container(container_status, ready, restart_count, oom_killed, now)
                _set_pod_ready(status, [s["name"] for s in statuses if not s.get("ready")], now)
                self.store.replace(PODS, pod)
                changed.append(pod["metadata"]["name"])
        return changed

    # --- the HTTP admin endpoint ----------------------------------------------------------------

    def apply_admin_fault(self, document: Any) -> tuple[int, dict[str, Any], Callable[[], None] | None]:
        """POST /_emulator/faults: the answer's code and body, and what to do once it is sent."""
        if not isinstance(document, dict) or "kind" not in document:
            raise bad_request('a fault is a JSON object with a "kind"')
        settings = dict(document)
        kind = settings.pop("kind")
        try:
            if kind in FAULT_KINDS:
                return 201, self.faults.add(kind, **settings).to_json(), None
            if kind == "outage":
                seconds = float(settings.get("seconds", 1.0))
                return 202, {"kind": "outage", "seconds": seconds}, lambda: self.outage(seconds)
            if kind == "lose_pods":
                return 200, {"deleted": self.lose_pods(**settings)}, None
            if kind == "pod_health":
                return 200, {"pods": self.set_pod_health(**settings)}, None
            if kind == "break_image":
                self.break_image(**settings)
                return 201, document, None
            if kind == "heal_image":
                self.heal_image(**settings)
                return 200, document, None
        except TypeError as error:
            raise bad_request(f"bad settings for a {kind} fault: {error}") from None
        raise bad_request(f"unknown fault kind {kind!r}: {', '.join(FAULT_KINDS)}, outage, lose_pods, pod_health, break_image or heal_image")


def _change_container(
    status: dict[str, Any],
    ready: bool | None,
    restart_count: int | None,
    oom_killed: bool,
    now: str,
) -> None:
    if oom_killed:
        started = ((status.get("state") or {}).get("running") or {}).get("startedAt", now)
        status["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": started,
                "finishedAt": now,
                "containerID": status.get("containerID", ""),
            }
        }
        status["state"] = {"running": {"startedAt": now}}
        status["restartCount"] = status.get("restartCount", 0) + 1
    if restart_count is not None:
        status["restartCount"] = restart_count
    if ready is not None:
        status["ready"] = ready


def _set_pod_ready(status: dict[str, Any], unready: list[str], now: str) -> None:
    for condition in status.get("conditions") or []:
        if condition["type"] not in ("Ready", "ContainersReady"):
            continue
        wanted = "False" if unready else "True"
        if condition["status"] != wanted:
            condition.update(status=wanted, lastTransitionTime=now)
        condition.pop("reason", None)
        condition.pop("message", None)
        if unready:
            condition.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(unready)}]")
