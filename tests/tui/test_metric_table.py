"""The metric table: the pass condition apart from the triggers, at 80x24 and at 120x40; trends drawn
against the limits, so noise far inside them is not drawn as spikes."""

from __future__ import annotations

import pytest

from console.journal import events as ev
from console.journal.state import RolloutState
from console.plan import load_plan
from console.plan.checks import Check
from console.tui import view
from console.units import shown_as_percent
from tests.conftest import SAMPLES, plan_from
from tests.tui.console_fixtures import console_app, settle
from widgets.metric_table import MetricRow, trend_cell
from widgets.sparkline_text import sparkline


@pytest.fixture
def plan():
    return load_plan(SAMPLES / "canary.yaml")


def cells(table, metric: str) -> dict[str, str]:
    return {str(column.key.value): str(table.get_cell(metric, column.key)).strip() for column in table.columns.values()}


async def test_at_80x24_a_trigger_is_never_in_the_must_column(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        table = app.query_one("#metrics")
        assert [str(c.key.value) for c in table.columns.values()] == ["metric", "trend", "canary", "stable", "must", "trigger", "verdict"]
        success = cells(table, "success_rate")
        assert success["must"] == ">99.9%" and success["trigger"] == "⟲<99%", "success < 99% rolls back: it is no goal"
        assert cells(table, "health_check_failures")["must"] == "" and cells(table, "cpu")["trigger"] == "⏸>80%"
        assert table.region.right <= 80 - 24, "the table fits beside the side pane"
        table.move_cursor(row=table.get_row_index("error_rate"))
        await pilot.pause()
        assert str(app.query_one("#metrics-detail").content).startswith("errors: pauses >0.5% ×2 · rolls back >1% · must <1%")


async def test_at_120x40_what_pauses_and_what_rolls_back_have_columns_and_the_trend_the_room(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        table = app.query_one("#metrics")
        errors = cells(table, "error_rate")
        assert (errors["must"], errors["pauses"], errors["rolls_back"]) == ("<1%", ">0.5%", ">1%")
        assert len(errors["trend"]) >= 16, "the extra width goes to the trend"
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "trigger" in [str(c.key.value) for c in table.columns.values()] and table.row_count == len(plan.metric_names)


async def test_noise_far_inside_a_limit_draws_flat(plan, tmp_path):
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(120, 40)) as pilot:  # at 80x24 beside the flags the judge's interval takes the cell
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        errors = [canary for _, canary, _ in app.controller.state.history["error_rate"]]
        assert min(errors) == 0 < max(errors) < 0.003, "the healthy canary's errors, counted: none in most samples of 1,000 requests, one in some"
        assert set(cells(app.query_one("#metrics"), "error_rate")["trend"].split()[0]) <= {"▁", "▂"}, (
            "0.1% at most against the 0.5% that pauses is at the bottom"
        )


def test_a_trend_band_comes_from_the_limits():
    plan = load_plan(SAMPLES / "canary.yaml")
    state = RolloutState(stage=0)

    def band(metric):
        return view.trend_band(view._limit_checks(plan, state, metric), shown_as_percent(metric, plan.metrics.units))

    assert band("error_rate") == (0.0, 0.005), "up to the first bound it must stay under: the 0.5% that pauses"
    assert band("latency_p99") == (0.0, 500.0)
    low, high = band("success_rate")
    assert (round(low, 6), high) == (0.998, 1.0), "centred on the 99.9% it must stay over"
    assert band("latency_p50") is None


def test_sparkline_within_a_band_clamps_and_without_one_starts_at_zero():
    assert sparkline([0.0001, 0.0002, 0.00015, 0.02], 4, (0.0, 0.01)) == "▁▁▁█"
    assert sparkline([40, 41, 39], 3) == "███", "39-41ms is flat, not the full range"
    assert sparkline([1.0, None, 0.5], 3, (0.0, 1.0)) == "█·▅"


async def test_a_business_metric_declared_a_percentage_reads_as_one(tmp_path):
    plan = load_plan(SAMPLES / "payments.yaml")
    app = console_app(plan, tmp_path, scenario=str(SAMPLES / "scenarios" / "payments-dip.yaml"), stop_at=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        payments = cells(app.query_one("#metrics"), "payment_success_rate")
        assert (payments["canary"], payments["stable"], payments["must"]) == ("99.4%", "99.5%", ">98%")
        assert "<95%" in (payments.get("rolls_back") or payments["trigger"]), "its trigger as written"


THIN_TRAFFIC = "app: checkout\nimage: r/checkout:2.4.1\nanalysis:\n  min_requests: 100000\n  judge: threshold\n"
"""The limits alone: the sequential judge weighs the counts whatever their number, and rolls this canary back."""
FAILING_CANARY = "name: failing\nseed: 3\nstable: {error_rate: 0.0001, latency_p99_ms: 240, rps: 2000}\ncanary: {error_rate: 0.03, latency_p99_ms: 1500}\n"


async def test_a_metric_the_controller_set_aside_on_too_little_traffic_reads_inconclusive_not_red(tmp_path):
    """The canary fails 3% of requests, but serves 1,000 a sample where min_requests is 100,000: the
    controller sets its rates and latencies aside (inconclusive) and rolls nothing back; the table says so."""
    scenario = tmp_path / "failing.yaml"
    scenario.write_text(FAILING_CANARY)
    app = console_app(plan_from(THIN_TRAFFIC), tmp_path, scenario=str(scenario), stop_at=20)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 20)
        state = app.controller.state
        assert state.phase == "running" and state.last_verdict == "inconclusive", "the controller judged nothing on so few requests"
        table = app.query_one("#metrics")
        for metric in ("error_rate", "latency_p99", "success_rate"):
            row = cells(table, metric)
            assert row["verdict"] == "?", f"{metric}: the controller's inconclusive, not a breach of the console's own"
        measured = state.history["error_rate"][-1][1]
        assert measured > 0.01 and cells(table, "error_rate")["canary"] == view.table_value("error_rate", measured, True), "what was measured still shows"


def test_the_table_marks_what_the_controller_journaled_and_judges_nothing_itself(plan, monkeypatch):
    """Values the console would judge otherwise, marked as the journal says: a breach of the controller's
    where the value looks fine, inconclusive where it looks bad; a metric no check judged is not passed."""
    monkeypatch.setattr(Check, "holds", lambda *args: pytest.fail("the console judged a metric itself"))
    state = RolloutState()
    state.apply(ev.StageStarted(0.0, stage=0, stage_name="5%", weight=5, observe_s=600.0))
    values = {"error_rate": 0.0002, "latency_p99": 900.0, "success_rate": 0.999, "cpu": 0.3, "latency_p50": 40.0}
    verdicts = {"error_rate": "critical", "latency_p99": "inconclusive", "success_rate": "unmet", "cpu": "pass"}
    metrics = {metric: {"canary": value, "stable": value} for metric, value in values.items()}
    state.apply(ev.SampleTaken(10.0, stage=0, metrics=metrics, requests=20.0, verdict="breach", verdicts=verdicts))

    def marks() -> dict[str, str]:
        return {row.name: row.verdict for row in view.metric_rows(plan, state, {}) if row.name in values}

    assert marks() == {"error_rate": "fail", "latency_p99": "nodata", "success_rate": "warn", "cpu": "pass", "latency_p50": "idle"}
    state.apply(ev.Paused(10.0, reason="no window data for latency_p50", trigger="latency_p50"))
    assert marks()["latency_p50"] == "warn", "the metric a pause names"
    state.apply(ev.RollbackStarted(10.0, reason="5% window failed: cpu mean ...", trigger="cpu"))
    assert marks()["cpu"] == "fail", "the metric a rollback names, a window's failure on its mean among them"


REGRESSED_CANARY = "name: regressed\nseed: 1\nstable: {error_rate: 0.0008, latency_p99_ms: 240, rps: 2000}\ncanary: {error_rate: 0.0028, latency_p99_ms: 245}\n"
"""3.5 times stable's errors, under every limit: the sequential judge rolls it back in the 5% stage."""


def judged_console(plan, tmp_path):
    """A console on a canary the sequential judge rolls back."""
    scenario = tmp_path / "regressed.yaml"
    scenario.write_text(REGRESSED_CANARY)
    return console_app(plan, tmp_path / "state", scenario=str(scenario))


@pytest.mark.parametrize(("sample_plan", "form"), [("canary.yaml", 1), ("minimal.yaml", 0)])
async def test_at_80x24_a_judged_row_shows_the_ratio_to_stable_and_its_mark_the_judges_rollback(tmp_path, sample_plan, form):
    """Beside the flags pane (canary.yaml) the interval alone fits; with the table's whole width (minimal.yaml),
    the ratio and interval after the trend."""
    app = judged_console(load_plan(SAMPLES / sample_plan), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.finished, rounds=2000)
        state = app.controller.state
        assert state.rollback_trigger == "judge:error_rate" and state.last_verdicts["error_rate"] in ("pass", "unmet"), "no limit breached beyond doubt"
        table = app.query_one("#metrics")
        errors = cells(table, "error_rate")
        evidence = state.judge["error_rate"]
        assert errors["verdict"] == "✗", "the judge's rollback names error_rate"
        assert errors["trend"].endswith(evidence.forms()[form]) and evidence.low > 1, f"{errors['trend']!r}: the evidence that rolled it back"
        assert form == 0 or errors["trend"] == evidence.forms()[form], "beside the flags pane the interval takes the whole cell"
        assert table.region.right <= 80 and all(len(line.rstrip()) <= 80 for line in screen_lines(app))
        table.move_cursor(row=table.get_row_index("error_rate"))
        await pilot.pause()
        detail = f"errors: pauses >0.5% ×2 · rolls back >1% · must <1% · judge {evidence.said()} of stable's errors, rolls back once sure >×1.2"
        assert str(app.query_one("#metrics-detail").content) == detail


async def test_at_120x40_a_judged_row_keeps_its_trend_beside_the_ratio(tmp_path):
    app = judged_console(load_plan(SAMPLES / "canary.yaml"), tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, lambda s: s.finished, rounds=2000)
        trend = cells(app.query_one("#metrics"), "error_rate")["trend"]
        spark, _, said = trend.partition(" ")
        assert said == app.controller.state.judge["error_rate"].said() and spark and set(spark) <= set("▁▂▃▄▅▆▇█·"), trend


def screen_lines(app) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def row_with(ratio: tuple[str, ...], label: str = "errors") -> MetricRow:
    return MetricRow("error_rate", label, (0.001, 0.002, 0.001, 0.003), "0.3%", "0.1%", band=(0.0, 0.005), ratio=ratio)


def test_the_trend_cell_gives_a_judged_ratio_the_room_it_needs_first():
    forms = ("×2.8 [1.1–5.8]", "×1.1–5.8", "×2.8")
    wide = trend_cell(row_with(forms), 30, gap=True).plain
    assert wide.endswith(" ×2.8 [1.1–5.8]") and len(wide) == 31 and wide[1:16].strip(" ▁▂▃▄▅▆▇█") == ""
    assert trend_cell(row_with(forms), 13, gap=True).plain == "×2.8 [1.1–5.8]", "no sparkline in 13 cells: the ratio takes the gap after the name"
    assert trend_cell(row_with(forms), 13, gap=False).plain == " ▂▄▂▅ ×1.1–5.8", "a name filling its column leaves no gap: the interval, and the trend"
    assert trend_cell(row_with(forms), 7, gap=True).plain == "×1.1–5.8"
    assert trend_cell(row_with(forms), 4, gap=True).plain == " ×2.8"
    assert trend_cell(row_with(forms), 3, gap=False).plain == " " + sparkline(row_with(()).history, 3, (0.0, 0.005)), "nothing fits: the trend"
    assert trend_cell(row_with(()), 13, gap=True).plain == " " + sparkline(row_with(()).history, 13, (0.0, 0.005)).rjust(13)


def test_a_rollback_or_pause_the_judge_names_marks_its_metric(plan):
    state = RolloutState()
    state.apply(ev.StageStarted(0.0, stage=0, stage_name="5%", weight=5, observe_s=600.0))
    metrics = {"error_rate": {"canary": 0.0028, "stable": 0.0008}}
    state.apply(ev.SampleTaken(10.0, stage=0, metrics=metrics, requests=100.0, verdict="pass", verdicts={"error_rate": "pass"}))
    assert view.row_verdict(state, "error_rate") == "pass"
    state.apply(ev.Paused(10.0, reason="errors ×2.8 [×1.1–×5.8]", trigger="judge:error_rate"))
    assert view.row_verdict(state, "error_rate") == "warn"
    state.apply(ev.RollbackStarted(20.0, reason="errors 0.28% vs 0.08%: ×2.8 [×1.1–×5.8] after 14,000 canary requests", trigger="judge:error_rate"))
    assert view.row_verdict(state, "error_rate") == "fail" and view.row_verdict(state, "latency_p99") == "idle"
