"""The detached controller's socket, served in this process on virtual time, followed by RemoteControllers.

The real processes (detach, SSH drop, kill -9, permissions) are in tests/e2e/test_supervisor.py; here
the protocol itself: replay, live events, commands and their actors, flag records, refusals, and an
attended controller that leaves once its rollout is over and its last console has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import json
import logging
import math

import pytest

from console import strict_json
from console.app.wiring import plan_flags
from console.flags.model import FlagChange
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.snapshot import state_to_plain
from console.journal.state import fold
from console.plan.model import plan_from_plain
from console.samples import HistoryPoint
from console.supervisor import server as server_module
from console.supervisor.client import SupervisorClient, answers
from console.supervisor.flag_requests import borne_out
from console.supervisor.limits import LINE_LIMIT, MAX_FLAG_CHANGES, CountedFailures, TokenBucket, connection_cap
from console.supervisor.remote import RemoteController, flag_batches
from tests.conftest import plan_from
from tests.served_controller import HELD_AT, ROUNDS, serving, until


class Attached:
    """A RemoteController following the served rollout, with the notices it gave."""

    def __init__(self, plan, files, **console):
        self.remote = RemoteController(plan, files, **console)
        self.notices: list[str] = []
        self.remote.on_notice(self.notices.append)
        self.task = asyncio.create_task(self.remote.run())


@contextlib.asynccontextmanager
async def attached(plan, files, **console_args):
    """Attached once the controller has said hello; detached (and its run() ended) on the way out."""
    console = Attached(plan, files, **console_args)
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
    assert console.task.result() == remote.state.phase


async def test_a_console_takes_the_journal_from_the_state_dir_before_the_socket_and_is_sent_only_what_follows(canary_plan, served):
    controller, files, _ = served
    remote = RemoteController(canary_plan, files)
    seen: list[ev.Event] = []
    remote.subscribe(seen.append)
    following = asyncio.create_task(remote.run())
    await asyncio.sleep(0)  # one turn of the loop: no answer can have come over the socket yet
    journal = list(read_events(files.journal))
    assert remote.state.stage == 0 and remote.state.phase == "running", "the console's first frame shows where the rollout is"
    last_sample = max(i for i, e in enumerate(journal) if isinstance(e, ev.SampleTaken))
    told = [e for i, e in enumerate(journal) if not isinstance(e, ev.SampleTaken) or i == last_sample]
    assert seen == told, "the listeners hear the story so far for the event log, and the last sample, not every sample"
    assert state_to_plain(remote.state) == state_to_plain(fold(journal))
    await until(lambda: remote.pid is not None)
    assert len(remote.state.history["error_rate"]) == len(controller.state.history["error_rate"]), "nothing was taken twice"
    assert [e.name for e in seen[: len(told)]] == [e.name for e in told]
    remote.stop()
    await following


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
        await until(lambda: alice.remote.state.phase == bob.remote.state.phase == "running")  # each hears it on its own socket
        commands = [(e.command, e.actor) for e in journaled(files, ev.CommandIssued)]
        assert commands == [("pause", "alice@laptop"), ("resume", "bob@desk")]
        assert alice.remote.state.phase == bob.remote.state.phase == controller.state.phase == "running"


def flag_store(plan, files):
    return plan_flags(plan, files).store


async def test_flag_changes_made_by_a_console_are_journaled_by_the_controller(canary_plan, served):
    _, files, _ = served
    store = flag_store(canary_plan, files)
    async with attached(canary_plan, files) as console:
        created = store.create("new-checkout-flow", actor="ops@laptop", reason="deploy dark").changes
        enabled = store.enable("new-checkout-flow", actor="ops@laptop", reason="incident 42").changes
        console.remote.record_flag_changes([*created, *enabled])  # as the console's flag editor does, once written
        await until(lambda: len(journaled(files, ev.FlagChanged, actor="ops@laptop")) == 2)
        recorded = journaled(files, ev.FlagChanged, actor="ops@laptop")[-1]
        assert recorded.new == store.get("new-checkout-flow").to_dict() and recorded.new["enabled"] and recorded.reason == "incident 42"
        assert not any("refused" in line for line in console.notices)


async def test_a_flag_change_the_flag_file_does_not_hold_is_refused_and_never_journaled(canary_plan, served):
    _, files, _ = served
    store = flag_store(canary_plan, files)
    store.create("new-checkout-flow", actor="ops@laptop")
    off = store.get("new-checkout-flow").to_dict()
    claimed = [
        {"flag": "new-checkout-flow", "old": off, "new": {**off, "enabled": True}, "actor": "liar@laptop"},  # the file says off
        {"flag": "no-such-flag", "old": None, "new": {"enabled": True}, "actor": "liar@laptop"},
        {"flag": "new-checkout-flow", "old": {**off, "enabled": True}, "new": off, "actor": "liar@laptop"},
    ]  # no change at all
    async with attached(canary_plan, files) as console:
        first = await console.remote.request({"op": "flags", "changes": claimed[:2]})
        assert first["ok"] is False and first["journaled"] == 0 and "not what the flag file holds" in first["error"]
        assert (await console.remote.request({"op": "flags", "changes": claimed[2:]}))["journaled"] == 1  # off is what the file says
        again = await console.remote.request({"op": "flags", "changes": claimed[2:]})
        assert again["ok"] is False and again["journaled"] == 0, "the journal already says so: repeating it is no change"
        too_many = await console.remote.request({"op": "flags", "changes": claimed[2:] * (MAX_FLAG_CHANGES + 1)})
        assert too_many["ok"] is False and f"at most {MAX_FLAG_CHANGES}" in too_many["error"]
    assert len(journaled(files, ev.FlagChanged, actor="liar@laptop")) == 1


def test_a_chain_of_changes_to_one_flag_is_borne_out_from_the_file_backwards():
    off, on, half = {"enabled": False}, {"enabled": True}, {"enabled": True, "percentage": 50}
    chain = [FlagChange("f", off, on, "a"), FlagChange("f", on, half, "a"), FlagChange("g", None, on, "a")]
    assert borne_out(chain, {"f": half, "g": on}, {}) == [True, True, True]
    assert borne_out(chain, {"f": on, "g": off}, {}) == [False, False, False], "f's last change is not in the file: nor is what led to it"
    assert borne_out(chain[:2] + [FlagChange("f", off, half, "a")], {"f": half}, {}) == [False, False, True], "a broken chain"
    assert borne_out(chain, {"f": half, "g": on}, {"g": on}) == [True, True, False], "already journaled"


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
    assert console.task.result() == "rolled_back"
    assert await asyncio.wait_for(server, 10) == "rolled_back"
    assert not files.socket.exists()


async def test_a_console_attaching_to_a_finished_rollout_reads_the_journal(canary_plan, served):
    controller, files, server = served
    controller.submit("rollback", "captain@laptop")
    assert await asyncio.wait_for(server, 10) == "rolled_back", "finished with nobody attached: the controller leaves"
    console = Attached(canary_plan, files)
    await until(lambda: console.remote.state.phase == "rolled_back")
    assert console.remote.pid is None and not console.task.done(), "it stays: the release shown, an undo possible"
    console.remote.stop()
    assert await asyncio.wait_for(console.task, 5) == "rolled_back"


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


@contextlib.asynccontextmanager
async def connected(files):
    """A raw connection to the controller's socket, as any program of its user may open."""
    reader, writer = await asyncio.open_unix_connection(str(files.socket), limit=1 << 22)
    try:
        yield reader, writer
    finally:
        writer.close()


