"""Request faults: added latency, injected error answers, requests denied as RBAC would deny them, and
silent watches (opened, then nothing sent)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ApiError, forbidden, internal_error, stale_write
from .resources import ResourceType

USER = "emulator"
"""The user every request is made as (the kubeconfig's token); named in 403 messages."""

_ERRORS = {
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be processing the request",
    ),
}


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    """get, list, watch, create, update, patch, delete or deletecollection, as RBAC names them."""
    resource: ResourceType
    subresource: str | None
    namespace: str | None
    name: str | None


@dataclass
class Fault:
    id: int
    kind: str
    """latency, error, deny or silent_watch."""
    verb: str | None = None
    resource: str | None = None
    """A plural ("deployments", matching its subresources too) or "deployments/scale"; None matches any."""
    namespace: str | None = None
    name: str | None = None
    seconds: float = 0.0
    """latency: added to every matching request."""
    code: int = 500
    """error: the HTTP status answered (500, 409, 503, 429, 504...)."""
    remaining: int | None = None
    """error, silent_watch: how many more matching requests it takes; None for all of them."""
    hang: bool | None = None
    """silent_watch: True, the watch never ends on its own (a connection gone dead on the way: a stuck
    proxy, a lost NAT entry); False, it ends at its timeoutSeconds as the API server ends every watch."""

    def matches(self, request: RequestInfo) -> bool:
        resource_names = {request.resource.plural}
        if request.subresource:
            resource_names = {f"{request.resource.plural}/{request.subresource}", request.resource.plural}
        return (
            self.verb in (None, request.verb)
            and (self.resource is None or self.resource in resource_names)
            and self.namespace in (None, request.namespace)
            and self.name in (None, request.name)
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def injected_error(code: int, request: RequestInfo) -> ApiError:
    if code == 409:
        return stale_write(request.resource, request.name or "")
    if code == 500:
        return internal_error("injected by the kube emulator")
    reason, message = _ERRORS.get(code, ("InternalError", f"injected error {code}"))
    return ApiError(code, reason, message)


KINDS = ("latency", "error", "deny", "silent_watch")


class Faults:
    """The faults in force; every resource request is judged against them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._arrivals: list[tuple[Fault, threading.Event]] = []

    def add(self, kind: str, **settings: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown request fault kind {kind!r}: {', '.join(KINDS)}")
        if kind == "silent_watch":
            settings = {"hang": False, **settings, "verb": "watch"}
        count = settings.pop("count", None)
        fault = Fault(next(self._ids), kind, remaining=count, **settings)
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault | int) -> None:
        fault_id = fault.id if isinstance(fault, Fault) else fault
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fault_id]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def arrival(self, **match: Any) -> threading.Event:
        """Set once a matching request has arrived, before any fault delays or answers it."""
        arrived = threading.Event()
        with self._lock:
            self._arrivals.append((Fault(0, "arrival", **match), arrived))
        return arrived

    def silencing(self, request: RequestInfo) -> Fault | None:
        """The silent_watch fault this watch request falls under (counted as taken), if any."""
        with self._lock:
            fault = next((f for f in self._faults if f.kind == "silent_watch" and f.matches(request)), None)
            if fault is not None:
                self._take(fault)
            return fault

    def _take(self, fault: Fault) -> None:
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)

    def judge(self, request: RequestInfo) -> tuple[float, ApiError | None]:
        """Seconds to delay the request, and the error to answer instead of serving it, if any."""
        with self._lock:
            for match, arrived in self._arrivals:
                if match.matches(request):
                    arrived.set()
            matching = [fault for fault in self._faults if fault.matches(request)]
            delay = sum(fault.seconds for fault in matching if fault.kind == "latency")
            if any(fault.kind == "deny" for fault in matching):
                return delay, forbidden(request.resource, request.name or "", request.verb, request.namespace, USER)
            for fault in matching:
                if fault.kind == "error":
                    self._take(fault)
                    return delay, injected_error(fault.code, request)
        return delay, None
