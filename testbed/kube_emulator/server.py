"""HTTP: the Kubernetes REST paths, discovery, OpenAPI, watch streams and the /_emulator admin paths."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import resources
from .api import scale_view
from .errors import ApiError, bad_request, unsupported_media_type
from .faults import Fault, RequestInfo
from .managed_fields import manager_from
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import StoreEvent
from .tables import table

if TYPE_CHECKING:
    from .emulator import KubeEmulator

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_TRUE = ("true", "True", "TRUE", "t", "T", "1")
_DEFAULT_WATCH_SECONDS = 1800
_WATCH_POLL_SECONDS = 0.5


def _path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _found(document: dict[str, Any] | None) -> dict[str, Any]:
    if document is None:
        raise _path_not_found()
    return document


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it; tests read `KubeEmulator.requests` to check what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    status: int
    user_agent: str | None = None


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: KubeEmulator, tls: ssl.SSLContext | None = None):
        self.emulator = emulator
        self.stopping = False
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)
        if tls is not None:
            # The handshake happens on the handler's thread at its first read, not in the accepting loop.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refused the certificate (a test of exactly that) is no emulator bug: only those are shown."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Cut every open connection, as an API server going away does (watches end mid-stream)."""
        self.stopping = True
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


def _truthy(value: str | None) -> bool:
    return value in _TRUE


def _wants_table(accept: str) -> str | None:
    """The Table apiVersion the client asked for in Accept, if it asked for one."""
    for option in accept.split(","):
        parameters = dict(p.strip().split("=", 1) for p in option.split(";")[1:] if "=" in p)
        if parameters.get("as") == "Table":
            return f"{parameters.get('g', 'meta.k8s.io')}/{parameters.get('v', 'v1')}"
    return None


