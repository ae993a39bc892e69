"""The console `brahma run` opens while its controller starts: a calm starting screen on which nothing is judged
and no key acts, then the rollout once the controller answers with it (or, when none will, the console leaves)."""

from __future__ import annotations

import asyncio

from console.app.wiring import plan_flags
from console.rollout import Rollout
from console.supervisor.remote import RemoteController
from console.tui.app import make_app
from console.tui.rollout_screen import RolloutScreen
from console.tui.starting_screen import StartingScreen
from tests.served_controller import until
from widgets.confirm_screen import ConfirmScreen
from widgets.stage_track import StageTrack

SMALL = (80, 24)


class Arrival:
    """The rollout given when the test says, as the starter's answer gives it to the console."""

    waiting_for = "waiting for the controller of canary.yaml"

    def __init__(self):
        self.given: asyncio.Future[Rollout | None] | None = None

    def arrived(self) -> Rollout | None:
        return None

    async def rollout(self) -> Rollout | None:
        self.given = asyncio.get_running_loop().create_future()
        return await self.given

    def give(self, rollout: Rollout | None) -> None:
        assert self.given is not None, "the console asked for its rollout"
        self.given.set_result(rollout)


async def test_the_console_opens_before_its_controller_answers_then_shows_the_rollout(canary_plan, served):
    controller, files, _ = served
    arrival = Arrival()
    app = make_app(None, arriving=arrival, actor="captain@laptop")
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: arrival.given is not None)
        await pilot.pause()
        assert isinstance(app.screen, StartingScreen)
        assert app.screen.query_one(StageTrack).track.state == "STARTING · waiting for the controller of canary.yaml…"
        assert not app.screen.query_one(StageTrack).track.stages, "nothing of a rollout is shown before its controller answers"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen), "no console key acts before the controller answers"
        assert app.check_action("rollback", ()) is False

        arrival.give(Rollout(RemoteController(canary_plan, files), plan_flags(canary_plan, files), detached=True))
        await until(lambda: isinstance(app.screen, RolloutScreen) and app.controller.pid is not None)
        app.refresh_view()
        await pilot.pause()
        track = app.screen.query_one(StageTrack).track
        assert [s.status for s in track.stages] == ["current", "next", "next", "next"]
        assert track.state.startswith("RUNNING") and app.title == f"Brahma · {canary_plan.name}"
        assert app.check_action("rollback", ()) is True
        await pilot.press("q")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "shutdown"])
    assert controller.state.phase == "running", "the console detached: its controller goes on"


async def test_a_console_whose_controller_will_not_answer_leaves_for_its_opener_to_say_why():
    arrival = Arrival()
    app = make_app(None, arriving=arrival)
    async with app.run_test(size=SMALL):
        await until(lambda: arrival.given is not None)
        arrival.give(None)
        await until(lambda: not app.is_running)
    assert app.rollout is None and app.return_code == 0


async def test_q_leaves_the_console_before_its_controller_answers():
    arrival = Arrival()
    app = make_app(None, arriving=arrival)
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: arrival.given is not None)
        await pilot.press("q")
        await until(lambda: not app.is_running)
    assert app.rollout is None


async def test_a_rollout_arrived_before_the_console_opened_is_shown_with_no_starting_screen(canary_plan, served):
    _, files, _ = served
    arrival = Arrival()
    arrival.arrived = lambda: Rollout(RemoteController(canary_plan, files), plan_flags(canary_plan, files), detached=True)
    app = make_app(None, arriving=arrival, actor="captain@laptop")
    async with app.run_test(size=SMALL) as pilot:
        await until(lambda: app.controller.pid is not None)
        assert isinstance(app.screen, RolloutScreen) and len(app.screen_stack) == 1
        assert arrival.given is None, "nothing waited for it"
        await pilot.press("q")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "shutdown"])
