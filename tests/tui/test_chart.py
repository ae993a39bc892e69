"""The chart of a metric reads true: its y axis holds the data and the limits, and the limits are
named in the legend, never written over it."""

from __future__ import annotations

from console.plan import load_plan
from tests.conftest import SAMPLES
from tests.tui.console_fixtures import console_app, settle
from widgets.chart_screen import ChartData, ChartScreen, Limit, y_range


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
