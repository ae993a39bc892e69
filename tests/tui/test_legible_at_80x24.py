"""What must read at 80x24 (and what the extra room goes to at 120x40): the image tag whole, every
pre-flight item's name, each flag's percentage."""

from __future__ import annotations

import pytest
from textual.widgets._header import HeaderTitle

from console.plan import load_plan
from console.tui import view
from tests.conftest import SAMPLES, plan_from
from tests.tui.console_fixtures import console_app, settle

LONG_GATE = """app: checkout
image: registry.example.com/checkout:2.4.1
preflight:
  - {name: security scan has no critical findings, kind: command, argv: ['true']}
  - {name: migrations tested on a copy of production, kind: command, argv: ['true']}
  - {name: on-call engineer notified, kind: manual}
  - {name: rollback plan documented, kind: manual, required: false}
  - {name: staging validated, kind: manual}
  - {name: code review approved, kind: manual}
  - {name: alert rules for checkout are loaded, kind: manual}
  - {name: no checkout alert is firing, kind: manual}
  - {name: cluster ready with room for the canary, kind: manual}
  - {name: infrastructure code matches the cluster, kind: manual}
"""


def test_the_image_loses_its_registry_host_before_its_tag():
    image = "registry.example.com/team/checkout:2.4.1"
    assert view.image_forms(image) == [image, "…/team/checkout:2.4.1", "…/checkout:2.4.1", "checkout:2.4.1"]
    assert view.subtitle("canary", image, 29) == "canary · …/checkout:2.4.1"
    assert view.subtitle("canary", image, 16, read_only=True) == "checkout:2.4.1", "the tag wins over everything"
    assert view.subtitle("canary", "checkout:2.4.1", 80) == "canary · checkout:2.4.1"


@pytest.mark.parametrize("width", [80, 60])
async def test_the_header_shows_the_image_tag_whole(tmp_path, width):
    app = console_app(load_plan(SAMPLES / "canary.yaml"), tmp_path, stop_at=60)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 60)
        shown = app.query_one(HeaderTitle)
        text = f"{app.title} — {app.sub_title}"
        assert app.sub_title.endswith("checkout:2.4.1") and len(text) <= shown.region.width, text
        if width == 80:
            assert app.sub_title == "canary · …/checkout:2.4.1"


async def test_a_pre_flight_item_too_long_for_its_row_is_said_in_full_when_highlighted(tmp_path):
    app = console_app(plan_from(LONG_GATE), tmp_path, stop_at=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: len(s.preflight) == 10)
        checklist = app.query_one("#checklist")
        checklist.focus()
        await pilot.press("down")
        await pilot.pause()
        assert str(app.query_one("#checklist-detail").content).startswith("migrations tested on a copy of production: passed")
        assert sum(column.width for column in checklist.columns.values()) <= checklist.scrollable_content_region.width, (
            "the state marks and times are never cut off"
        )


async def test_at_120x40_every_pre_flight_item_and_metric_shows_with_no_blank_rows(tmp_path):
    app = console_app(plan_from(LONG_GATE), tmp_path, stop_at=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, lambda s: len(s.preflight) == 10)
        checklist, metrics = app.query_one("#checklist"), app.query_one("#metrics")
        assert checklist.region.height == checklist.row_count == 10, "every item, each on its row"
        assert metrics.region.height == metrics.row_count + 1, "the rows and the header, nothing blank"
        assert app.query_one("#log").region.height > 5, "the rest goes to the log"


async def test_the_flags_pane_shows_each_flags_percentage(tmp_path):
    app = console_app(load_plan(SAMPLES / "canary.yaml"), tmp_path, stop_at=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 60)
        app.rollout.flags.store.enable("new-checkout-flow", actor="ops")
        app.rollout.flags.store.set_percentage("new-checkout-flow", 40, actor="ops")
        app.refresh_flags()
        await pilot.pause()
        panel = app.query_one("#flags")
        assert str(panel.get_cell("new-checkout-flow", "state")).strip() == "ON 40%"
        assert sum(column.width for column in panel.columns.values()) <= panel.scrollable_content_region.width, "nothing cut off"
        assert str(app.query_one("#flags-detail").content) == "new-checkout-flow: on, 40% · new (the kill switch)"