def _list_items(resource: ResourceType, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """List items of built-in kinds carry no kind and apiVersion, as the real API server encodes them."""
    if not resource.builtin:
        return objects
    return [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for obj in objects]


class Handler(BaseHTTPRequestHandler):
    # Small responses go out at once, as from a real API server; Nagle's delay would add ~40 ms a request.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `KubeEmulator.requests` instead of a log on stderr."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def emulator(self) -> KubeEmulator:
        return self.server.emulator

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self._status = code
        self._record()  # before the answer: a client that has its answer finds its request recorded
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, document: Any) -> None:
        self._send(code, json.dumps(document).encode())

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = "/" + url.path.strip("/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._status = 0
        self._recorded = False
        try:
            body = self._read_body()
            self._route(path, query, body)
        except ApiError as error:
            self._send_json(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug in the emulator: answer 500 and show it
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, ApiError(500, "InternalError", traceback.format_exc(limit=3)).status())
        finally:
            self._record()  # a request that never got an answer

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            self.emulator.requests.append(
                RequestRecord(self.command, "/" + url.path.strip("/"), query, self.headers.get("Content-Type"), self._status, self.headers.get("User-Agent"))
            )

    # --- routing --------------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, str], body: bytes) -> None:
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self._send_json(200, VERSION)
        if path.startswith("/_emulator/"):
            return self._admin(path.removeprefix("/_emulator/"), query, body)
        # kubectl sends no credentials to a plain-HTTP server (clientcmd reads them only for TLS),
        # so a request without any is served; a wrong token is still refused.
        if not self._authorized(self.headers.get("Authorization")):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        document = self._discovery(path)
        if document is not None:
            return self._send_json(200, document)
        target = self._resource_target(path)
        if target is None:
            raise _path_not_found()
        self._serve_resource(*target, query, body)

    def _authorized(self, header: str | None) -> bool:
        """No credentials, or the emulator's bearer token; the scheme's case does not matter (the in-cluster
        loader of the kubernetes client sends "bearer"), as to the API server's token authenticator."""
        if header is None:
            return True
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and token == self.emulator.token

    def _discovery(self, path: str) -> dict[str, Any] | None:
        """Legacy discovery (kubectl falls back to it from aggregated discovery) and OpenAPI v3."""
        parts = path.strip("/").split("/")
        if path == "/api":
            return resources.api_versions(f"{self.server.server_address[0]}:{self.server.server_address[1]}")
        if path == "/apis":
            return resources.api_group_list()
        if path == "/openapi/v3":
            return resources.openapi_v3_root()
        if path.startswith("/openapi/v3/"):
            return _found(resources.openapi_v3_document(path.removeprefix("/openapi/v3/")))
        if parts[0] == "api" and len(parts) == 2:
            return _found(resources.api_resource_list(parts[1]))
        if parts[0] == "apis" and len(parts) == 2:
            return _found(resources.api_group(parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return _found(resources.api_resource_list(f"{parts[1]}/{parts[2]}"))
        return None

    @staticmethod
    def _resource_target(path: str) -> tuple[ResourceType, str | None, str | None, str | None] | None:
        """(resource, namespace, name, subresource) for a REST path, or None."""
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        namespace_subresource = len(rest) == 3 and rest[2] in ("status", "finalize")
        if rest[0] == "namespaces" and len(rest) >= 3 and not namespace_subresource:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            return None
        resource = resources.lookup(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if resource is None or (subresource and subresource not in resource.subresources):
            return None
        if (resource.namespaced and name is not None and namespace is None) or (not resource.namespaced and namespace):
            return None
        return resource, namespace, name, subresource

    # --- resources ------------------------------------------------------------------------------

    def _verb(self, name: str | None, query: dict[str, str]) -> str:
        if self.command == "GET":
            return "get" if name else ("watch" if _truthy(query.get("watch")) else "list")
        if self.command == "DELETE":
            return "delete" if name else "deletecollection"
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[self.command]
        if (verb == "create") == (name is not None):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        return verb

    def _serve_resource(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
        query: dict[str, str],
        body: bytes,
    ) -> None:
        verb = self._verb(name, query)
        delay, error = self.emulator.faults.judge(RequestInfo(verb, resource, subresource, namespace, name))
        if delay:
            time.sleep(delay)
        if error is not None:
            raise error
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if body and ("protobuf" in content_type or "cbor" in content_type):
            # kubectl's typed clients (kubectl create configmap/deployment, kubectl run) send protobuf.
            raise unsupported_media_type(
                f"the kube emulator reads JSON request bodies only, not {content_type}; use kubectl apply -f or kubectl create -f instead"
            )
        api = self.emulator.api
        dry_run = query.get("dryRun") == "All"
        manager = manager_from(query.get("fieldManager"), self.headers.get("User-Agent"))
        if verb == "get":
            obj = api.get(resource, namespace or "", name or "")
            return self._send_object(resource, scale_view(obj) if subresource == "scale" else obj)
        if verb == "list":
            items, version = api.list(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
            return self._send_list(resource, items, str(version), query)
        if verb == "watch":
            silenced = self.emulator.faults.silencing(RequestInfo(verb, resource, subresource, namespace, name))
            return self._watch(resource, namespace, query, silenced)
        if verb == "create":
            return self._send_json(201, api.create(resource, namespace or "", _json_body(body), dry_run, manager))
        if verb == "update":
            return self._send_json(200, api.update(resource, namespace or "", name or "", _json_body(body), subresource, dry_run, manager))
        if verb == "patch":
            obj, created = api.patch(
                resource,
                namespace or "",
                name or "",
                content_type,
                body,
                subresource,
                dry_run,
                query.get("fieldManager"),
                self.headers.get("User-Agent"),
            )
            return self._send_json(201 if created else 200, obj)
        options = _json_body(body) if body.strip() else {}
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        if verb == "deletecollection":
            deleted = api.delete_collection(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"), propagation, dry_run)
            return self._send_list(resource, deleted, str(self.emulator.store.resource_version), query)
        deleted_obj = api.delete(resource, namespace or "", name or "", propagation, options.get("preconditions"), dry_run)
        if resource.returns_deleted_object:
            return self._send_json(200, deleted_obj)
        details = {"name": name, "kind": resource.plural, "uid": deleted_obj["metadata"]["uid"]}
        if resource.group:
            details["group"] = resource.group
        self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    def _send_object(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        table_version = _wants_table(self.headers.get("Accept", ""))
        if table_version and obj.get("kind") == resource.kind:
            return self._send_json(200, table(resource, [obj], None, "Metadata", table_version))
        self._send_json(200, obj)

    def _send_list(self, resource: ResourceType, items: list[dict[str, Any]], version: str, query: dict[str, str]) -> None:
        table_version = _wants_table(self.headers.get("Accept", ""))
        if table_version:
            include = query.get("includeObject", "Metadata")
            return self._send_json(200, table(resource, items, version, include, table_version))
        self._send_json(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.group_version,
                "metadata": {"resourceVersion": version},
                "items": _list_items(resource, items),
            },
        )

    # --- watch ----------------------------------------------------------------------------------

    def _watch(self, resource: ResourceType, namespace: str | None, query: dict[str, str], silenced: Fault | None = None) -> None:
        """Stream watch events as newline-delimited JSON in a chunked response, until timeout or shutdown.

        Under a silent_watch fault the stream opens and sends nothing: it ends at timeoutSeconds, or
        with `hang`, only when the client goes away or the server stops.
        """
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), resource.supports_field)

        def selected(obj: dict[str, Any] | None) -> bool:
            return obj is not None and labels.matches(obj["metadata"].get("labels")) and fields(obj)

        store = self.emulator.store
        requested = query.get("resourceVersion", "")
        send_initial = _truthy(query.get("sendInitialEvents"))
        if requested not in ("", "0") and not requested.isdigit():
            raise bad_request(f"invalid resource version: {requested}")
        initial: list[dict[str, Any]] = []
        with store.lock:
            if requested in ("", "0") or send_initial:
                initial = [obj for obj in store.list(resource, namespace) if selected(obj)]
                cursor = store.resource_version
            else:
                cursor = int(requested)
        self._status = 200
        self._record()  # when it opens, as other requests are when answered: the log is in the order served
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        timeout = int(query.get("timeoutSeconds") or _DEFAULT_WATCH_SECONDS)
        deadline = time.monotonic() + timeout
        if silenced is not None:
            return self._stay_silent(None if silenced.hang else deadline)
        table_version = _wants_table(self.headers.get("Accept", ""))
        send = self._event_sender(resource, table_version)
        for obj in initial:
            send("ADDED", obj)
        if send_initial:
            bookmark = {
                "kind": resource.kind,
                "apiVersion": resource.group_version,
                "metadata": {"resourceVersion": str(cursor), "annotations": {"k8s.io/initial-events-end": "true"}},
            }
            self._write_chunk(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
        while not self.server.stopping and time.monotonic() < deadline:
            try:
                events = store.events_after(cursor)
            except ApiError as expired:
                send("ERROR", expired.status())
                break
            for event in events:
                cursor = event.resource_version
                translated = _as_seen_by_watch(event, resource, namespace, selected)
                if translated is not None:
                    send(*translated)
            if not events:
                if self._client_went_away():
                    return
                wait = min(_WATCH_POLL_SECONDS, deadline - time.monotonic())
                store.wait_for_change(cursor, max(wait, 0), lambda: self.server.stopping)
        if not self.server.stopping:
            self.wfile.write(b"0\r\n\r\n")

    def _stay_silent(self, deadline: float | None) -> None:
        """An open watch that sends nothing, until `deadline` (None: never), the client leaving or shutdown."""
        while not self.server.stopping:
            wait = _WATCH_POLL_SECONDS if deadline is None else min(_WATCH_POLL_SECONDS, deadline - time.monotonic())
            if wait <= 0:
                self.wfile.write(b"0\r\n\r\n")
                return
            select.select([self.connection], [], [], wait)
            if self._client_went_away():
                return

    def _event_sender(self, resource: ResourceType, table_version: str | None) -> Callable[[str, dict[str, Any]], None]:
        """Writes one event; as Table rows when the client asked for tables (column definitions only once)."""
        columns_sent = False

        def send(kind: str, obj: dict[str, Any]) -> None:
            nonlocal columns_sent
            if table_version and kind != "ERROR":
                obj = table(resource, [obj], obj["metadata"]["resourceVersion"], "Metadata", table_version)
                if columns_sent:
                    obj["columnDefinitions"] = []
                columns_sent = True
            self._write_chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        return send

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _client_went_away(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        if isinstance(self.connection, ssl.SSLSocket):
            return True  # TLS cannot peek; a watching client sends nothing more, so what it sends is its close
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # --- admin ----------------------------------------------------------------------------------

    def _admin(self, path: str, query: dict[str, str], body: bytes) -> None:
        """/_emulator/faults (GET, POST, DELETE), /_emulator/faults/ID (DELETE), /_emulator/idle and
        /_emulator/requests (GET)."""
        emulator = self.emulator
        if path == "faults" and self.command == "GET":
            return self._send_json(200, {"faults": emulator.faults.snapshot()})
        if path == "faults" and self.command == "POST":
            code, answer, after = emulator.apply_admin_fault(_json_body(body))
            self._send_json(code, answer)
            if after is not None:
                after()
            return None
        if path == "faults" and self.command == "DELETE":
            emulator.clear_faults()
            return self._send_json(200, {"faults": []})
        if path.startswith("faults/") and self.command == "DELETE":
            emulator.faults.remove(int(path.removeprefix("faults/")))
            return self._send_json(200, {"faults": emulator.faults.snapshot()})
        if path == "idle" and self.command == "GET":
            return self._send_json(200, {"idle": emulator.wait_idle(float(query.get("timeout", 5)))})
        if path == "requests" and self.command == "GET":
            return self._send_json(200, {"requests": [asdict(record) for record in emulator.requests]})
        raise _path_not_found()


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None


def _as_seen_by_watch(
    event: StoreEvent,
    resource: ResourceType,
    namespace: str | None,
    selected: Callable[[dict[str, Any] | None], bool],
) -> tuple[str, dict[str, Any]] | None:
    """The event a watch with these filters sees: an object moving in or out of its selector is ADDED or DELETED."""
    if event.resource is not resource:
        return None
    if namespace is not None and event.obj["metadata"].get("namespace") != namespace:
        return None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if selected(event.previous) else None
    now, before = selected(event.obj), selected(event.previous)
    if now and before:
        return "MODIFIED", event.obj
    if now:
        return "ADDED", event.obj
    if before:
        return "DELETED", event.obj
    return None