async def ask(connection, line: bytes) -> dict | None:
    reader, writer = connection
    writer.write(line)
    await writer.drain()
    reply = await asyncio.wait_for(reader.readline(), 10)
    return strict_json.loads(reply) if reply else None  # what the controller writes is JSON any reader takes


MALFORMED = [
    b"not json\n",
    b"[1]\n",
    b"null\n",
    b"12\n",
    b'"attach"\n',
    b"[" * 50_000 + b"\n",
    b'{"op": "attach", "from": 1e400}\n',
    b'{"op": "attach", "from": [1]}\n',
    b'{"op": "attach", "from": null}\n',
    b'{"op": "attach", "from": -1}\n',
    b'{"op": "attach", "from": true}\n',
    b'{"op": "attach", "from": 1.5}\n',
    b'{"op": "attach", "from": ' + b"9" * 400 + b"}\n",
    b'{"op": "attach", "from": ' + b"9" * 5000 + b"}\n",
    b'{"op": "history", "metric": "error_rate", "start": 1e400}\n',
    b'{"op": "history", "metric": ["x"], "start": 0}\n',
    b'{"op": "flags", "changes": [1, null, "x"]}\n',
    b'{"op": "flags", "changes": {"flag": "f"}}\n',
    b'{"op": "flags"}\n',
    b'{"op": "command", "name": ["rollback"], "actor": {"a": 1}}\n',
    b'{"op": "command", "name": "pause", "actor": 7}\n',
    b'{"op": 1e400}\n',
    b'{"op": "nope", "id": [1]}\n',
]


