"""A small JSON client for the Kubernetes API, on the official `kubernetes` client's ApiClient.

Objects are plain dicts as the API server writes them (camelCase), for Deployments, Services and
Gateway API HTTPRoutes alike. Every blocking call runs in a thread, so the event loop never stalls;
writes run one at a time on a thread of their own, in the order they were asked for. Failures the
cluster may get over (a conflict, a 5xx, a 429, the API server out of reach) are retried with
backoff for a bounded time; the rest become a TargetError that names the verb and the object.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.watch.watch import iter_resp_lines

from console import strict_json
from console.redact import redact
from console.targets.base import TargetError
from console.targets.kube_objects import FIELD_MANAGER

T = TypeVar("T")

REQUEST_TIMEOUT_S = (3.05, 10.0)
"""(connect, read) for every request but watches, whose read timeout follows their own deadline."""
WATCH_TIMEOUT_S = 30.0
"""The longest one watch request lasts (its timeoutSeconds); then the object is read afresh and watched again."""
WATCH_READ_GRACE_S = 2.0
"""How much longer than its timeoutSeconds a watch may send nothing before the client stops reading it."""
RETRY_BUDGET_S = 3.0
"""How long transient failures are retried, counted from the first one."""
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service-account token and the cluster's CA."""


@dataclass(frozen=True)
class Kind:
    """A resource the targets use: its plural and the API path it lives under."""

    plural: str
    api_path: str

    def path(self, namespace: str, name: str | None = None) -> str:
        collection = f"{self.api_path}/namespaces/{namespace}/{self.plural}"
        return f"{collection}/{name}" if name else collection


DEPLOYMENTS = Kind("deployments", "/apis/apps/v1")
REPLICASETS = Kind("replicasets", "/apis/apps/v1")
SERVICES = Kind("services", "/api/v1")
PODS = Kind("pods", "/api/v1")
HTTPROUTES = Kind("httproutes", "/apis/gateway.networking.k8s.io/v1")
LEASES = Kind("leases", "/apis/coordination.k8s.io/v1")


class NotFound(TargetError):
    """A needed object is missing."""


class _Retriable(Exception):
    """A failure worth another try: conflict, throttling, a server error, the API out of reach."""


class _AlreadyExists(Exception):
    """A create lost a race: someone else created the object first."""


