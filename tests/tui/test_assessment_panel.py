"""The think step at the head of the console's pre-flight pane: made after the first frame, from the app's past releases."""

from __future__ import annotations

from console.tui.rollout_screen import RolloutScreen
from tests.conftest import plan_from
from tests.tui.console_fixtures import console_app, settle
from tests.tui.test_fleet import journal
from widgets.assessment_panel import AssessmentPanel
from widgets.text_screen import TextScreen

GATED = "app: checkout\nimage: r/checkout:2.4.1\npreflight:\n  - {name: code review, kind: manual}\n"


async def assessed(pilot, app) -> AssessmentPanel:
    await settle(pilot, app, lambda state: len(state.preflight) == 1)
    assert app.rollout_screen.assessing is not None
    await app.rollout_screen.assessing.wait()
    await pilot.pause()
    return app.query_one(AssessmentPanel)


async def test_the_pre_flight_pane_opens_on_the_risk_and_why_from_the_app_s_last_release(tmp_path):
    journal(
        tmp_path,
        "checkout-2-4-0",
        ("rollback_started", {"reason": "error_rate 3% over 1%", "trigger": "error_rate"}),
        ("rolled_back", {"duration_s": 12.0}),
        hours_ago=48,
    )
    app = console_app(plan_from(GATED), tmp_path, stop_at=0)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = await assessed(pilot, app)
        assert panel.risk == "high"
        shown = str(panel.render())
        assert shown.startswith("Risk HIGH · ") and "1 of the last 1 releases did not complete" in shown
        assert "\nRollback: " in shown and "Went wrong" not in shown, "the key lines; Enter shows the rest"
        panel.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        assert "checkout-2-4-0: " in app.screen.text and "error_rate" in app.screen.text


async def test_the_release_s_own_journal_is_no_past_release_of_its_own(tmp_path):
    app = console_app(plan_from(GATED), tmp_path, stop_at=0)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = await assessed(pilot, app)
        assert (app.rollout_screen.plan.name + ".jsonl") in {path.name for path in tmp_path.iterdir()}
        assert panel.risk == "medium" and "no past release (medium)" in panel.lines[0] and "did not complete" not in panel.lines[0]


async def test_a_plan_without_pre_flight_assesses_nothing(tmp_path):
    app = console_app(plan_from("app: checkout\nimage: r/checkout:2.4.1\n"), tmp_path, stop_at=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, RolloutScreen)
        assert app.rollout_screen.assessing is None and not app.query_one("#preflight-pane").display
