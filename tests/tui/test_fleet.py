"""The fleet console: its order, its filter, a rollout's console opened and left, and a rollback that names its rollout."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.journal.fleet import read_row
from console.journal.journal import read_events
from console.journal.state import fold
from console.journal.state_dir import RolloutFiles
from console.tui import fleet_app
from console.tui.fleet_app import FleetActions, FleetApp, FleetScreen
from console.tui.rollout_screen import RolloutScreen
from tests.conftest import SAMPLES
from tests.test_snapshots import snapshot_at
from tests.tui.console_fixtures import console_app
from widgets.confirm_screen import ConfirmScreen
from widgets.fleet_table import FleetTable

SIZE = (120, 30)
NOW = datetime.now(UTC)
STAGES = [{"name": "canary", "weight": 5}, {"name": "half", "weight": 50}]


def journal(state_dir: Path, name: str, *events: tuple[str, dict], app: str = "checkout", hours_ago: float = 1.0) -> RolloutFiles:
    """A rollout's journal: rollout_started and its first stage, then `events`, a minute apart from `hours_ago`."""
    start = NOW - timedelta(hours=hours_ago)
    lines = [
        (
            "rollout_started",
            {"rollout": name, "app": app, "image": f"r/{app}:2", "strategy": "canary", "plan": "p.yaml", "stages": STAGES, "planned_s": 600, "actor": "ci"},
        ),
        ("stage_started", {"stage": 0, "stage_name": "canary", "weight": 5, "observe_s": 300}),
        *events,
    ]
    state_dir.mkdir(parents=True, exist_ok=True)
    files = RolloutFiles(state_dir, name)
    with files.journal.open("w") as out:
        for minute, (event, fields) in enumerate(lines):
            line = {"event": event, "t": minute * 60.0, "ts": (start + timedelta(minutes=minute)).isoformat(), **fields}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")  # as the journal writes it
    return files


class Actions:
    """The application's side, recorded: the rollouts opened, the rollbacks sent."""

    def __init__(self, rollout=None):
        self.opened: list[str] = []
        self.rolled_back: list[tuple[str, str]] = []
        self.rollout = rollout

    def open_rollout(self, files):
        self.opened.append(files.name)
        return self.rollout

    def roll_back(self, files, actor):
        self.rolled_back.append((files.name, actor))
        return None

    def fleet(self) -> FleetActions:
        return FleetActions(self.open_rollout, self.roll_back)


def fleet_of(tmp_path: Path) -> list[Path]:
    """Five rollouts in two state dirs, one of each kind, written in an order the fleet does not keep."""
    east, west = tmp_path / "east", tmp_path / "west"
    journal(east, "done-today", ("completed", {}), hours_ago=3)
    journal(east, "running-1", app="search")
    journal(west, "paused-1", ("paused", {"reason": "error_rate over its limit", "trigger": "error_rate"}), ("attached", {"actor": "ana@laptop"}))
    journal(west, "rolling-1", ("rollback_started", {"reason": "latency", "trigger": "latency_p99"}))
    journal(west, "awaiting-1", ("awaiting_promote", {"stage": 0}))
    journal(west, "done-last-week", ("completed", {}), hours_ago=24 * 7)
    return [east, west]


def sample(verdict: str) -> tuple[str, dict]:
    return ("sample", {"stage": 0, "metrics": {"error_rate": {"canary": 0.01, "stable": 0.001}}, "requests": 100.0, "verdict": verdict})


def test_a_row_read_with_only_the_last_sample_is_the_full_fold_s(tmp_path):
    files = journal(tmp_path, "sampled", sample("pass"), sample("warning"), ("paused", {"reason": "held"}), sample("fail"), ("resumed", {}), sample("pass"))
    files.journal.write_bytes(files.journal.read_bytes() + b'{"event":"sample","t":')  # a write cut short by a crash
    row, full = read_row(files), fold(read_events(files.journal))
    assert (row.state.phase, row.state.stage, row.state.weight, row.state.last_verdict) == (full.phase, full.stage, full.weight, full.last_verdict)
    assert row.state.last_verdict == "pass" and row.state.phase == "running" and row.phase_since is not None