class _Watch:
    """One watch request, which its waiter may cut from another thread at any moment, even before it opens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: urllib3.BaseHTTPResponse | None = None
        self.was_cut = False

    def opened(self, stream: urllib3.BaseHTTPResponse) -> bool:
        """Keep the stream so a cut can shut it; False when the watch was cut already (do not read it)."""
        with self._lock:
            self._stream = None if self.was_cut else stream
            return not self.was_cut

    def cut(self) -> None:
        with self._lock:
            self.was_cut = True
            if self._stream is not None:
                self._stream.shutdown()


def _timed_out(error: Exception) -> bool:
    """A read that waited its whole timeout: for a watch, the end of its window, not a failure."""
    return isinstance(error, urllib3.exceptions.ReadTimeoutError) or isinstance(getattr(error, "reason", None), urllib3.exceptions.ReadTimeoutError)


def load_api_client(context: str | None = None, kubeconfig: str | None = None, *, plan_context: str | None = None) -> ApiClient:
    """A client configured the way kubectl finds its cluster, or, in a pod, with the pod's service account.

    In this order:
    1. a kubeconfig: `kubeconfig`, else $KUBECONFIG (a list of files, merged), else ~/.kube/config,
       whichever exists; the context is `context` (the command line's), else `plan_context` (the
       plan's), else the current one. Found first, as kubectl does: a shell in a pod that has a
       kubeconfig means it.
    2. none exists, and this runs in a pod (KUBERNETES_SERVICE_HOST and _PORT, the service account's
       token and CA in SERVICE_ACCOUNT_DIR): the in-cluster config, its token read again as the
       kubelet rotates it. The plan's context is not looked for there: it names an entry of a
       person's kubeconfig, and the pod's cluster is the one the plan was deployed into.
    A context or kubeconfig asked for on the command line is never replaced by the in-cluster config:
    without a kubeconfig that is an error.
    """
    paths = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    existing = [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().exists()]
    configuration = Configuration()
    try:
        if existing:
            config.load_kube_config(
                config_file=os.pathsep.join(existing),
                context=context or plan_context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and not (context or kubeconfig):
            InClusterConfigLoader(token_filename=str(SERVICE_ACCOUNT_DIR / "token"), cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt")).load_and_set(
                configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise TargetError(f"no kubeconfig found ({paths}) for the context asked for; in a pod, name none to use its service account")
        else:
            raise TargetError(f"no kubeconfig found ({paths}) and not running inside a cluster")
    except ConfigException as error:
        raise TargetError(f"{'kubeconfig' if existing else 'in-cluster config'}: {redact(str(error))}") from None
    return ApiClient(configuration)


class KubeApi:
    """The verbs the targets need in one namespace: get, find, list, converge, delete and wait_for."""

    def __init__(
        self,
        client: ApiClient,
        namespace: str,
        *,
        retry_budget_s: float = RETRY_BUDGET_S,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT_S,
        watch_timeout_s: float = WATCH_TIMEOUT_S,
    ):
        self.client, self.namespace = client, namespace
        self.retry_budget_s = retry_budget_s
        self.request_timeout = request_timeout
        self.watch_timeout_s = watch_timeout_s
        self._open_watches: set[_Watch] = set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-write")
        """Every write, one at a time in the order asked. A thread cannot be stopped: a write whose caller
        gave up (a traffic shift cut short by a rollback) still lands, so the next write (the rollback's)
        must start only after it. A write still queued when its caller gives up is never sent."""

    @property
    def server(self) -> str:
        return redact(self.client.configuration.host)

    # --- the verbs ----------------------------------------------------------------------------

    async def get(self, kind: Kind, name: str) -> dict[str, Any]:
        """The object; a NotFound TargetError naming it when it is missing."""
        return await self._retrying(lambda: self._send("get", kind, name, "GET", kind.path(self.namespace, name)))

    async def find(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(kind, name)
        except NotFound:
            return None

    async def list(self, kind: Kind, selector: str) -> list[dict[str, Any]]:
        """Objects of `kind` whose labels match `selector` (label selector syntax)."""
        found = await self._retrying(lambda: self._send("list", kind, "", "GET", kind.path(self.namespace), [("labelSelector", selector)]))
        return found.get("items") or []

    async def converge(
        self,
        kind: Kind,
        name: str,
        desire: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        read: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Bring an object to the state `desire(current)` returns (None: leave it as it is).

        Reads the object (or takes `read`, the caller's fresh copy, to spare a request), asks
        `desire` for the whole object it should be (given None when it does not exist yet), and
        creates or replaces it (as field manager `brahma`, so managedFields tell its writes from
        others') only when that differs: asking twice writes once. The replace
        carries the resourceVersion it read, so a concurrent change fails it with a conflict; then
        it reads again and asks again. Returns (current, written): written is None when nothing
        needed writing; with `dry_run`, it is what the server would have stored.
        """
        known = read

        async def attempt() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            nonlocal known
            current = known if known is not None else await self.find(kind, name)
            known = None  # after a conflict, read afresh
            desired = desire(current)
            if desired is None or desired == current:
                return current, None
            query = [("fieldManager", FIELD_MANAGER)] + ([("dryRun", "All")] if dry_run else [])
            if current is None:
                written = await self._send("create", kind, name, "POST", kind.path(self.namespace), query, desired)
            else:
                written = await self._send("update", kind, name, "PUT", kind.path(self.namespace, name), query, desired)
            return current, written

        return await self._retrying(attempt)

    async def delete(self, kind: Kind, name: str) -> bool:
        """Delete an object and, first, what it owns (foreground); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
        try:
            await self._retrying(lambda: self._send("delete", kind, name, "DELETE", kind.path(self.namespace, name), body=body))
        except NotFound:
            return False
        return True

    async def wait_for(
        self,
        kind: Kind,
        current: dict[str, Any],
        done: Callable[[dict[str, Any]], bool],
        timeout_s: float,
        what: str,
    ) -> dict[str, Any]:
        """Follow one object with a watch until `done(obj)` holds; `done` may raise to give up early.

        No polling: a watch request from the object's resourceVersion, which the server ends after
        `watch_timeout_s` (and the client stops reading when it has sent nothing for longer: a
        connection gone dead on the way). A watch that ends without `done` is followed by a fresh
        read of the object, which catches what a silent watch missed, and a new watch from there,
        until `timeout_s` passes (a TargetError saying `what` was awaited). Cancelling the wait
        cuts its watch, so no thread is left reading it.
        """
        name = current["metadata"]["name"]
        deadline = time.monotonic() + timeout_s
        while not done(current):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TargetError(f"{what}: still not done after {timeout_s:g}s")
            since, seconds = current, min(remaining, self.watch_timeout_s)
            watch = _Watch()
            self._open_watches.add(watch)
            try:
                current = await self._retrying(
                    lambda: asyncio.to_thread(self._watch_until, watch, kind, name, since, done, seconds)  # noqa: B023 (awaited in this iteration)
                )
                if not done(current):
                    current = await self.get(kind, name)
            except asyncio.CancelledError:
                watch.cut()
                raise
            finally:
                self._open_watches.discard(watch)
        return current

    # --- requests, retries and errors ---------------------------------------------------------

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` again after each transient failure, backing off, for the retry budget."""
        give_up_at = None
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                return await attempt()
            except (_Retriable, _AlreadyExists) as error:
                now = time.monotonic()
                give_up_at = give_up_at or now + self.retry_budget_s
                if now + backoff > give_up_at:
                    raise TargetError(f"{error} (still failing after {self.retry_budget_s:g}s of retries)") from None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _send(
        self,
        verb: str,
        kind: Kind,
        name: str,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        request = functools.partial(self._request, verb, kind, name, method, path, query or [], body)
        if method == "GET":
            return await asyncio.to_thread(request)
        # A thread of its own rather than a lock: the lease calls this KubeApi from other event loops too.
        return await asyncio.get_running_loop().run_in_executor(self._writer, request)

    def _request(self, verb: str, kind: Kind, name: str, method: str, path: str, query: list[tuple[str, str]], body: Any) -> dict[str, Any]:
        """One request, blocking; the answer's JSON, or the failure as the targets see it."""
        try:
            response = self._call(method, path, query, body, self.request_timeout)
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError, ApiException) as error:
            raise self._unreachable(error) from None
        if not 200 <= response.status < 300:
            raise self._failure(verb, kind, name, response.status, data)
        return json.loads(data or b"{}")

    def _call(self, method: str, path: str, query: list[tuple[str, str]], body: Any, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.client.call_api(*request, _request_timeout=timeout)

    def _unreachable(self, error: Exception) -> _Retriable:
        # urllib3 wraps the cause ("...: [Errno 111] Connection refused"): its last clause says it.
        cause = str(getattr(error, "reason", None) or error).rsplit(": ", 1)[-1]
        return _Retriable(f"the Kubernetes API at {self.server} is unreachable: {redact(cause)}")

    def _failure(self, verb: str, kind: Kind, name: str, code: int, data: bytes) -> Exception:
        try:
            status = json.loads(data)
        except ValueError:
            status = {}
        message = redact(str(status.get("message") or data[:200].decode(errors="replace")))
        subject = f"{kind.plural}/{name}" if name else kind.plural
        where = f"{subject} in namespace {self.namespace}"
        if code == 403:
            return TargetError(f"forbidden: {verb} {where} ({message})")
        if code == 404:
            return NotFound(f"{where} not found")
        if code == 409 and status.get("reason") == "AlreadyExists":
            return _AlreadyExists(f"{verb} {where}: {message}")
        if code in (409, 429) or code >= 500:
            return _Retriable(f"{verb} {where}: {code} {message}")
        return TargetError(f"{verb} {where} failed: {code} {message}")

    # --- watch --------------------------------------------------------------------------------

    def _watch_until(
        self,
        watch: _Watch,
        kind: Kind,
        name: str,
        current: dict[str, Any],
        done: Callable[[dict[str, Any]], bool],
        watch_s: float,
    ) -> dict[str, Any]:
        """Blocking: the object's changes after `current` until `done`, the watch ends, is silent too long or is cut."""
        seconds = max(1, math.ceil(watch_s))
        query = [
            ("watch", "true"),
            ("fieldSelector", f"metadata.name={name}"),
            ("resourceVersion", current["metadata"]["resourceVersion"]),
            ("timeoutSeconds", str(seconds)),
        ]
        timeout = (self.request_timeout[0], seconds + WATCH_READ_GRACE_S)
        if watch.was_cut:
            return current
        try:
            response = self._call("GET", kind.path(self.namespace), query, None, timeout)
        except (urllib3.exceptions.HTTPError, OSError, ApiException) as error:
            if _timed_out(error):
                return current
            raise self._unreachable(error) from None
        if not 200 <= response.status < 300:
            raise self._failure("watch", kind, name, response.status, response.read())
        stream = response.response
        if not watch.opened(stream):
            stream.close()
            return current
        try:
            for line in iter_resp_lines(stream):
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:  # history compacted past us: read the object afresh
                        return self._request("get", kind, name, "GET", kind.path(self.namespace, name), [], None)
                    raise self._failure("watch", kind, name, obj.get("code", 500), strict_json.dumps(obj, separators=strict_json.SPACED).encode())
                if event.get("type") == "DELETED":
                    raise NotFound(f"{kind.plural}/{name} in namespace {self.namespace} was deleted")
                current = obj
                if done(current):
                    break
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if _timed_out(error) or watch.was_cut:
                return current
            raise self._unreachable(error) from None
        finally:
            stream.close()
            stream.release_conn()
        return current

    def _cut_watches(self) -> None:
        """Unblock the threads reading watch streams: their socket is shut, their read ends."""
        for watch in list(self._open_watches):
            watch.cut()

    async def close(self) -> None:
        self._cut_watches()
        await asyncio.to_thread(self._writer.shutdown)  # a write in flight lands before the connections close
        await asyncio.to_thread(self.client.close)
