"""The console driven with Pilot: every key, every pane's states, at 80x24 and larger."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import RichLog

from console.app.exits import EXIT_INTERRUPTED, EXIT_ROLLBACK_UNVERIFIED, console_exit_code
from console.controller.clock import VirtualClock
from console.journal.journal import read_events
from console.tui import view
from console.tui.app import BrahmaApp
from console.tui.keymap import KeymapError, load_keymap
from tests.conftest import SAMPLES, plan_from
from tests.tui.console_fixtures import CONTROLLERS, UnreachableRollbackTarget, console_app, console_on, settle
from widgets.chart_screen import ChartScreen
from widgets.confirm_screen import ConfirmScreen
from widgets.keys_screen import KeysScreen
from widgets.metric_table import MetricTable
from widgets.rollback_bar import RollbackBar
from widgets.stage_track import StageTrack
from widgets.text_screen import TextScreen

SMALL = (80, 24)
GATED = "app: checkout\nimage: r/checkout:2.4.1\npreflight:\n  - {name: code review, kind: manual}\n  - {name: tests, kind: command, argv: ['true']}\n"


def running(state):
    return state.phase == "running" and state.last_sample_t is not None


@pytest.fixture
def plan():
    from console.plan import load_plan

    return load_plan(SAMPLES / "canary.yaml")


async def test_mid_stage_shows_stage_metrics_flags_and_the_rollback_bar(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda state: running(state) and app.controller.now() >= 300)  # the clock stopped
        track = app.query_one(StageTrack).track
        assert [s.status for s in track.stages] == ["current", "next", "next", "next"]
        assert track.state.startswith("RUNNING · new 5%") and track.elapsed_s == 300
        table = app.query_one("#metrics")
        assert table.row_count == len(plan.metric_names)
        assert app.query_one(RollbackBar).phase == "ready"
        assert app.query_one("#flags").row_count == 1
        assert app.query_one(RollbackBar).region.height == 3, "the rollback control is big and visible at 80x24"


async def test_the_first_frame_is_the_track_and_state_and_the_panes_follow_with_the_log_so_far(plan, tmp_path, monkeypatch):
    mounted = BrahmaApp.on_mount
    first_frame: list[int] = []

    def on_mount(app: BrahmaApp) -> None:
        mounted(app)
        app.call_after_refresh(lambda: first_frame.append(len(app.query(MetricTable))))

    monkeypatch.setattr(BrahmaApp, "on_mount", on_mount)
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda state: running(state) and app.controller.now() >= 300)
        assert first_frame == [0], "no table is drawn on the first frame"
        assert app.query_one("#metrics").row_count == len(plan.metric_names)
        logged = "\n".join(line.text for line in app.query_one(RichLog).lines)
        assert "rollout checkout-2.4.1: canary of" in logged and "stage 1 started" in logged, "the lines from before the log was mounted are in it"


@pytest.mark.parametrize("where", CONTROLLERS)
async def test_rollback_key_asks_then_rolls_back_on_enter(plan, tmp_path, where):
    async with console_on(where, plan, tmp_path) as (app, controller), app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        state = app.controller.state
        assert state.phase == "rolled_back" and state.rollback_trigger == "operator"
        assert "captain@laptop" in state.rollback_reason
        assert app.query_one(RollbackBar).phase == "rolled_back"
        assert controller.target.cluster.weight == 0
        await pilot.pause()
        offered = {active.binding.action for active in app.screen.active_bindings.values()}
        assert not offered & {"promote", "promote_full", "pause"}, "a rolled-back release has nothing to promote or hold"


def unreachable_rollback(plan, tmp_path):
    """A console whose rollback the target refuses; wall time stands still once three attempts failed."""
    app = console_app(plan, tmp_path, stop_at=300)
    target = app.controller.target = UnreachableRollbackTarget(app.controller.target)
    app.controller.wall_clock = VirtualClock(stop_at=5)
    return app, target


async def roll_back_unverified(pilot, app) -> None:
    await settle(pilot, app, running)
    await pilot.press("ctrl+r", "enter")
    await settle(pilot, app, lambda state: state.rollback_failure is not None)


async def test_a_rollback_the_target_does_not_confirm_is_loud_and_the_key_tries_it_again(plan, tmp_path):
    app, target = unreachable_rollback(plan, tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await roll_back_unverified(pilot, app)
        assert app.query_one(StageTrack).track.state.startswith("ROLLBACK NOT VERIFIED · retrying · the Kubernetes API")
        assert app.query_one(StageTrack).track.tone == "bad"
        bar = app.query_one(RollbackBar)
        assert bar.phase == "unverified" and "ROLLBACK NOT VERIFIED" in str(bar.render())
        target.fixed = True
        await pilot.press("ctrl+r")
        assert not isinstance(app.screen, ConfirmScreen), "an open rollback is tried again at once, without a question"
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        assert bar.phase == "rolled_back" and app.controller.target.cluster.weight == 0


async def test_quitting_with_the_rollback_unverified_warns_and_exits_5(plan, tmp_path):
    app, _ = unreachable_rollback(plan, tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await roll_back_unverified(pilot, app)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and "nobody tries the rollback again" in app.screen.body
        await pilot.press("enter")
        await pilot.pause()
    assert console_exit_code(app.return_value, detached=False) == EXIT_ROLLBACK_UNVERIFIED


async def test_rollback_confirm_takes_y_and_cancels_on_n_or_escape(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        for cancel in ("n", "escape"):
            await pilot.press("ctrl+r", cancel)
            await settle(pilot, app)
            assert app.controller.state.phase == "running" and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+r", "y")
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        assert app.controller.state.phase == "rolled_back"


async def test_rollback_is_two_keys_from_a_chart(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("enter")
        assert isinstance(app.screen, ChartScreen) and app.screen.data.metric == "error_rate"
        assert app.screen.data.times, "the chart starts from the samples taken so far"
        await pilot.press("ctrl+r", "enter")
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        assert app.controller.state.phase == "rolled_back"


@pytest.mark.parametrize("where", CONTROLLERS)
async def test_promote_pause_resume_and_promote_full(plan, tmp_path, where):
    async with console_on(where, plan, tmp_path) as (app, controller), app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("p", "enter")
        await settle(pilot, app, lambda s: s.stage == 1)
        assert app.controller.state.weight == 25
        await pilot.press("space")
        await settle(pilot, app, lambda s: s.phase == "paused")
        assert app.controller.state.paused_reason == "paused by captain@laptop"
        assert app.query_one(StageTrack).track.state.startswith("PAUSED")
        await pilot.press("space")
        await settle(pilot, app, lambda s: s.phase == "running")
        await pilot.press("P", "y")
        await settle(pilot, app, lambda s: s.stage == 3)
        assert controller.target.cluster.weight == 100


async def test_promote_asks_first_saying_what_it_cuts_short(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=220)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 220)
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        assert (app.screen.title_text, app.screen.body) == ("Promote to 25% now?", "The 5% window has 6:20 left unobserved.")
        await pilot.press("n")
        await settle(pilot, app)
        assert app.controller.state.stage == 0, "nothing is sent until the question is answered"
        await pilot.press("P")
        assert (app.screen.title_text, app.screen.body) == (
            "Promote to 100% now?",
            "The 5% window has 6:20 left unobserved. Skips 25%, 50% and their windows.",
        )
        await pilot.press("enter")
        await settle(pilot, app, lambda s: s.stage == 3)
        track = app.query_one(StageTrack).track
        assert [s.status for s in track.stages] == ["skipped", "skipped", "skipped", "current"]
        assert "✓" not in app.query_one("#stages").render().plain, "no stage a promote went past reads as passed"


async def test_promote_after_a_window_held_is_sent_at_once_and_promote_full_still_asks(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=700, manual=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.phase == "awaiting_promote")
        await pilot.press("P")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body == "The 5% window held. Skips 25%, 50% and their windows."
        await pilot.press("escape", "p")
        await settle(pilot, app, lambda s: s.stage == 1)
        assert not isinstance(app.screen, ConfirmScreen) and app.controller.state.weight == 25
        assert [s.status for s in app.query_one(StageTrack).track.stages] == ["done", "current", "next", "next"]


async def test_a_promote_answered_after_the_rollout_moved_on_promotes_nothing(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=590)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 590)
        await pilot.press("p")
        app.controller.clock.stop_at = 700  # the window holds and 25% starts while the question is open
        app.controller._wake.set()
        await settle(pilot, app, lambda s: s.stage == 1 and s.last_sample_t == 700)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.controller.state.stage == 1, "the 25% stage was not cut short by an answer about 5%"


async def test_after_a_rollback_the_track_marks_where_it_happened_and_leaves_the_rest_open(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("p", "enter")
        await settle(pilot, app, lambda s: s.stage == 1)
        await pilot.press("ctrl+r", "enter")
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        assert [s.status for s in app.query_one(StageTrack).track.stages] == ["skipped", "failed", "next", "next"]


async def test_undoing_a_complete_release_marks_its_last_stage(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=7000)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.phase == "completed")
        await pilot.press("ctrl+r", "enter")
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        assert [s.status for s in app.query_one(StageTrack).track.stages] == ["done", "done", "done", "failed"]


async def test_a_paused_screen_says_why_in_full_and_what_to_do_next(plan, tmp_path):
    # The limits alone, whose warning pauses the creep (the sequential judge rolls it back before).
    app = console_app(dataclasses.replace(plan, judge="threshold"), tmp_path, scenario="latency-creep", stop_at=1200)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.phase == "paused" and s.last_sample_t == 1200)
        state = app.controller.state
        track = app.query_one(StageTrack)
        assert track.track.elapsed_s == state.paused_t - state.window_started_t, "the window bar stopped at the pause"
        shown = track.query_one("#state")
        assert shown.render().plain == f"PAUSED · {state.paused_reason}" and shown.region.height >= 2, "wrapped, not cut"
        assert "samples in a row)" in str(shown.render_line(shown.region.height - 1).text), "the reason's last words show"
        assert track.query_one("#hint").render().plain == "space resume · p promote to 50% · ctrl+r roll back"
        assert app.screen.active_bindings["space"].binding.description == "Resume"
        metrics = app.query_one("#metrics")
        assert metrics.highlighted_key == state.paused_trigger == "latency_p99", "the metric that paused it has the cursor"
        app.controller.clock.stop_at = 1260  # samples go on while paused; the bar does not
        app.controller._wake.set()
        await settle(pilot, app, lambda s: s.last_sample_t == 1260)
        assert track.track.elapsed_s == state.paused_t - state.window_started_t
        await pilot.press("space")
        await settle(pilot, app, lambda s: s.phase == "running")
        assert app.screen.active_bindings["space"].binding.description == "Pause"
        assert not track.query_one("#hint").display


async def test_moving_the_pause_key_moves_resume_with_it(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300, keymap={"rollout.pause": "f5"})
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("f5")
        await settle(pilot, app, lambda s: s.phase == "paused")
        assert app.query_one(StageTrack).track.hint[0] == ("f5", "resume")
        await pilot.press("f5")
        await settle(pilot, app, lambda s: s.phase == "running")


async def test_help_lists_every_key(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300, demo=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("question_mark")
        assert isinstance(app.screen, KeysScreen)
        descriptions = {d for _, d in app.screen.keys}
        assert {"Roll back", "Promote", "Promote to 100%", "Pause", "Quit", "Inject errors"} <= descriptions
        await pilot.press("escape")
        assert not isinstance(app.screen, KeysScreen)


@pytest.mark.parametrize("where", CONTROLLERS)
async def test_gate_waits_for_sign_off_and_records_who(tmp_path, where):
    async with console_on(where, plan_from(GATED), tmp_path) as (app, controller), app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: "code review" in s.preflight and "tests" in s.preflight)
        assert app.controller.state.phase == "preflight"
        assert app.query_one(StageTrack).track.state == "PRE-FLIGHT: waiting for sign-off (s)"
        assert controller.target.cluster.changes == [], "the deploy cannot start before the gate passes"
        await pilot.press("s")
        await settle(pilot, app, running)
        assert app.controller.state.preflight["code review"].by == "captain@laptop"
        assert app.controller.state.phase == "running"


async def test_a_sign_off_is_taken_while_a_check_still_runs(tmp_path, held_checks):
    app = console_app(plan_from(GATED), tmp_path, stop_at=120)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: "code review" in s.preflight)
        await pilot.press("s")
        await settle(pilot, app, lambda s: s.preflight["code review"].status == "pass")
        state = app.controller.state
        assert state.preflight["code review"].by == "captain@laptop"
        assert state.preflight["tests"].status == "running" and state.phase == "preflight", "signed off while the check runs"
        rows = {item.name: item.state for item in view.checklist(app.plan, state)}
        assert rows == {"code review": "pass", "tests": "running"}
        held_checks.finish("tests", True, "exit 0")
        await settle(pilot, app, running)
        assert app.controller.state.phase == "running"


async def test_sign_off_on_a_check_that_is_not_manual_says_why_nothing_happened(tmp_path, held_checks):
    app = console_app(plan_from(GATED), tmp_path, stop_at=120)
    said = []
    app.notify = lambda message, **options: said.append(message)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: "code review" in s.preflight)
        app.query_one("#checklist").focus()
        await pilot.press("down", "s")
        await settle(pilot, app)
        assert said == ["'tests' is a command check: it passes by itself; only manual items are signed off."]
        assert app.controller.state.preflight["code review"].status == "waiting", "nothing else was signed off"
        assert "command" not in [e.name for e in read_events(app.controller.journal.path)]


async def test_preflight_output_opens(tmp_path):
    app = console_app(plan_from(GATED), tmp_path, stop_at=120)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: "tests" in s.preflight)
        app.query_one("#checklist").focus()
        await pilot.press("down", "enter")
        assert isinstance(app.screen, TextScreen) and "exit 0" in app.screen.text


async def test_kill_switch_turns_the_new_flags_off(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        app.rollout.flags.store.enable("new-checkout-flow", actor="ops")
        await pilot.press("k")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await settle(pilot, app, lambda s: not app.rollout.flags.store.get("new-checkout-flow").enabled)
        assert app.rollout.flags.store.get("new-checkout-flow").enabled is False
        assert "kill switch" in str(app.query_one("#log").lines[-1].text)


async def test_demo_fault_key_leads_to_an_automatic_rollback(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300, demo=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        app.controller.clock.stop_at = 400
        await pilot.press("e")
        app.controller._wake.set()
        await settle(pilot, app, lambda s: s.phase == "rolled_back")
        state = app.controller.state
        assert state.phase == "rolled_back" and state.rollback_trigger == "error_rate"


async def test_read_only_never_acts(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300, read_only=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("ctrl+r", "enter", "p", "space", "k")
        await settle(pilot, app)
        assert app.controller.state.phase == "running" and app.controller.state.stage == 0
        assert app.query_one(RollbackBar).phase == "read_only"


async def test_quitting_mid_rollout_asks_and_says_what_stops(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    report = (tmp_path / f"{plan.name}.jsonl").with_suffix(".md")
    left = []
    app.on_leaving = lambda phase: left.append((phase, app.controller.journal._file.closed, report.exists()))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "no automatic rollback" in app.screen.body and "Traffic stays where it is" in app.screen.body
        await pilot.press("enter")
        await app.workers.wait_for_complete()
    assert console_exit_code(app.return_value, detached=False) == EXIT_INTERRUPTED
    assert report.exists(), "the report is written on the way out"
    assert left == [("running", True, True)], "the application hears the console has left once nothing of Brahma's is left to do"


async def test_missing_data_is_shown_in_place(plan, tmp_path):
    app = console_app(plan, tmp_path, scenario="no-data", stop_at=140)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, lambda s: s.phase == "paused")
        table = app.query_one("#metrics")
        assert str(table.get_cell("error_rate", "canary")).strip() == "no data" and str(table.get_cell("error_rate", "verdict")).strip() == "?"
        status = app.query_one("#metrics-pane").border_subtitle
        assert status.startswith("canary: no data since ") and "simulated canary has no data" in status


async def test_keymap_override_moves_the_rollback_key(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300, keymap={"rollout.rollback": "ctrl+b"})
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        assert app.query_one(RollbackBar).key == "ctrl+b", "the bar names the key that rolls back"
        await pilot.press("ctrl+b")
        assert isinstance(app.screen, ConfirmScreen)


def test_keymap_file_is_checked(tmp_path):
    known = {"rollout.rollback", "rollout.promote"}
    path = tmp_path / "keymap.yaml"
    path.write_text("rollout.rollback: x\n")
    with pytest.raises(KeymapError, match="needs a modifier"):
        load_keymap(path, known)
    path.write_text("rollout.promte: x\n")
    with pytest.raises(KeymapError, match="no such binding"):
        load_keymap(path, known)
    path.write_text("rollout.promote: o\n")
    assert load_keymap(path, known) == {"rollout.promote": "o"}


async def test_larger_terminals_get_a_taller_log(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, running)
        assert app.query_one("#log").region.height > 5
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.query_one("#log").region.height == 5


async def test_command_palette_offers_rollout_commands(plan, tmp_path):
    from console.tui.commands import RolloutCommands

    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, running)
        provider = RolloutCommands(app.screen)
        names = [hit.text async for hit in provider.discover()]
        assert "rollout: roll back" in names and "rollout: promote" in names
        hits = [hit async for hit in provider.search("promote")]
        assert hits
        await hits[0].command()
        assert isinstance(app.screen, ConfirmScreen), "the palette's promote asks like its key"
        await pilot.press("enter")
        await settle(pilot, app, lambda s: s.stage == 1)
        assert app.controller.state.stage == 1