def shown(app: FleetApp) -> list[str]:
    return [key.rsplit("/", 1)[1] for key in app.query_one(FleetTable).shown_keys]


async def test_the_fleet_puts_what_needs_a_person_first_and_leaves_out_what_finished_days_ago(tmp_path):
    app = FleetApp(fleet_of(tmp_path), Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert shown(app) == ["rolling-1", "paused-1", "awaiting-1", "running-1", "done-today"]
        table = app.query_one(FleetTable)
        paused = [str(cell) for cell in table.get_row(str(tmp_path / "west" / "paused-1"))]
        assert paused[:5] == ["paused-1", "checkout", "canary", "1 · 5%", "paused"] and paused[-1] == "ana@laptop"


async def test_slash_filters_the_rows(tmp_path):
    app = FleetApp(fleet_of(tmp_path), Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"search", "enter")
        await pilot.pause()
        assert shown(app) == ["running-1"]
        assert "1 of 5 rollouts · filter: search" in str(app.query_one("#fleet-status").content)


class Notified:
    """The fleet's Changed messages, awaited: a row read again because the kernel said its journal was written."""

    def __init__(self) -> None:
        self.journals: list[Path] = []
        self._changed = asyncio.Event()

    def hook(self, message) -> None:
        if isinstance(message, FleetScreen.Changed) and message.journals:
            self.journals += message.journals
            self._changed.set()

    async def of(self, journal: Path) -> None:
        while journal not in self.journals:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), timeout=10)


def append(files: RolloutFiles, event: str, minutes_later: float = 90.0, **fields) -> None:
    """One event more at the end of a journal, as the controller writes it (one line, one write)."""
    line = {"event": event, "t": 1e4, "ts": (NOW - timedelta(hours=1) + timedelta(minutes=minutes_later)).isoformat(), **fields}
    with files.journal.open("a") as out:
        out.write(json.dumps(line, separators=(",", ":")) + "\n")


async def test_a_journal_written_after_the_fleet_opens_moves_its_row_as_the_kernel_says_so(tmp_path):
    state_dirs, notified = fleet_of(tmp_path), Notified()
    app = FleetApp(state_dirs, Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE, message_hook=notified.hook) as pilot:
        await pilot.pause()
        assert app.fleet.live == "live" and "· live" in str(app.query_one("#fleet-status").content)
        append(RolloutFiles(state_dirs[0], "running-1"), "paused", reason="held by hand", minutes_later=-30)
        await notified.of(state_dirs[0] / "running-1.jsonl")
        assert shown(app)[:3] == ["rolling-1", "running-1", "paused-1"], "two paused: the longer paused first"


async def test_a_new_rollout_appears_and_one_that_finishes_moves_down(tmp_path):
    state_dirs, notified = fleet_of(tmp_path), Notified()
    app = FleetApp(state_dirs, Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE, message_hook=notified.hook) as pilot:
        await pilot.pause()
        created = journal(state_dirs[1], "paused-2", ("paused", {"reason": "held"}), hours_ago=5)
        await notified.of(created.journal)
        assert shown(app)[:3] == ["rolling-1", "paused-2", "paused-1"]
        append(RolloutFiles(state_dirs[1], "rolling-1"), "rolled_back", duration_s=42.0)
        await notified.of(state_dirs[1] / "rolling-1.jsonl")
        assert shown(app)[0] == "paused-2" and shown(app)[-2:] == ["done-today", "rolling-1"], "finished: last, the older first"
        notified.journals.clear()
        created.journal.unlink()
        await notified.of(created.journal)
        assert "paused-2" not in shown(app)


async def test_a_journal_written_again_soon_after_is_read_once_the_gap_has_passed(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_app, "READ_GAP_S", 0.3)
    state_dirs, notified = fleet_of(tmp_path), Notified()
    running = RolloutFiles(state_dirs[0], "running-1")
    app = FleetApp(state_dirs, Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE, message_hook=notified.hook) as pilot:
        await pilot.pause()
        name, fields = sample("warning")
        append(running, name, **fields)
        await notified.of(running.journal)
        assert app.query_one(FleetTable).get_row(str(running.journal.with_suffix("")))[6].plain == "warning"
        append(running, "paused", reason="held by hand", minutes_later=-30)
        notified.journals.clear()
        while running.journal not in app.fleet._waiting:  # the kernel's notice taken, the read put off
            await pilot.pause()
        assert "running-1" not in shown(app)[:2]
        await notified.of(running.journal)
        assert shown(app)[:2] == ["rolling-1", "running-1"] and not app.fleet._waiting