async def test_a_request_that_is_not_one_gets_an_error_reply_and_no_traceback(canary_plan, served, caplog, capsys):
    _, files, _ = served
    async with connected(files) as connection:
        for line in MALFORMED:
            reply = await ask(connection, line)
            assert reply is not None and reply["ok"] is False and reply["error"], (line[:60], reply)
        assert (await ask(connection, b'{"op": "command", "name": "pause", "actor": "alice@laptop"}\n'))["ok"], "the connection still serves"
    await until(lambda: journaled(files, ev.CommandIssued, actor="alice@laptop"))
    assert not journaled(files, ev.CommandIssued, command="rollback")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "Traceback" not in capsys.readouterr().err


async def test_nan_is_neither_read_nor_written_on_the_socket(canary_plan, served):
    controller, files, _ = served
    async with connected(files) as connection:
        for line in (
            b'{"op": "command", "name": "pause", "actor": "alice@laptop", "id": NaN}\n',
            b'{"op": "history", "metric": "error_rate", "start": -Infinity}\n',
        ):
            reply = await ask(connection, line)  # Python's json reads NaN; echoed in the reply's id it would be no JSON
            assert reply == {"reply": "error", "ok": False, "error": "not JSON"}, reply

        async def history_of_a_broken_source(metric, start_t, end_t, step_s):
            return [HistoryPoint(start_t, math.nan, math.inf)]

        controller.metrics.history = history_of_a_broken_source
        reply = await ask(connection, b'{"op": "history", "metric": "error_rate", "start": 0, "id": 3}\n')
        assert reply == {"reply": "history", "ok": True, "points": [[0, None, None]], "id": 3}, "a source's NaN is a point with no value"
    assert not journaled(files, ev.CommandIssued)


def test_an_answer_json_cannot_hold_goes_as_a_refusal_naming_the_field():
    line = server_module.encode({"reply": "history", "ok": True, "points": [[0.0, math.nan, 1.0]], "id": 7})
    refused = strict_json.loads(line)
    assert refused["reply"] == "history" and refused["ok"] is False and refused["id"] == 7
    assert refused["error"].startswith("the answer could not be sent: points[0][1]: nan is not a number JSON can hold"), refused


async def test_a_line_over_the_limit_is_refused_and_its_connection_closed(canary_plan, served):
    _, files, _ = served
    async with connected(files) as connection:
        reply = await ask(connection, b'{"op": "command", "name": "pause", "actor": "' + b"x" * LINE_LIMIT + b'"}\n')
        assert reply is not None and reply["ok"] is False and f"{LINE_LIMIT // 1024} KiB" in reply["error"]
        assert await asyncio.wait_for(connection[0].read(), 10) == b"", "closed: the rest of that line is noise"
    assert not journaled(files, ev.CommandIssued)


