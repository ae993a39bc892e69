"""Webhook notifications against a receiver on loopback: retries, payloads, secrets, and that a
webhook never holds a rollback up."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from console.app.wiring import RunOptions, build_rollout
from console.journal import events as ev
from console.journal.journal import read_events
from console.rollout import close_rollout
from testbed.prometheus_server import free_port
from tests.conftest import ROOT, plan_from


@dataclass
class Receiver:
    """A webhook endpoint: answers `failures` with `failure_status` first, then 200; `hold` keeps answers back."""

    failures: int = 0
    failure_status: int = 500
    hold: threading.Event | None = None
    received: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, authorization: str | None, body: bytes) -> int:
        if self.hold is not None:
            self.hold.wait(30)
        with self.lock:
            self.paths.append(path)
            self.authorizations.append(authorization)
            self.received.append(json.loads(body))
            return self.failure_status if len(self.received) <= self.failures else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status = state.answer(self.path, self.headers["Authorization"], self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    if state.hold is not None:
        state.hold.set()
    server.shutdown()
    server.server_close()


def plan_text(notify: str, scenario: str = "healthy") -> str:
    return f"name: checkout-2.4.1\napp: checkout\nimage: r/checkout:2.4.1\nmetrics: {{scenario: {scenario}}}\nnotify:\n{notify}"


async def run(plan: str, state_dir: Path) -> tuple[str, list[ev.Event]]:
    rollout = build_rollout(plan_from(plan), RunOptions(fast=True, state_dir=state_dir), "tester@host")
    phase = await rollout.controller.run()
    await close_rollout(rollout)
    return phase, list(read_events(rollout.controller.journal.path))


def of_type(events: list[ev.Event], kind: type) -> list:
    return [event for event in events if isinstance(event, kind)]


def test_a_webhook_that_fails_twice_is_delivered_on_the_third_attempt(receiver, tmp_path):
    receiver.failures = 2
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(f"  - {{kind: json, url: '{receiver.url}/deploys', events: [completed], backoff: 10ms}}\n"))
    result = subprocess.run(
        [sys.executable, "-m", "console.app", "run", str(plan), "--headless", "--fast", "--json", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in printed][-2:] == ["completed", "notification"]
    notification = printed[-1]
    assert {k: notification[k] for k in ("webhook", "about", "status", "attempts", "detail")} == {
        "webhook": f"json {receiver.url.removeprefix('http://')}",
        "about": "completed",
        "status": "sent",
        "attempts": 3,
        "detail": "HTTP 200 after HTTP 500, HTTP 500",
    }
    journal = (tmp_path / "checkout-2.4.1.jsonl").read_text().splitlines()
    assert json.loads(journal[-1]) == notification, "journaled before the run ended"
    assert len(receiver.received) == 3 and receiver.received[0] == receiver.received[2]
    report = " ".join((tmp_path / "checkout-2.4.1.md").read_text().split())  # the runbook pads tables and wraps lines
    assert f"| json {receiver.url.removeprefix('http://')} | completed | sent | 3 | HTTP 200 after HTTP 500, HTTP 500 |" in report


async def test_payloads_slack_and_json(receiver, tmp_path):
    notify = (
        f"  - {{kind: slack, url: '{receiver.url}/slack', events: [rollback_started]}}\n"
        f"  - {{kind: json, url: '{receiver.url}/json', events: [rollback_started]}}\n"
    )
    phase, _ = await run(plan_text(notify, "error-spike"), tmp_path)
    assert phase == "rolled_back"
    by_path = dict(zip(receiver.paths, receiver.received))
    slack = by_path["/slack"]
    assert slack["text"].startswith(":rotating_light: Rolling back: checkout-2.4.1: ROLLING BACK (error_rate): ")
    assert [block["type"] for block in slack["blocks"]] == ["section", "context"]
    assert "image `r/checkout:2.4.1`" in slack["blocks"][1]["elements"][0]["text"]
    payload = by_path["/json"]
    assert {k: payload[k] for k in ("source", "event", "rollout", "app", "image", "strategy")} == {
        "source": "brahma",
        "event": "rollback_started",
        "rollout": "checkout-2.4.1",
        "app": "checkout",
        "image": "r/checkout:2.4.1",
        "strategy": "canary",
    }
    assert payload["details"]["trigger"] == "error_rate"


async def test_default_events_are_the_turning_points(receiver, tmp_path):
    # The limits alone, whose warning pauses the creep (the sequential judge rolls it back before it is paused).
    phase, events = await run(plan_text(f"  - {{url: '{receiver.url}'}}\n", "latency-creep") + "analysis: {judge: threshold}\n", tmp_path)
    assert phase == "rolled_back"
    told = [e.about for e in of_type(events, ev.NotificationSent)]
    assert sorted(told) == ["paused", "rollback_started", "rolled_back"]


@pytest.mark.parametrize(("failures", "told"), [(3, []), (12, ["rollback_failed"])])
async def test_a_rollback_not_verified_for_a_minute_is_told_once(receiver, tmp_path, failures, told):
    from console.controller.clock import VirtualClock
    from console.targets.base import TargetError

    plan = plan_from(plan_text(f"  - {{kind: slack, url: '{receiver.url}'}}\n", "error-spike"))
    rollout = build_rollout(plan, RunOptions(fast=True, state_dir=tmp_path), "tester@host")
    controller = rollout.controller
    controller.wall_clock = VirtualClock()  # attempts 1 s, 2 s, 4 s ... 10 s apart, without waiting for them
    target, rollback, left = controller.target, controller.target.rollback, failures

    async def failing_rollback(before):
        nonlocal left
        if left:
            left -= 1
            raise TargetError("the Kubernetes API at https://k8s:6443 is unreachable: Connection refused")
        return await rollback(before)

    target.rollback = failing_rollback
    assert await controller.run() == "rolled_back"
    await close_rollout(rollout)
    events = list(read_events(controller.journal.path))
    assert len(of_type(events, ev.RollbackFailed)) == 1 + len(told), "journaled at once, then a minute on"
    assert [e.about for e in of_type(events, ev.NotificationSent) if e.about == "rollback_failed"] == told
    texts = [message["text"] for message in receiver.received]
    failed_texts = [text for text in texts if text.startswith(":sos: Rollback NOT verified: checkout-2.4.1: ROLLBACK NOT VERIFIED: ")]
    assert len(failed_texts) == len(told)
    if told:
        assert "(10 attempts, 1m5s): the Kubernetes API at https://k8s:6443 is unreachable" in failed_texts[0]


async def test_a_webhook_that_hangs_never_holds_the_rollback_up(receiver, tmp_path):
    receiver.hold = threading.Event()
    rollout = build_rollout(
        plan_from(plan_text(f"  - {{url: '{receiver.url}', events: [rollback_started], timeout: 30s}}\n", "error-spike")),
        RunOptions(fast=True, state_dir=tmp_path),
        "tester@host",
    )
    controller = rollout.controller
    assert await controller.run() == "rolled_back", "the rollback finished while the webhook had not answered"
    assert controller.state.phase == "rolled_back"
    assert not [e for e in read_events(controller.journal.path) if isinstance(e, ev.NotificationSent)]
    receiver.hold.set()
    await close_rollout(rollout)
    [sent] = of_type(list(read_events(controller.journal.path)), ev.NotificationSent)
    assert (sent.about, sent.status) == ("rollback_started", "sent")


async def test_a_webhook_that_keeps_failing_is_shown_and_journaled(receiver, tmp_path):
    receiver.failures = 99
    phase, events = await run(plan_text(f"  - {{url: '{receiver.url}', events: [completed], attempts: 2, backoff: 10ms}}\n"), tmp_path)
    assert phase == "completed", "a failed notification changes nothing about the release"
    host = receiver.url.removeprefix("http://")
    [failed] = of_type(events, ev.NotificationSent)
    assert (failed.status, failed.attempts, failed.detail) == ("failed", 2, "HTTP 500")
    [error] = of_type(events, ev.ErrorRaised)
    assert (error.where, error.message) == (f"notify json {host}", "completed not delivered after 2 attempts: HTTP 500")
    report = " ".join((tmp_path / "checkout-2.4.1.md").read_text().split())  # the runbook wraps its lines
    assert f"Error in notify json {host}: completed not delivered after 2 attempts: HTTP 500" in report
    assert f"- [ ] Fix the webhooks that could not be notified (json {host}) and tell their people by hand." in report


async def test_a_client_error_is_not_retried(receiver, tmp_path):
    receiver.failures, receiver.failure_status = 99, 404
    _, events = await run(plan_text(f"  - {{url: '{receiver.url}', events: [completed], backoff: 10ms}}\n"), tmp_path)
    [failed] = of_type(events, ev.NotificationSent)
    assert (failed.attempts, failed.detail) == (1, "HTTP 404")
    assert len(receiver.received) == 1


async def test_an_unreachable_webhook_fails_after_its_attempts(tmp_path):
    _, events = await run(plan_text(f"  - {{url: 'http://127.0.0.1:{free_port()}/hook', events: [completed], attempts: 2, backoff: 10ms}}\n"), tmp_path)
    [failed] = of_type(events, ev.NotificationSent)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert "Connection refused" in failed.detail


async def test_a_secret_webhook_address_never_reaches_the_journal_or_the_report(receiver, tmp_path, monkeypatch):
    secret_path = "/services/T0001/B0001/s3cr3tK3yXYZ"
    monkeypatch.setenv("BRAHMA_TEST_SLACK_URL", receiver.url.replace("http://", "http://hooks:pa55word@") + secret_path)
    monkeypatch.setenv("BRAHMA_TEST_DEAD_URL", f"http://hooks:pa55word@127.0.0.1:{free_port()}{secret_path}?token=t0k3n")
    notify = (
        "  - {kind: slack, url_env: BRAHMA_TEST_SLACK_URL, events: [completed]}\n"
        "  - {kind: slack, url_env: BRAHMA_TEST_DEAD_URL, events: [completed], attempts: 1}\n"
        "  - {kind: slack, url_env: BRAHMA_TEST_UNSET_URL, events: [completed]}\n"
    )
    phase, events = await run(plan_text(notify), tmp_path)
    assert phase == "completed"
    assert receiver.paths == [secret_path]
    assert receiver.authorizations == ["Basic aG9va3M6cGE1NXdvcmQ="], "user:password from the address, sent as basic auth"
    statuses = {(e.webhook, e.status, e.attempts) for e in of_type(events, ev.NotificationSent)}
    assert ("slack " + receiver.url.removeprefix("http://"), "sent", 1) in statuses
    assert ("slack $BRAHMA_TEST_UNSET_URL", "failed", 0) in statuses
    [refused] = [e for e in of_type(events, ev.NotificationSent) if e.status == "failed" and e.attempts]
    assert "Connection refused" in refused.detail
    written = (tmp_path / "checkout-2.4.1.jsonl").read_text() + (tmp_path / "checkout-2.4.1.md").read_text()
    for secret in ("s3cr3tK3yXYZ", "pa55word", "t0k3n", "/services/"):
        assert secret not in written
    assert "environment variable BRAHMA_TEST_UNSET_URL is not set" in written


def test_a_webhook_needs_one_address():
    from console.plan import PlanError

    with pytest.raises(PlanError) as caught:
        plan_from("app: a\nimage: r/a:2\nnotify:\n  - {kind: slack}\n  - {url: 'http://x', events: [started]}\n")
    problems = [str(problem) for problem in caught.value.problems]
    assert problems[0] == "test.yaml:4: notify[0]: a webhook needs either url or url_env (not both)"
    assert problems[1].startswith("test.yaml:5: notify[1].events[0]: Input should be 'preflight_failed', 'paused'")


def test_notify_blocks_in_an_hcl_plan():
    from console.plan import load_plan_text

    plan = load_plan_text('app = "a"\nimage = "r/a:2"\nnotify {\n  kind = "slack"\n  url_env = "SLACK_URL"\n}\n', "plan.hcl", hcl=True)
    assert [(hook.kind, hook.url_env) for hook in plan.notify] == [("slack", "SLACK_URL")]
