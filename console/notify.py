"""Webhooks told of a rollout's turning points: the gate failed, a pause, a rollback started, not
verified on the target for a minute (`rollback_failed`, told once a rollback), and done, the release completed.

Two payloads: `slack` ({"text", "blocks"}, as Slack's incoming webhooks and Mattermost take it)
and `json` (the event as the journal has it, with the release around it).

Delivery never holds the rollout up: the controller's listener only starts a background task, and
the controller never awaits it. Each delivery is tried `attempts` times, waiting `backoff` and
then twice as long each time; a 4xx other than 408 and 429 is not retried (the request itself is
wrong). How it went is journaled as a `notification` event (sent or failed) through the callback
the runner gives (the controller's emit); a failure is also told as an `error` event, so it shows
in the headless output, the console's log and the report's issues. `drain()` waits for the
deliveries still under way, so the last notification of a run is sent before the journal closes.

A webhook address may be a secret (Slack's carry their key in the path): it is read from the
plan or the environment, used for the POST only, and never written anywhere. A webhook is named
by its kind and host, and error texts are redacted with the address as a known secret.
"""

from __future__ import annotations

import asyncio
import base64
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from console import strict_json
from console.journal import events as ev
from console.narrate import describe, rollout_clock
from console.plan.model import RolloutPlan, WebhookSpec
from console.redact import redact, split_credentials

TITLES = {
    "preflight_failed": ":no_entry: Pre-flight gate failed",
    "paused": ":double_vertical_bar: Rollout paused",
    "rollback_started": ":rotating_light: Rolling back",
    "rollback_failed": ":sos: Rollback NOT verified",
    "rolled_back": ":leftwards_arrow_with_hook: Rolled back",
    "completed": ":white_check_mark: Released",
}


ROLLBACK_FAILED_AFTER_S = 60.0
"""A rollback still not verified this long is told: a passing blip (one failed attempt) is not."""


def worth_retrying(status: int) -> bool:
    """A 4xx says the request itself is wrong (but for a timeout or a rate limit): sending it again will not help."""
    return not 400 <= status < 500 or status in (408, 429)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """The HTTP status of the POST; OSError or HTTPException when there is no answer."""
    headers = {"Content-Type": "application/json", "User-Agent": "brahma", **headers}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass(frozen=True, repr=False)
class Webhook:
    """A webhook of the plan with its address resolved; repr=False keeps the address out of printouts."""

    spec: WebhookSpec
    url: str | None
    """Without user:password (sent as basic auth instead); None when url_env names a variable that is not set."""
    label: str
    """Kind and host, for the journal: "slack hooks.slack.com"."""
    headers: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    """The address as written and its password: masked in any error text."""

    @classmethod
    def from_spec(cls, spec: WebhookSpec) -> Webhook:
        written = spec.url if spec.url is not None else os.environ.get(spec.url_env or "") or None
        if written is None:
            return cls(spec, None, f"{spec.kind} ${spec.url_env}")
        try:
            url, auth = split_credentials(written)
            parts = urlsplit(url)
            host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
        except ValueError:  # not a URL: the POST will say so
            url, auth, host = written, None, None
        headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
        return cls(spec, url, f"{spec.kind} {host or 'webhook'}", headers, (written, *(auth or ())))


def _summary(event: ev.Event) -> str:
    return redact(describe(event) or event.name)


def slack_payload(plan: RolloutPlan, event: ev.Event) -> dict[str, Any]:
    title = TITLES.get(event.name, event.name)
    summary = _summary(event)
    context = f"app `{plan.app}` · image `{plan.image}` · {plan.strategy} · at {rollout_clock(event.t)} on the rollout clock"
    return {
        "text": f"{title}: {plan.name}: {summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}: {plan.name}*\n{summary}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def json_payload(plan: RolloutPlan, event: ev.Event) -> dict[str, Any]:
    return {
        "source": "brahma",
        "event": event.name,
        "rollout": plan.name,
        "app": plan.app,
        "image": plan.image,
        "strategy": plan.strategy,
        "summary": _summary(event),
        "details": event.to_dict(),
    }


PAYLOADS = {"slack": slack_payload, "json": json_payload}


class Notifier:
    """The plan's webhooks as a controller listener: `controller.subscribe(notifier)`."""

    def __init__(self, plan: RolloutPlan, record: Callable[[ev.Event], None], now: Callable[[], float]):
        self.plan = plan
        self.webhooks = [Webhook.from_spec(spec) for spec in plan.notify]
        self._record, self._now = record, now
        self._deliveries: set[asyncio.Task[None]] = set()
        self._told_rollback_failed = False

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RollbackStarted):
            self._told_rollback_failed = False
        elif isinstance(event, ev.RollbackFailed):
            if self._told_rollback_failed or event.since_s < ROLLBACK_FAILED_AFTER_S:
                return
            self._told_rollback_failed = True
        for webhook in self.webhooks:
            if event.name in webhook.spec.events:
                task = asyncio.get_running_loop().create_task(self._deliver(webhook, event), name=f"notify {webhook.label}")
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def drain(self) -> None:
        """Wait for the deliveries under way on this loop (each is bounded by its attempts and timeouts)."""
        loop = asyncio.get_running_loop()
        while pending := [task for task in self._deliveries if task.get_loop() is loop and not task.done()]:
            await asyncio.wait(pending)

    async def _deliver(self, webhook: Webhook, event: ev.Event) -> None:
        spec = webhook.spec
        if webhook.url is None:
            self._report(webhook, event, 0, False, f"environment variable {spec.url_env} is not set")
            return
        body = strict_json.dumps(PAYLOADS[spec.kind](self.plan, event)).encode()
        failures: list[str] = []
        while len(failures) < spec.attempts:
            if failures:
                await asyncio.sleep(spec.backoff * 2 ** (len(failures) - 1))
            try:
                status = await asyncio.to_thread(post_json, webhook.url, body, webhook.headers, spec.timeout)
            except (OSError, HTTPException, ValueError) as error:  # no answer: refused, timed out, cut off, not a URL
                failures.append(redact(str(getattr(error, "reason", error)), webhook.secrets))
                continue
            if 200 <= status < 300:
                earlier = f" after {', '.join(failures)}" if failures else ""
                self._report(webhook, event, len(failures) + 1, True, f"HTTP {status}{earlier}")
                return
            failures.append(f"HTTP {status}")
            if not worth_retrying(status):
                break
        self._report(webhook, event, len(failures), False, failures[-1])

    def _report(self, webhook: Webhook, event: ev.Event, attempts: int, sent: bool, detail: str) -> None:
        now = self._now()
        self._record(ev.NotificationSent(now, webhook=webhook.label, about=event.name, status="sent" if sent else "failed", attempts=attempts, detail=detail))
        if not sent:
            tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
            self._record(ev.ErrorRaised(now, where=f"notify {webhook.label}", message=f"{event.name} not delivered{tries}: {detail}"))