HISTORY = b'{"op": "history", "metric": "error_rate", "start": 0}\n'


async def test_connections_beyond_the_cap_are_told_so_in_one_line_and_closed(canary_plan, served):
    _, files, _ = served
    cap = connection_cap()
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connected(files)) for _ in range(cap)]
        for connection in held[:2]:  # served: they answer
            assert (await ask(connection, HISTORY))["ok"]
        reader, writer = await stack.enter_async_context(connected(files))
        refused = await asyncio.wait_for(reader.read(), 10)
        assert json.loads(refused)["error"] == f"too many connections (at most {cap}); try again later"
        held[0][1].close()
        for _ in range(ROUNDS):  # the controller sees the hang-up at its next turn: then a place is free again
            async with connected(files) as connection:
                if (await ask(connection, HISTORY))["ok"]:
                    break
        else:
            raise AssertionError("no connection was served after one hung up")


async def test_failed_accepts_are_counted_in_one_line_a_kind_and_the_socket_serves_on(canary_plan, tmp_path, monkeypatch, capsys):
    failures = [OSError(errno.EMFILE, "Too many open files")] * 50 + [OSError(errno.ENFILE, "Too many open files in system")] * 3
    loop = asyncio.get_running_loop()
    accept = loop.sock_accept

    async def failing_accept(sock):
        if failures:
            raise failures.pop()
        return await accept(sock)

    monkeypatch.setattr(loop, "sock_accept", failing_accept)
    monkeypatch.setattr(server_module, "ACCEPT_RETRY_S", 0.0)
    async with serving(canary_plan, tmp_path) as (controller, files, server):
        async with connected(files) as connection:
            assert (await ask(connection, HISTORY))["ok"], "once descriptors are free again, the socket serves"
        assert not failures and not server.done()
        controller.stop()
        await asyncio.wait_for(server, 10)
    said = capsys.readouterr().err
    assert said.count("accept failed: ENFILE (Too many open files in system)") == 1
    assert said.count("accept failed: EMFILE (Too many open files)") == 1
    assert "accept failed: EMFILE ×50 in" in said and "accept failed: ENFILE ×3 in" in said
    assert "Traceback" not in said


def test_a_token_bucket_lets_a_burst_through_then_paces_to_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate=20, burst=40, monotonic=lambda: now[0])
    assert [bucket.wait_s() for _ in range(40)] == [0.0] * 40
    assert bucket.wait_s() == pytest.approx(0.05)
    now[0] += 0.05
    assert bucket.wait_s() == 0.0 and bucket.wait_s() > 0
    now[0] += 100
    assert sum(bucket.wait_s() == 0.0 for _ in range(100)) == 40, "what is saved up is capped at the burst"


def test_failures_of_a_kind_are_told_once_then_counted_each_period():
    said: list[str] = []
    now = [0.0]
    failures = CountedFailures("accept failed", said.append, period_s=60, monotonic=lambda: now[0])
    assert failures.record(OSError(errno.EMFILE, "Too many open files")) is True
    assert [failures.record(OSError(errno.EMFILE, "Too many open files")) for _ in range(1233)] == [False] * 1233
    now[0] = 60.0
    failures.report()
    failures.record(OSError(errno.EMFILE, "Too many open files"))
    assert said == [
        "accept failed: EMFILE (Too many open files); the controller goes on; counted once a minute",
        "accept failed: EMFILE ×1,234 in the last minute",
    ]


