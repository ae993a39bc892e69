"""The flag editor: on its own (`brahma flags FILE`) and in the console's flags pane."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from textual import events

from console.flags.backends import FileBackend
from console.flags.store import FlagStore
from console.journal import events as ev
from console.journal.journal import Journal, read_events
from console.plan import load_plan
from console.tui.flags_app import FlagEditorApp
from tests.conftest import ROOT, SAMPLES
from tests.tui.console_fixtures import console_app, settle
from widgets.confirm_screen import ConfirmScreen
from widgets.flag_panel import FlagPanel
from widgets.input_screen import InputScreen

FOREIGN = {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a", "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "b", "a"]}}


@pytest.fixture
def flag_file(tmp_path):
    path = tmp_path / "flags.json"
    store = FlagStore(FileBackend(path))
    store.create("new-checkout", actor="setup")
    store.create("dark-mode", actor="setup", new=False)
    document = json.loads(path.read_text())
    document["flags"]["pricing-tier"] = FOREIGN
    path.write_text(json.dumps(document, indent=2))
    return path


async def press_on(pilot, app, flag: str, *keys: str) -> None:
    panel = app.query_one(FlagPanel)
    panel.move_cursor(row=panel.get_row_index(flag))
    await pilot.press(*keys)
    await pilot.pause()


async def drain(pilot, app) -> None:
    flag_workers = [w for w in app.workers if w.group == "flags"]
    if flag_workers:  # an empty list would mean "every worker", the controller's included
        await app.workers.wait_for_complete(flag_workers)
    app.refresh_flags()
    await pilot.pause()


async def test_standalone_editor_changes_are_written_and_journaled(flag_file, tmp_path):
    journal = Journal(tmp_path / "flags.jsonl")
    app = FlagEditorApp(FlagStore(FileBackend(flag_file)), journal, actor="oncall@laptop")
    store = app.flag_store
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press_on(pilot, app, "new-checkout", "t")
        assert isinstance(app.screen, ConfirmScreen), "switching on asks first"
        await pilot.press("enter")
        await drain(pilot, app)
        assert store.get("new-checkout").enabled
        await press_on(pilot, app, "new-checkout", "plus", "plus")
        await drain(pilot, app)
        assert store.get("new-checkout").percentage == 10
        await press_on(pilot, app, "new-checkout", "equals_sign")
        assert isinstance(app.screen, InputScreen)
        await pilot.press(*"30", "enter")  # the current value is selected: typing replaces it
        await drain(pilot, app)
        assert store.get("new-checkout").percentage == 30
        await press_on(pilot, app, "new-checkout", "u")
        await pilot.press(*"alice, bob", "enter")
        await drain(pilot, app)
        assert store.get("new-checkout").allowed_users == ("alice", "bob")
        await press_on(pilot, app, "pricing-tier", "t")
        await drain(pilot, app)
        assert not isinstance(app.screen, ConfirmScreen), "a flag Brahma did not write is read-only"
        await pilot.press("k", "enter")
        await drain(pilot, app)
        assert not store.get("new-checkout").enabled, "the kill switch turns off flags marked new"
        await pilot.press("slash", *"dark", "enter")
        await pilot.pause()
        assert app.query_one(FlagPanel).row_count == 1
    journal.close()
    changes = [e for e in read_events(tmp_path / "flags.jsonl") if isinstance(e, ev.FlagChanged)]
    assert [c.actor for c in changes] == ["oncall@laptop"] * 7  # on, +5, +5, 30%, alice, bob, kill
    assert changes[0].old["enabled"] is False and changes[0].new["enabled"] is True
    assert json.loads(flag_file.read_text())["flags"]["pricing-tier"] == FOREIGN, "never destroyed"


async def test_a_read_only_flag_file_is_refused_with_a_notice_and_nothing_journaled(flag_file, tmp_path, monkeypatch):
    flag_file.chmod(0o444)
    journal = Journal(tmp_path / "flags.jsonl")
    app = FlagEditorApp(FlagStore(FileBackend(flag_file)), journal, actor="oncall@laptop")
    notices = []
    async with app.run_test(size=(80, 24)) as pilot:
        monkeypatch.setattr(app, "notify", lambda message, **details: notices.append((details.get("title"), message)))
        await pilot.pause()
        await press_on(pilot, app, "new-checkout", "plus")
        await drain(pilot, app)
    journal.close()
    assert notices == [
        (
            "new-checkout +5%: not changed",
            f"{flag_file}: read-only (mode 0444, owner uid {flag_file.stat().st_uid}): not changed (make it writable to change its flags)",
        )
    ]
    assert not [e for e in read_events(tmp_path / "flags.jsonl") if isinstance(e, ev.FlagChanged)]


async def test_console_flags_pane_edits_and_journals(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        app.query_one(FlagPanel).focus()
        await press_on(pilot, app, "new-checkout-flow", "t", "enter")
        await drain(pilot, app)
        assert app.rollout.flags.store.get("new-checkout-flow").enabled
        assert app.controller.state.phase == "running", "space and the pause key stay the rollout's"
    changes = [e for e in read_events(tmp_path / f"{plan.name}.jsonl") if isinstance(e, ev.FlagChanged)]
    assert changes[-1].actor == "captain@laptop" and changes[-1].new["enabled"] is True


BURST = (("equals_sign", "="), ("backspace", None), ("3", "3"), ("0", "0"), ("enter", "\r"))
"""`= BSpace 3 0 Enter` as a terminal delivers it when typed fast (or sent by one tmux send-keys): all at once."""


async def test_percentage_typed_in_one_burst_is_set_whole(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    app = console_app(plan, tmp_path, stop_at=300)
    store = None
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        store = app.rollout.flags.store
        store.set_percentage("new-checkout-flow", 40, actor="ops")
        app.refresh_flags()
        app.query_one(FlagPanel).focus()
        await pilot.pause()
        for key, character in BURST:  # no pause between them: the app has not opened the input yet
            app.post_message(events.Key(key, character))
        await settle(pilot, app)
        await drain(pilot, app)
        assert not isinstance(app.screen, (InputScreen, ConfirmScreen)), "Enter submitted the input; it toggled nothing"
        assert store.get("new-checkout-flow").percentage == 30, "the backspace took the selected 40, then 30 was typed"
        assert store.get("new-checkout-flow").enabled is False


async def test_steps_typed_in_one_burst_add_up(tmp_path):
    plan = load_plan(SAMPLES / "canary.yaml")
    app = console_app(plan, tmp_path, stop_at=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, lambda s: s.last_sample_t == 300)
        app.query_one(FlagPanel).focus()
        await pilot.pause()
        for _ in range(3):  # before the first write lands: every row still says 0%
            app.post_message(events.Key("plus", "+"))
        await settle(pilot, app)
        await drain(pilot, app)
        assert app.rollout.flags.store.get("new-checkout-flow").percentage == 15


def test_cli_verbs_journal_their_changes(flag_file, tmp_path):
    state_dir = tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "console.app", "flags", "--state-dir", str(state_dir), str(flag_file), "set", "new-checkout", "25"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    changes = [e for e in read_events(state_dir / "flags.jsonl") if isinstance(e, ev.FlagChanged)]
    assert len(changes) == 1 and changes[0].new["percentage"] == 25
