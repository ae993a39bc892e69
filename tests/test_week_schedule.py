"""The reference week (sample_configs/flags-week.yaml) in virtual time: its steps fall on days 1, 2, 3, 5
and 7 of the wall clock, across a controller killed on day 3 and taken up again from its journal."""

import dataclasses
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import RichLog

from console.controller.clock import VirtualClock
from console.controller.controller import ControllerOptions
from console.controller.release_flags import ReleaseFlags
from console.flags.backends import FileBackend
from console.flags.store import FlagStore
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state import read_state
from console.narrate import event_printer, rollout_clock
from console.plan import load_plan
from console.report import write_report
from console.tui.view import stage_track
from tests.conftest import SAMPLES, plan_from, sim_controller, stop_at
from tests.tui.console_fixtures import console_app, settle
from widgets.stage_track import StageTrack

DAY = 86400.0
MONDAY_9AM = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CANARY_S = 10 * 60 + 15 * 60 + 20 * 60 + 60 * 60
"""The canary's stages, on the morning of day 1, before the flag's first step."""
KILLED_AT = 2 * DAY + CANARY_S + 5 * 3600
"""Five hours into the 25% step (day 3), whose window is two days."""


class WallClock(VirtualClock):
    """Virtual time whose wall-clock gaps count as rollout time, as a real clock's do."""

    speed = 1.0


class WallOfTheWeek(datetime):
    """datetime whose now() is a Monday 9:00 plus the reading of the controller running (or, while none does,
    where the wall clock stands): what the journal's `ts` and a restart's gap are read from."""

    reading = staticmethod(lambda: 0.0)

    @classmethod
    def now(cls, tz=None):
        return MONDAY_9AM + timedelta(seconds=cls.reading())


@pytest.fixture
def week(monkeypatch):
    """The week plan, sampled every 5 minutes to keep its ~2,000 samples a run quick (a minute a sample,
    as written, takes some 6 s of CPU a week); the wall clock the controller's virtual time."""
    monkeypatch.setattr("console.journal.events.datetime", WallOfTheWeek)
    monkeypatch.setattr("console.controller.controller.datetime", WallOfTheWeek)
    return dataclasses.replace(load_plan(SAMPLES / "flags-week.yaml"), interval=300.0)


