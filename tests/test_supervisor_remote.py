"""The detached controller's socket, served in this process on virtual time, followed by RemoteControllers.

The real processes (detach, SSH drop, kill -9, permissions) are in tests/e2e/test_supervisor.py; here
the protocol itself: replay, live events, commands and their actors, flag records, refusals, and an
attended controller that leaves once its rollout is over and its last console has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from console.controller import events as ev
from console.controller.journal import read_events
from console.supervisor.client import answers
from console.supervisor.remote import RemoteController
from tests.conftest import plan_from
from tests.served_controller import HELD_AT, serving, until


class Attached:
    """A RemoteController following the served rollout, with the notices it gave."""

    def __init__(self, plan, files):
        self.remote = RemoteController(plan, files)
        self.notices: list[str] = []
        self.remote.on_notice(self.notices.append)
        self.task = asyncio.create_task(self.remote.run())


@contextlib.asynccontextmanager
async def attached(plan, files):
    """Attached once the controller has said hello; detached (and its run() ended) on the way out."""
    console = Attached(plan, files)
    await until(lambda: console.remote.pid is not None)
    yield console
    console.remote.stop()
    await asyncio.wait_for(console.task, 5)


def journaled(files, kind, **fields) -> list:
    return [e for e in read_events(files.journal) if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())]


async def test_a_console_sees_the_story_so_far_then_what_happens_live(canary_plan, served):
    controller, files, _ = served
    async with attached(canary_plan, files) as console:
        remote = console.remote
        assert remote.state.stage == 0 and remote.state.last_t == controller.state.last_t
        assert len(remote.state.history["error_rate"]) == len(controller.state.history["error_rate"]) > 0
        assert remote.now() == pytest.approx(HELD_AT, abs=60), "the console's clock reads the controller's"
        assert any("attached to the controller" in line for line in console.notices)
        controller.submit("promote", "captain@laptop")  # a change made elsewhere arrives live
        await until(lambda: remote.state.stage == 1)
        assert remote.state.weight == 25
    assert console.task.result() == remote.exit_code


async def test_the_console_reads_the_controller_clock_from_live_events_once_the_gate_is_signed_off(tmp_path):
    plan = plan_from("app: checkout\nimage: r/checkout:2.4.1\npreflight:\n  - {name: code review, kind: manual}\n")
    waiting = lambda controller: "code review" in controller.state.preflight  # noqa: E731
    async with serving(plan, tmp_path, ready=waiting) as (controller, files, _):
        seconds_here = [0.0]
        remote = RemoteController(plan, files, monotonic=lambda: seconds_here[0])
        following = asyncio.create_task(remote.run())
        await until(lambda: remote.pid is not None)
        seconds_here[0] = 500.0  # the gate waited here a long while for its sign-off
        assert remote.now() == 0.0, "the rollout's clock has not started"
        remote.submit("sign-off", "alice@laptop", "code review")
        await until(lambda: remote.state.last_t >= HELD_AT)
        assert remote.now() == HELD_AT, "the clock started at the sign-off, not when the console attached"
        remote.stop()
        await following


async def test_every_console_may_act_and_each_command_is_journaled_with_its_actor(canary_plan, served):
    controller, files, _ = served
    async with attached(canary_plan, files) as alice, attached(canary_plan, files) as bob:
        alice.remote.submit("pause", "alice@laptop")
        await until(lambda: bob.remote.state.phase == "paused")
        bob.remote.submit("resume", "bob@desk")
        await until(lambda: alice.remote.state.phase == "running")
        commands = [(e.command, e.actor) for e in journaled(files, ev.CommandIssued)]
        assert commands == [("pause", "alice@laptop"), ("resume", "bob@desk")]
        assert alice.remote.state.phase == bob.remote.state.phase == controller.state.phase == "running"


async def test_flag_changes_made_by_a_console_are_journaled_by_the_controller(canary_plan, served):
    _, files, _ = served
    async with attached(canary_plan, files) as console:
        change = SimpleNamespace(flag="new-checkout-flow", old={"enabled": False}, new={"enabled": True}, actor="ops@laptop", reason="incident 42")
        console.remote.record_flag_changes([change])
        await until(lambda: journaled(files, ev.FlagChanged, actor="ops@laptop"))
        recorded = journaled(files, ev.FlagChanged, actor="ops@laptop")[0]
        assert recorded.new == {"enabled": True} and recorded.reason == "incident 42"


async def test_a_refused_request_is_told_and_a_history_is_answered(canary_plan, served):
    _, files, _ = served
    async with attached(canary_plan, files) as console:
        console.remote.submit("pause", "")  # no actor: refused, never journaled
        await until(lambda: any("refused" in line for line in console.notices))
        assert not journaled(files, ev.CommandIssued)
        assert await console.remote.metrics.history("error_rate", 0.0, HELD_AT, 10.0) == []  # the simulator keeps no past
        assert (await console.remote.request({"op": "history", "metric": "error_rate"}))["ok"] is False  # no start: malformed


async def test_an_attended_controller_stays_for_its_console_after_the_end_then_leaves_with_it(canary_plan, served):
    _, files, server = served
    async with attached(canary_plan, files) as console:
        console.remote.submit("rollback", "captain@laptop")
        await until(lambda: console.remote.state.phase == "rolled_back")
        console.remote.submit("pause", "late@laptop")  # a console is still attached: the controller still serves it
        await until(lambda: journaled(files, ev.CommandIssued, actor="late@laptop"))
        assert not server.done()
    assert console.task.result() == 3
    assert await asyncio.wait_for(server, 10) == 3
    assert not files.socket.exists()


async def test_a_console_attaching_to_a_finished_rollout_reads_the_journal(canary_plan, served):
    controller, files, server = served
    controller.submit("rollback", "captain@laptop")
    assert await asyncio.wait_for(server, 10) == 3, "finished with nobody attached: the controller leaves"
    console = Attached(canary_plan, files)
    await until(lambda: console.remote.state.phase == "rolled_back")
    assert console.remote.pid is None and not console.task.done(), "it stays: the release shown, an undo possible"
    console.remote.stop()
    assert await asyncio.wait_for(console.task, 5) == 3


async def test_a_state_dir_deeper_than_a_socket_path_may_be_still_serves_its_consoles(canary_plan, tmp_path):
    deep = tmp_path / ("a-state-dir-deep-in-a-home-directory-" * 3)
    deep.mkdir()
    async with serving(canary_plan, deep) as (_, files, _):
        assert len(str(files.socket)) > 108 and files.socket.exists()
        async with attached(canary_plan, files) as console:
            assert console.remote.state.stage == 0
        assert await asyncio.to_thread(answers, files)


async def test_a_rollback_given_while_no_controller_answers_is_sent_once_one_does(canary_plan, served):
    controller, files, _ = served
    remote = RemoteController(canary_plan, files)
    notices: list[str] = []
    remote.on_notice(notices.append)
    remote.submit("rollback", "captain@laptop")  # not connected yet: as when the controller is being restarted
    remote.submit("pause", "captain@laptop")  # anything else would be stale by then: told, not kept
    assert any("sent as soon as the controller answers" in line for line in notices)
    assert any("pause was not sent" in line for line in notices)
    following = asyncio.create_task(remote.run())
    await until(lambda: remote.state.phase == "rolled_back")
    assert [(e.command, e.actor) for e in journaled(files, ev.CommandIssued)] == [("rollback", "captain@laptop")]
    assert controller.state.rollback_trigger == "operator"
    remote.stop()
    await asyncio.wait_for(following, 5)
