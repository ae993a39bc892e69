"""The chart of a metric reads true: its y axis holds the data and the limits, and the limits are
named in the legend, never written over it; a metric the sequential judge weighs has its ratio to
stable under it, the interval narrowing over the rollout."""

from __future__ import annotations

from console.plan import load_plan
from tests.conftest import SAMPLES
from tests.tui.console_fixtures import console_app, settle
from tests.tui.test_metric_table import judged_console
from widgets.chart_screen import Band, ChartData, ChartScreen, Limit, band_range, y_range


def screen_text(app) -> str:
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


def test_the_y_axis_holds_every_value_and_every_limit():
    data = ChartData("error_rate", "%", (0.1, 0.2), (0.01, 0.03), (0.02, None), (Limit("rolls back >1%", 1.0, "rolls back"),))
    low, high = y_range(data)
    assert low == 0.0 and 1.0 < high < 1.1, "from zero (nothing is negative) to just over the limit"
    spiking = ChartData("error_rate", "%", (0.1, 0.2), (0.01, 3.0), (0.02, 0.02), (Limit("must <1%", 1.0, "must"),))
    assert y_range(spiking)[1] > 3.0, "a value over the limit stays on the chart"
    assert y_range(ChartData("cpu", "%", (), (), ())) is None


async def test_the_limits_are_named_in_the_legend_and_the_data_sits_on_the_axis(tmp_path):
    app = console_app(load_plan(SAMPLES / "canary.yaml"), tmp_path, stop_at=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChartScreen)
        assert [limit.label for limit in app.screen.data.limits] == ["must <1%", "rolls back >1%", "pauses >0.5%"]
        text = screen_text(app)
        for entry in ("canary", "stable", "must <1%", "rolls back >1%", "pauses >0.5%"):
            assert f"⢕⢕ {entry}" in text, f"the legend's {entry!r} is whole"
        assert "1.05┤" in text and "0.00┤" in text, "the axis runs from the data (near 0%) to the highest limit (1%)"


def test_a_ratio_axis_holds_the_bounded_interval_the_ratio_and_the_line_that_acts():
    band = Band((0.5, 1.0, 1.5), (None, 3.0, 2.8), (None, 0.4, 1.1), (None, 9.0, 5.8), 1.2, "rolls back once sure >×1.2")
    low, high = band_range(band)
    assert low == 0.0 and 9.0 < high < 9.5, "an unbounded end is drawn at the edge, not stretched to the grid's top"
    assert band_range(Band((0.5,), (None,), (None,), (None,), 1.2, ""))[1] > 1.2, "nothing bounded yet: the line still shows"


async def test_a_judged_metrics_chart_shows_its_interval_narrowing_against_one_plus_the_tolerance(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    app = judged_console(plan, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.finished, rounds=2000)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChartScreen) and app.screen.data.metric == "error_rate"
        band = app.screen.data.band
        assert band.line == 1 + plan.tolerance and band.line_label == "rolls back once sure >×1.2"
        widths = [high - low for low, high in zip(band.low, band.high) if low is not None and high is not None]
        assert len(widths) >= 2 and widths[-1] < widths[0], "the interval narrows as evidence comes"
        assert band.low[-1] > 1 and band.ratio[-1] > band.line, "it ends above stable, its ratio past 1 + tolerance"
        assert app.screen.query_one("#band").display
        text = screen_text(app)
        assert "canary ÷ stable in its interval · rolls back once sure >×1.2" in text and "error_rate (%) — canary vs stable" in text
        await pilot.press("escape")
        table = app.query_one("#metrics")
        table.move_cursor(row=table.get_row_index("cpu"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.data.band is None and not app.screen.query_one("#band").display, "no ratio weighs cpu: its values alone"