async def test_without_file_notifications_the_fleet_rescans_slowly(tmp_path, monkeypatch):
    def no_inotify(directories):
        raise OSError(24, "inotify_init1: Too many open files")

    monkeypatch.setattr(fleet_app, "DirectoryWatch", no_inotify)
    state_dirs = fleet_of(tmp_path)
    app = FleetApp(state_dirs, Actions().fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.fleet.live.startswith(f"rescanned every {fleet_app.RESCAN_S:.0f} s (no file notifications: ")
        append(RolloutFiles(state_dirs[0], "running-1"), "paused", reason="held by hand", minutes_later=-30)
        await pilot.pause()
        assert shown(app)[1] == "paused-1", "nothing reads a journal before the rescan"
        app.fleet.rescan()  # the RESCAN_S timer's call
        assert shown(app)[:3] == ["rolling-1", "running-1", "paused-1"]


def test_a_row_with_a_snapshot_is_the_snapshot_and_the_tail_and_its_phase_began_where_the_journal_says(tmp_path):
    files = journal(tmp_path, "snapped", sample("pass"), ("paused", {"reason": "held"}), sample("fail"), ("resumed", {}), sample("pass"), sample("warning"))
    before = read_row(files)
    snapshot_at(files.journal, 5)  # up to the pause's fail sample
    ignored: list[str] = []
    row, full = read_row(files, ignored.append), fold(read_events(files.journal))
    assert files.snapshot.exists() and ignored == []
    assert (row.state.phase, row.state.last_verdict, row.state.window, row.phase_since) == (full.phase, "warning", full.window, before.phase_since)


async def test_ctrl_r_asks_naming_the_rollout_then_sends_its_rollback(tmp_path):
    actions = Actions()
    app = FleetApp(fleet_of(tmp_path), actions.fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down")  # paused-1
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        said = " ".join(str(widget.render()) for widget in app.screen.query("Static"))
        assert "Roll back paused-1?" in said and "new version serves 5%" in said
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert actions.rolled_back == [("paused-1", "captain@laptop")]


async def test_ctrl_r_answered_no_sends_nothing(tmp_path):
    actions = Actions()
    app = FleetApp(fleet_of(tmp_path), actions.fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r", "n")
        await app.workers.wait_for_complete()
        assert actions.rolled_back == [] and not isinstance(app.screen, ConfirmScreen)


async def test_enter_opens_the_rollout_s_console_and_escape_comes_back(tmp_path):
    from console.plan import load_plan

    rollout = console_app(load_plan(SAMPLES / "canary.yaml"), tmp_path / "console", stop_at=60).rollout
    rollout.detached = True  # as the fleet's are: leaving it leaves its controller supervising
    actions = Actions(rollout)
    app = FleetApp(fleet_of(tmp_path), actions.fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert actions.opened == ["awaiting-1"]
        assert isinstance(app.screen, RolloutScreen) and app.screen.in_fleet
        assert "Fleet" in [binding.description for binding in (b.binding for b in app.screen.active_bindings.values()) if binding.key == "escape"]
        await pilot.press("escape")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "shutdown"])
        await pilot.pause()
        assert app.screen is app.fleet


async def test_q_in_a_rollout_s_console_says_it_quits_brahma_and_does(tmp_path):
    from console.plan import load_plan

    rollout = console_app(load_plan(SAMPLES / "canary.yaml"), tmp_path / "console", stop_at=60).rollout
    rollout.detached = True
    app = FleetApp(fleet_of(tmp_path), Actions(rollout).fleet(), "captain@laptop")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        keys = {binding.key: binding.description for binding in (b.binding for b in app.screen.active_bindings.values())}
        assert keys["q"] == "Quit Brahma" and keys["escape"] == "Fleet"
        await pilot.press("q")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "shutdown"])
        assert app.return_code == 0, "q quit the app, not only the console"