def test_a_consoles_flag_changes_go_in_requests_the_controller_takes():
    small = [{"flag": f"f{i}", "old": None, "new": {"enabled": True}, "actor": "a", "reason": ""} for i in range(250)]
    assert [len(batch) for batch in flag_batches(small)] == [MAX_FLAG_CHANGES, MAX_FLAG_CHANGES, 50]
    big = [{**change, "new": {"allowed_users": [f"user-{n:05d}" for n in range(2000)]}} for change in small[:20]]
    batches = flag_batches(big)
    assert sum(map(len, batches)) == 20 and all(len(strict_json.line({"op": "flags", "changes": b, "id": 2**63})) < LINE_LIMIT for b in batches), "as sent"
    assert flag_batches([]) == []


# -- who watches: attached, detached, and a pause nobody can decide --------------------------------


async def test_consoles_are_journaled_as_they_attach_and_leave_with_their_actor(canary_plan, served):
    controller, files, _ = served
    async with attached(canary_plan, files, actor="alice@laptop"):
        async with attached(canary_plan, files, actor="bob@desk", watch_only=True):
            await until(lambda: len(journaled(files, ev.ConsoleAttached)) == 2)
            assert controller.state.acting_consoles == 1
        await until(lambda: journaled(files, ev.ConsoleDetached, actor="bob@desk"))
    await until(lambda: journaled(files, ev.ConsoleDetached, actor="alice@laptop"))
    said = [(e.name, e.actor, e.watch_only, e.consoles) for e in read_events(files.journal) if isinstance(e, (ev.ConsoleAttached, ev.ConsoleDetached))]
    assert said == [
        ("attached", "alice@laptop", False, 1),
        ("attached", "bob@desk", True, 1),
        ("detached", "bob@desk", True, 1),
        ("detached", "alice@laptop", False, 0),
    ]
    assert controller.state.consoles == [] and controller.state.alone_since.actor == "alice@laptop"


async def test_a_pause_waits_while_a_console_is_attached_and_times_out_once_the_last_one_left(canary_plan, served):
    """A controller started by a console stayed paused 40+ minutes after its console left (pause_timeout 15m)."""
    controller, files, _ = served
    timeout = canary_plan.pause_timeout
    async with attached(canary_plan, files, actor="alice@laptop") as console:
        console.remote.submit("pause", "alice@laptop")
        await until(lambda: controller.state.phase == "paused")
        controller.clock.run_to(HELD_AT + 3 * timeout)  # time runs on, far past pause_timeout
        await until(lambda: controller.now() == HELD_AT + 3 * timeout)
        assert controller.state.phase == "paused", "someone is there to decide: the pause waits for them"
    await until(lambda: journaled(files, ev.ConsoleDetached, actor="alice@laptop"))
    left = journaled(files, ev.ConsoleDetached)[-1].t
    assert left == HELD_AT + 3 * timeout
    controller.clock.run_to(None)
    await until(lambda: controller.state.phase == "rolled_back")
    rollback = journaled(files, ev.RollbackStarted)[0]
    assert rollback.t == left + timeout, "pause_timeout counted from when the last console left"
    assert rollback.reason == "paused 15m with no decision and nobody attached to decide: paused by alice@laptop"
    from console.report import write_report

    timeline = " ".join(write_report(files.journal, files.state_dir / "report.md").read_text().split())
    assert "alice@laptop detached; no console that may act is attached: a pause rolls back after pause_timeout" in timeline


async def test_with_only_a_console_that_watches_a_pause_times_out_from_when_it_began(canary_plan, served):
    controller, files, _ = served
    async with attached(canary_plan, files, actor="bob@desk", watch_only=True):
        controller.submit("pause", "alice@laptop")  # paused, then nobody who could decide it came
        await until(lambda: controller.state.phase == "paused")
        controller.clock.run_to(None)
        await until(lambda: controller.state.phase == "rolled_back")
    assert journaled(files, ev.RollbackStarted)[0].t == HELD_AT + canary_plan.pause_timeout, "from the pause: nobody left after it"


