"""The console attached to a detached controller (`brahma run`, `brahma attach`): the same panes and keys
over the socket, and quitting leaves the controller supervising."""

from __future__ import annotations

import asyncio

from console.app.exits import console_exit_code
from console.app.wiring import plan_flags
from console.journal import events as ev
from console.journal.journal import read_events
from console.rollout import Rollout
from console.supervisor.remote import RemoteController
from console.tui.app import make_app
from tests.served_controller import until
from widgets.confirm_screen import ConfirmScreen
from widgets.rollback_bar import RollbackBar
from widgets.stage_track import StageTrack

SMALL = (80, 24)


async def quit_console(pilot, app) -> None:
    await pilot.press("q")
    await app.workers.wait_for_complete([w for w in app.workers if w.group == "shutdown"])


def attached_app(plan, files, read_only: bool = False):
    return make_app(Rollout(RemoteController(plan, files), plan_flags(plan, files), detached=True), read_only=read_only, actor="captain@laptop")


async def test_the_attached_console_shows_the_rollout_and_its_commands_are_journaled_with_the_actor(canary_plan, served):
    controller, files, server = served
    app = attached_app(canary_plan, files)
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: app.controller.pid is not None)
        app.refresh_view()
        await pilot.pause()
        track = app.query_one(StageTrack).track
        assert [s.status for s in track.stages] == ["current", "next", "next", "next"]
        assert track.state.startswith("RUNNING · new 5%")
        await pilot.press("space")
        await until(lambda: app.controller.state.phase == "paused")
        assert controller.state.phase == "paused" and "captain@laptop" in controller.state.paused_reason
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await until(lambda: app.controller.state.phase == "rolled_back")
        app.refresh_view()
        assert app.query_one(RollbackBar).phase == "rolled_back"
    assert await asyncio.wait_for(server, 10) == "rolled_back", "the last console left a finished rollout: its controller leaves too"


async def test_quitting_an_attached_console_detaches_at_once_and_the_controller_goes_on(canary_plan, served):
    controller, files, server = served
    app = attached_app(canary_plan, files)
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: app.controller.pid is not None)
        await quit_console(pilot, app)
        assert not isinstance(app.screen, ConfirmScreen), "nothing stops when this console goes: no question"
    assert console_exit_code(app.return_value, detached=True) == 0, "detached: the rollout goes on, nothing failed"
    assert not server.done() and controller.state.phase == "running"
    controller.submit("promote", "someone@else")  # still supervising, still acting
    await until(lambda: controller.state.stage == 1)


async def test_a_read_only_console_sends_nothing(canary_plan, served):
    controller, files, _ = served
    app = attached_app(canary_plan, files, read_only=True)
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: app.controller.pid is not None)
        for key in ("space", "p", "P", "ctrl+r", "y"):
            await pilot.press(key)
        await pilot.pause()
        # A marker sent after the keys on a connection of its own: anything the console had sent is in by then.
        marker = RemoteController(canary_plan, files)
        following = asyncio.create_task(marker.run())
        await until(lambda: marker.pid is not None)
        marker.submit("pause", "marker@test")
        await until(lambda: controller.state.phase == "paused")
        marker.stop()
        await following
        commands = [e.actor for e in read_events(files.journal) if isinstance(e, ev.CommandIssued)]
        assert commands == ["marker@test"] and controller.state.stage == 0
        await quit_console(pilot, app)