def day_of(event: ev.Event, start: ev.Event) -> int:
    """The day of the rollout an event fell on by the wall clock: day 1 is the first 24 hours from its start."""
    return int((datetime.fromisoformat(event.ts) - datetime.fromisoformat(start.ts)).total_seconds() // DAY) + 1


async def kill_on_day_3_and_restart(plan, state_dir, gone_s: float):
    """Run to KILLED_AT, stop without a final event (as a crash), let the wall clock run `gone_s` with no
    controller, and run a new one from the journal to the end: the journal's events."""
    first = sim_controller(plan, state_dir, clock=WallClock(stop_at=KILLED_AT))
    WallOfTheWeek.reading = first.now
    await stop_at(first, KILLED_AT)
    assert not any(e.name in ev.FINAL_EVENTS for e in read_events(first.journal.path)), "killed mid-rollout"
    back_at = KILLED_AT + gone_s
    second = sim_controller(plan, state_dir, clock=WallClock())
    WallOfTheWeek.reading = lambda: max(back_at, second.now())  # the wall clock stood at back_at until it started
    assert await second.run() == "completed"
    second.journal.close()
    return list(read_events(second.journal.path))


def flag_steps(plan, events):
    return [e for e in events if isinstance(e, ev.StageStarted) and plan.stages[e.stage].flag_step is not None]


async def test_a_week_killed_on_day_3_keeps_its_days_and_its_window(week, tmp_path):
    events = await kill_on_day_3_and_restart(week, tmp_path, gone_s=3600)
    start = events[0]
    steps = flag_steps(week, events)
    assert [(week.stages[e.stage].name, day_of(e, start)) for e in steps] == [
        ("new-checkout-flow: internal users", 1),
        ("new-checkout-flow: 5%", 2),
        ("new-checkout-flow: 25%", 3),
        ("new-checkout-flow: 50%", 5),
        ("new-checkout-flow: 100%", 7),
    ]
    assert len([e for e in events if isinstance(e, ev.StageStarted)]) == len(week.stages), "no stage started twice"
    resumed = [e for e in events if isinstance(e, ev.SupervisionResumed)]
    assert len(resumed) == 1 and resumed[0].unwatched_s == pytest.approx(3600) and not resumed[0].window_restarted
    twenty_five = steps[2]
    assert twenty_five.t < KILLED_AT < resumed[0].t
    passed = next(e for e in events if isinstance(e, ev.StagePassed) and e.stage == twenty_five.stage)
    assert passed.t == pytest.approx(twenty_five.t + 2 * DAY), "the window in progress kept its start across the restart"
    assert datetime.fromisoformat(steps[3].ts) == MONDAY_9AM + timedelta(days=4, seconds=CANARY_S), "50% on Friday, as planned"
    assert isinstance(events[-1], ev.Completed) and day_of(events[-1], start) == 7


async def test_a_week_whose_controller_was_gone_longer_than_its_window_can_miss_starts_the_window_again(week, tmp_path):
    gone_s = DAY  # more than the 20% of a two-day window that min_coverage 0.8 lets go unsampled
    events = await kill_on_day_3_and_restart(week, tmp_path, gone_s=gone_s)
    start = events[0]
    resumed = next(e for e in events if isinstance(e, ev.SupervisionResumed))
    assert resumed.window_restarted and resumed.unwatched_s == pytest.approx(gone_s)
    steps = flag_steps(week, events)
    passed = next(e for e in events if isinstance(e, ev.StagePassed) and e.stage == steps[2].stage)
    assert passed.t == pytest.approx(resumed.t + 2 * DAY), "the 25% window began again when the controller came back"
    assert [day_of(e, start) for e in steps] == [1, 2, 3, 6, 8], "every later step a day and five hours later"
    assert isinstance(events[-1], ev.Completed)


@pytest.fixture
def berlin(monkeypatch):
    """The machine's zone, as the engineer reads the console's times: Berlin, an hour ahead of UTC in December."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_the_console_says_the_day_and_when_the_next_step_comes_in_the_machine_s_zone(week, tmp_path, berlin):
    controller = sim_controller(week, tmp_path, clock=WallClock(stop_at=KILLED_AT))
    WallOfTheWeek.reading = controller.now
    await stop_at(controller, KILLED_AT)
    state = read_state(controller.journal.path)
    # The 25% step began Wednesday 10:45 UTC (11:45 in Berlin) and holds two days.
    assert stage_track(week, state, KILLED_AT).state == "RUNNING · new 100% · stable 0% · day 3 of 7 · next: ⚑50% on Fri 11:45"
    short = stage_track(plan_from("app: a\nimage: r/a:2\n"), read_state(tmp_path / "none.jsonl"), 0.0)
    assert "day" not in short.state, "a rollout within a day has no days to count"


async def test_the_runbook_of_a_week_tells_its_clock_in_days_and_its_wall_times_by_weekday(week, tmp_path):
    await kill_on_day_3_and_restart(week, tmp_path, gone_s=3600)
    runbook = write_report(next(tmp_path.glob("*.jsonl"))).read_text()
    assert "| new-checkout-flow: 50%            | 100%   | d5 01:45:00 |" in runbook, "the stage table's start, in days"
    assert "- `d5 01:45:00` Fri 10:45:00 new-checkout-flow: 50% started" in runbook, "Monday 9:00 + 4 days 1h45m"
    assert "`5865:00`" not in runbook, "no minute count of a week"


def test_the_timeline_is_told_in_days_for_a_rollout_that_spans_them_and_in_minutes_otherwise():
    assert [rollout_clock(t, days=True) for t in (0, 6300, 2 * DAY + 15120, 6 * DAY + 49500)] == ["d1 00:00:00", "d1 01:45:00", "d3 04:12:00", "d7 13:45:00"]
    assert [rollout_clock(t) for t in (6300, 2 * DAY + 15120, -5)] == ["105:00", "3132:00", "-0:05"], "the short form, as before"
    assert rollout_clock(-5, days=True) == "-0:05", "pre-flight, before the first stage, stays in minutes"
    for planned_s, clock in ((6.5 * DAY, "[d1 00:10:00]"), (6300, "[  10:00]")):
        out = io.StringIO()
        printer = event_printer(out, json_lines=False)
        printer(ev.RolloutStarted(0.0, rollout="r", app="a", image="i", strategy="canary", plan="p", planned_s=planned_s, actor="x", stages=[]))
        printer(ev.StagePassed(600.0, stage=0, summary={}))
        assert out.getvalue().splitlines()[1] == f"{clock} stage 1 passed", "days once the rollout_started said it spans them"


async def test_the_console_taking_up_day_3_shows_the_day_and_the_window_in_days(week, tmp_path, berlin):
    flags = ReleaseFlags(FlagStore(FileBackend(tmp_path / "flags.json")), week.flags)  # the flag the console's controller steps on
    options = ControllerOptions(flag_setup=flags.create_missing, flag_step=flags.apply_step)
    left = sim_controller(week, tmp_path, options=options, clock=WallClock(stop_at=KILLED_AT))
    WallOfTheWeek.reading = left.now
    await stop_at(left, KILLED_AT)
    app = console_app(week, tmp_path, stop_at=KILLED_AT)  # the console's controller takes the journal up; time stands there
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app, lambda state: state.phase == "running" and app.controller.now() >= KILLED_AT)
        track = app.query_one(StageTrack)
        assert track.track.state.endswith("day 3 of 7 · next: ⚑50% on Fri 11:45")
        assert "0d 05:00/2d 00:00" in str(track.query_one("#window").render()), "a two-day window's bar in days, hours and minutes"
        logged = [line.text for line in app.query_one(RichLog).lines]
        assert any(line.startswith("d3 06:45:00 supervision resumed") for line in logged), logged