async def test_a_console_attaching_after_nobody_was_says_since_when(canary_plan, served):
    _, files, _ = served
    async with attached(canary_plan, files, actor="alice@laptop"):
        pass
    await until(lambda: journaled(files, ev.ConsoleDetached))
    async with attached(canary_plan, files, actor="bob@desk") as console:
        said = [line for line in console.notices if line.startswith("nobody was attached from ")]
        assert len(said) == 1 and said[0].endswith("(while nobody is, a pause rolls back after 15m, as in a headless run)")
    async with attached(canary_plan, files, actor="carol@desk", watch_only=True) as watcher:
        assert "this console only watches: with no console that may act attached, a pause rolls back after 15m (pause_timeout)" in watcher.notices


async def test_consoles_a_stopped_controller_served_are_journaled_gone_by_the_next(canary_plan, tmp_path):
    from console.journal.journal import Journal

    async with serving(canary_plan, tmp_path):
        pass
    journal = Journal(tmp_path / "checkout-2.4.1.jsonl")  # as if its controller was killed with alice attached
    journal.append(ev.ConsoleAttached(HELD_AT, actor="alice@laptop", consoles=1))
    journal.close()
    async with serving(canary_plan, tmp_path) as (controller, files, _):
        gone = journaled(files, ev.ConsoleDetached, actor="alice@laptop")
        assert [(e.reason, e.consoles) for e in gone] == [("the controller that served it stopped", 0)]
        assert controller.state.acting_consoles == 0
        async with attached(canary_plan, files, actor="alice@laptop") as console:
            assert not [line for line in console.notices if line.startswith("nobody was attached")], (
                "nobody left: the controller stopped under them, and its successor says how long nobody watched"
            )


async def test_an_attach_naming_nobody_or_a_bad_actor(canary_plan, served):
    _, files, _ = served
    async with connected(files) as connection:
        reply = await ask(connection, b'{"op": "attach", "from": 0, "actor": ["x"]}\n')
        assert reply["ok"] is False and reply["error"].startswith("actor: expected who attaches")
    async with connected(files) as (reader, writer):
        writer.write(b'{"op": "attach", "from": 0}\n')  # an old client: served, journaled as nobody
        await writer.drain()
        while "hello" not in json.loads(await asyncio.wait_for(reader.readline(), 10)):
            pass
    assert not journaled(files, ev.ConsoleAttached)


def test_the_in_process_and_the_remote_controller_show_a_console_the_same_face(canary_plan, tmp_path):
    """Both are ControllerHandles, their methods taking what the protocol says; each can do one thing
    besides: the one in this process journals for the console, the remote one tells of its connection."""
    from console.controller.handle import ConnectedHandle, ControllerHandle, JournalingHandle
    from console.journal.state_dir import RolloutFiles
    from tests.conftest import sim_controller

    local, remote = sim_controller(canary_plan, tmp_path), RemoteController(canary_plan, RolloutFiles(tmp_path, canary_plan.name))
    assert isinstance(local, ControllerHandle) and isinstance(remote, ControllerHandle)
    assert (isinstance(local, JournalingHandle), isinstance(local, ConnectedHandle)) == (True, False)
    assert (isinstance(remote, JournalingHandle), isinstance(remote, ConnectedHandle)) == (False, True)
    methods = ("subscribe", "submit", "record_flag_changes", "now", "stop", "run")
    for name in methods:
        wanted = list(inspect.signature(getattr(ControllerHandle, name)).parameters)
        for controller in (local, remote):
            assert ["self", *inspect.signature(getattr(controller, name)).parameters] == wanted, f"{type(controller).__name__}.{name}"


async def test_a_controller_gives_a_console_the_plan_it_runs_as_it_compiled_it(canary_plan, served):
    controller, files, _ = served
    async with connected(files) as connection:
        reply = await ask(connection, b'{"op": "plan", "id": 4}\n')
    assert reply["ok"] is True and reply["id"] == 4
    assert plan_from_plain(reply["plan"]) == controller.plan == canary_plan
    with SupervisorClient(files.socket) as client:  # as `brahma attach` asks for it, before its console opens
        assert await asyncio.to_thread(client.plan) == canary_plan
