"""One controller per rollout on a cluster: a coordination.k8s.io/v1 Lease, the way client-go's leader election works.

The flock (console.supervisor.files.take_lock) allows one controller per rollout on one machine; when the release runs
on a Kubernetes cluster, a second machine could still start a controller for it. The Lease
`brahma-<rollout>` in the plan's namespace says which controller supervises the rollout
(holderIdentity, e.g. "alice@host pid 1234") and when it last said so (renewTime):

    lease = RolloutLease.from_plan(plan, context, holder)
    lease.acquire()                     # LeaseHeld when another controller's lease is live
    ... await lease.keep(on_lost) ...   # a task beside the controller, renewing it
    lease.release()                     # the next controller need not wait for it to expire

A lease not renewed for leaseDurationSeconds is free, so a controller that died (kill -9 included)
blocks the next one for that long at most. Every write carries the resourceVersion it read: of two
controllers taking a free lease at once, one write wins and the other's conflicts, and the loser
reads again and finds the winner's live lease.

acquire, renew and release block the calling thread (from async code, run them with asyncio.to_thread);
keep renews without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from console.plan.model import RolloutPlan
from console.targets.base import TargetError
from console.targets.kube_api import LEASES, KubeApi, load_api_client

T = TypeVar("T")

LEASE_DURATION_S = 15
"""leaseDurationSeconds: how long a lease stays live after its last renewal (client-go's default too)."""
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""metav1.MicroTime, the type of acquireTime and renewTime: RFC 3339 in UTC with exactly six fractional digits."""


class LeaseHeld(TargetError):
    """Another controller's lease on the rollout is live."""

    def __init__(self, rollout: str, holder: str, lease: str, namespace: str, renewed_ago_s: float):
        self.holder = holder
        super().__init__(f"{rollout} is supervised by {holder} (Lease {lease} in namespace {namespace}, renewed {max(0, round(renewed_ago_s))}s ago)")


def micro_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(MICRO_TIME_FORMAT)


def parse_micro_time(text: Any) -> float | None:
    """Seconds since the epoch; None when the field is missing or unreadable."""
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def lease_name(rollout: str) -> str:
    """`brahma-<rollout>` made a valid object name (a DNS subdomain), since release names are free text."""
    name = re.sub(r"[^a-z0-9.]+", "-", f"brahma-{rollout}".lower())
    name = re.sub(r"[-.]*\.[-.]*", ".", name)  # each dot-separated part starts and ends alphanumeric
    return name[:253].rstrip("-.")


class RolloutLease:
    """The Lease `brahma-<rollout name>` in the plan's namespace."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        rollout: str,
        holder: str,
        duration_s: float = LEASE_DURATION_S,
        clock: Callable[[], float] = time.time,
    ):
        if api.namespace != namespace:
            raise ValueError(f"the KubeApi works in namespace {api.namespace}, not {namespace}")
        self.api, self.namespace, self.rollout, self.holder = api, namespace, rollout, holder
        self.name = lease_name(rollout)
        self.duration_s = duration_s
        self.clock = clock

    @classmethod
    def from_plan(
        cls,
        plan: RolloutPlan,
        context: str | None,
        holder: str,
        *,
        kubeconfig: str | None = None,
    ) -> RolloutLease:
        """The plan's lease on the plan's cluster, found as KubernetesTarget.from_plan finds it."""
        client = load_api_client(context, kubeconfig, plan_context=plan.target.context)
        namespace = plan.target.namespace
        return cls(KubeApi(client, namespace), namespace, plan.name, holder)

    # --- the verbs ----------------------------------------------------------------------------

    def acquire(self) -> None:
        """Hold the lease: create it, renew it when ours, or take it over when free or expired.

        Raises LeaseHeld when another controller's lease is live, TargetError when the API refuses
        or is out of reach.
        """
        self._blocking(self._claim, "take")

    def renew(self) -> bool:
        """Say we still supervise the rollout; False when another controller's live lease has it now.

        A lease deleted, cleared or left to expire meanwhile is taken back: only a live other holder
        means another controller supervises the rollout. TargetError when the API is out of reach.
        """
        try:
            self._blocking(self._claim, "renew")
        except LeaseHeld:
            return False
        return True

    async def keep(self, on_lost: Callable[[str], None], interval_s: float | None = None) -> None:
        """Renew the lease every `interval_s` (a third of its duration) until cancelled.

        Calls `on_lost(message)` once and returns when another controller's live lease has it. A
        failed renewal is tried again at the next tick: this process still holds the local lock, and
        nobody else can take the lease before it expires.
        """
        interval = self.duration_s / 3 if interval_s is None else interval_s
        while True:
            try:
                await self._claim()  # KubeApi runs each request in a thread: the event loop never waits
            except LeaseHeld as held:
                on_lost(f"another controller took the rollout over: {held}")
                return
            except TargetError:
                pass  # the API out of reach or refusing for now: not a reason to give the rollout up
            await asyncio.sleep(interval)

    def release(self) -> None:
        """Clear holderIdentity when the lease is still ours, so the next controller need not wait for it to expire.

        Best effort: never raises.
        """

        def released(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None or (current.get("spec") or {}).get("holderIdentity") != self.holder:
                return None
            lease = copy.deepcopy(current)
            del lease["spec"]["holderIdentity"]
            lease["spec"]["renewTime"] = micro_time(self.clock())  # when it was let go
            return lease

        try:
            self._blocking(lambda: self.api.converge(LEASES, self.name, released), "release")
        except Exception:  # on the way out; an unreleased lease still expires by itself
            pass

    # --- the lease object ---------------------------------------------------------------------

    async def _claim(self) -> None:
        """Hold the lease from now on (written with the resourceVersion read); LeaseHeld when another's is live."""
        await self.api.converge(LEASES, self.name, self._claimed)

    def _claimed(self, current: dict[str, Any] | None) -> dict[str, Any]:
        """`current` (None: no lease yet) as we hold it now: renewed when ours, taken over when free or expired."""
        now = self.clock()
        stamp = micro_time(now)
        if current is None:
            lease: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.holder, "acquireTime": stamp, "leaseTransitions": 0},
            }
        else:
            lease = copy.deepcopy(current)
            spec = lease.setdefault("spec", {})
            holder = spec.get("holderIdentity")
            if holder != self.holder:
                renewed = parse_micro_time(spec.get("renewTime"))
                duration = spec.get("leaseDurationSeconds") or LEASE_DURATION_S
                # Live until renewTime + leaseDurationSeconds; without a renewTime it cannot show it is.
                if holder and renewed is not None and renewed + duration >= now:
                    raise LeaseHeld(self.rollout, holder, self.name, self.namespace, now - renewed)
                spec.update(holderIdentity=self.holder, acquireTime=stamp, leaseTransitions=spec.get("leaseTransitions", 0) + 1)
        # The API takes whole seconds (at least 1); a shorter duration only shortens the renewal interval.
        lease["spec"].update(leaseDurationSeconds=max(1, math.ceil(self.duration_s)), renewTime=stamp)
        return lease

    def _blocking(self, work: Callable[[], Coroutine[Any, Any, T]], doing: str) -> T:
        """Run KubeApi's coroutine to its end, blocking; its failures say which lease and what for."""
        # On a thread of its own, so a caller inside an event loop blocks like any sync call instead of
        # failing: asyncio.run cannot nest in a running loop.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brahma-lease") as thread:
            try:
                return thread.submit(lambda: asyncio.run(work())).result()
            except LeaseHeld:
                raise
            except TargetError as error:
                where = f"the Lease {self.name} in namespace {self.namespace}"
                raise TargetError(f"cannot {doing} {where}: {error}") from None
