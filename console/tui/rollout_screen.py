"""The console of one rollout: gate, stages, live metrics, flags, the event log, and the big rollback key.

A screen, so that the single-rollout app (app.py) and the fleet (fleet_app.py) host the same console.

The controller is followed by a worker: a detached controller over its socket (`brahma run`,
`brahma attach`), or one in this app's event loop (`brahma demo`, the tests). It reports through
events, which the app turns into widget data (view.py) at most a few times a second, so a fast
simulator or a 1 s sample interval never floods a slow SSH link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from console.actor import current_actor
from console.controller.handle import ConnectedHandle, ControllerHandle, JournalingHandle
from console.journal import events as ev
from console.journal.state import Phase
from console.narrate import describe, rollout_clock, spans_days
from console.samples import TrackValues
from console.tui import view
from console.tui.commands import RolloutCommands
from console.tui.flag_editing import FlagEditing, flag_rows
from console.tui.terminal_watch import watch_terminal
from widgets.confirm_screen import ConfirmScreen
from widgets.rollback_bar import RollbackBar
from widgets.stage_track import StageTrack

# The panes' widgets (and the DataTable they are built on) are no part of the first frame: they are imported
# where they are used, once the panes are mounted (mount_panes) or a screen of theirs is opened.
if TYPE_CHECKING:
    from textual.widgets import RichLog
    from textual.worker import Worker

    from console.rollout import Rollout
    from widgets.assessment_panel import AssessmentPanel
    from widgets.checklist import Checklist
    from widgets.keyed_table import KeyedTable
    from widgets.metric_table import MetricTable

HEADER_SIDES = 18
"""Cells of the header that are not its title: Textual's icon (8) and clock space (10)."""
REFRESH_S = 0.25
"""How often the panes are redrawn at most: events between two redraws are coalesced."""
ACTING = {"rollback", "promote", "promote_full", "pause", "resume", "sign_off", "kill_flags", "inject"}
LOG_STYLES = {
    ev.RollbackStarted: "bold red",
    ev.RollbackFailed: "bold red",
    ev.RolledBack: "bold red",
    ev.Paused: "yellow",
    ev.Completed: "bold green",
    ev.PreflightFailed: "bold red",
    ev.ErrorRaised: "red",
}
FAULTS = {
    "error": ("an error spike (3% errors)", {"error_rate": 0.03}),
    "latency": ("a latency spike (p99 700ms)", {"latency_p99_ms": 700}),
    "no_data": ("a metrics outage (no data)", {"no_data": True}),
    "heal": ("a healthy canary again", {"error_rate": 0.0001, "latency_p99_ms": 245, "no_data": False}),
}


CONSOLE_BINDINGS = [
    Binding("ctrl+r", "rollback", "Roll back", id="rollout.rollback", priority=True, tooltip="Traffic back to stable (asks first)"),
    Binding("p", "promote", "Promote", id="rollout.promote", tooltip="The next stage now"),
    Binding("P", "promote_full", "Promote to 100%", id="rollout.promote_full", key_display="P", show=False, tooltip="Straight to the last stage"),
    # One key, two bindings: the footer says what space does now (check_action shows one of them).
    Binding("space", "pause", "Pause", id="rollout.pause", tooltip="Hold the rollout where it is"),
    Binding("space", "resume", "Resume", id="rollout.resume", tooltip="Go on: the stage's window starts again"),
    Binding("s", "sign_off", "Sign off", id="preflight.sign_off", show=False),
    Binding("k", "kill_flags", "Kill flags", id="flags.kill", show=False, tooltip="Switch off every new flag of the plan (asks first)"),
    Binding("question_mark", "keys", "Keys", id="app.keys", key_display="?"),
    Binding("q", "quit_console", "Quit", id="app.quit"),
    Binding("e", "inject('error')", "Inject errors", id="demo.error_spike", show=False),
    Binding("l", "inject('latency')", "Inject latency", id="demo.latency", show=False),
    Binding("n", "inject('no_data')", "Inject no data", id="demo.no_data", show=False),
    Binding("h", "inject('heal')", "Heal canary", id="demo.heal", show=False),
]
"""The console's keys. Its host app holds them (ConsoleKeys), so that they work over the screens the console opens,
ctrl+r from a chart above all."""
CONSOLE_ACTIONS = {binding.action.partition("(")[0] for binding in CONSOLE_BINDINGS}


class RolloutScreen(FlagEditing, Screen[None]):
    """One rollout, supervised from the keyboard. Its host is told the rollout's phase once the console has left it (`leave`)."""

    COMMANDS = {RolloutCommands}

    BINDINGS = [Binding("escape", "back", "Fleet", id="fleet.back", tooltip="Back to every rollout (its controller goes on supervising)")]

    def __init__(
        self,
        rollout: Rollout,
        leave: Callable[[Phase], None],
        *,
        read_only: bool = False,
        demo: bool = False,
        actor: str | None = None,
        in_fleet: bool = False,
    ):
        super().__init__()
        self.leave = leave
        """What the host does once the console has done its own leaving: the single-rollout app exits with the phase."""
        self.in_fleet = in_fleet
        """Opened from the fleet, which Escape goes back to."""
        self.rollout = rollout
        self.controller: ControllerHandle = rollout.controller
        self.plan = rollout.controller.plan
        self.detached = rollout.detached
        """The controller lives in its own process: quitting the console leaves it supervising."""
        self.read_only = read_only
        self.actor = actor or current_actor()
        self.sim_metrics = None
        """The demo's simulated canary, which the fault keys change."""
        if demo:
            from console.sim.metrics import SimMetricSource

            self.sim_metrics = self.controller.metrics if isinstance(self.controller.metrics, SimMetricSource) else None
        self._dirty = True
        self._phase = ""
        self._last_seen: dict[str, datetime] = {}
        self._acting_keys: dict[str, str] = {}
        """Binding id → key, for the keys the status line offers."""
        self.keymap: dict[str, str] = {}
        """Binding id → keys, the overrides make_app applied (the rollback bar and status line name them)."""
        self._panes_asked = False
        self._panes: tuple[Horizontal, RichLog] | None = None
        """The panes under the track, once mounted (mount_panes)."""
        self._early_lines: list[Text] = []
        """Event log lines from before the log was mounted."""
        self._leaving = False
        """The terminal is gone and the console is on its way out."""
        self.assessing: Worker[None] | None = None
        """The think step heading the pre-flight pane, being made (assess_release) once the panes are mounted."""
        self.title = f"Brahma · {self.plan.name}"
        self._fit_subtitle(80)

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The first frame is the track and the state; the panes under them (tables, the log) are mounted once
        # it shows (mount_panes), so that the console opens as soon as it knows where the rollout is.
        yield Header(show_clock=False, icon="⟲")
        yield StageTrack(id="track")
        yield RollbackBar(id="rollback")
        yield Footer(compact=True)

    async def mount_panes(self) -> None:
        """The metrics, pre-flight and flags panes and the event log, between the track and the rollback bar."""
        base = self.query_one(RollbackBar).parent  # the console's own screen, whatever is shown over it
        if self._panes_asked or base is None or not base.is_attached:
            return  # mounted already, or the console is closing
        self._panes_asked = True
        from widgets.assessment_panel import AssessmentPanel
        from widgets.checklist import Checklist
        from widgets.flag_panel import FlagPanel
        from widgets.metric_table import MetricTable

        metrics = Vertical(MetricTable(id="metrics"), Static(id="metrics-detail", classes="detail", markup=False), id="metrics-pane")
        metrics.border_title = "Metrics · canary vs stable"
        checklist = (Checklist(id="checklist"), Static(id="checklist-detail", classes="detail", markup=False))
        preflight = Vertical(AssessmentPanel(id="assessment"), *checklist, id="preflight-pane")
        preflight.border_title = "Pre-flight"
        flags = Vertical(FlagPanel(id="flags"), Static(id="flags-detail", classes="detail", markup=False), id="flags-pane")
        flags.border_title = "Flags"
        # Panes the plan has nothing for are left out; the metrics take their room.
        preflight.display = bool(self.plan.preflight)
        flags.display = self.rollout.flags is not None
        side = Vertical(preflight, flags, id="side")
        side.display = bool(self.plan.preflight) or self.rollout.flags is not None
        from textual.widgets import RichLog  # with rich.pretty and attrs: the log is no part of the first frame

        log = RichLog(id="log", max_lines=500, wrap=False, markup=False, auto_scroll=True)
        log.border_title = "Events"
        middle = Horizontal(metrics, side, id="middle")
        await base.mount(middle, log, before=self.query_one(RollbackBar))
        self._panes = (middle, log)
        for line in self._early_lines:
            log.write(line)
        self._early_lines.clear()
        self.refresh_view()
        self.refresh_flags()
        self._highlight_the_cause(self.controller.state)
        self.query_one(MetricTable).focus()
        if self.plan.preflight:
            self.assessing = self.assess_release()

    @work(exit_on_error=False, group="assessment")
    async def assess_release(self) -> None:
        """`brahma assess` for this release, past its first frame and off the event loop (it reads the app's past journals)."""
        from console.history.think_step import console_assessment
        from widgets.assessment_panel import AssessmentPanel

        risk, lines = await asyncio.to_thread(console_assessment, self.plan, self.controller.state_dir)
        self.query_one(AssessmentPanel).show(risk, lines)

    def on_assessment_panel_opened(self, message: AssessmentPanel.Opened) -> None:
        from widgets.text_screen import TextScreen

        self.app.push_screen(TextScreen(f"Think step: {self.plan.name}", "\n".join(message.lines)))

    def on_mount(self) -> None:
        self._acting_keys = {} if self.read_only else {b: self._key_for(b) for b in ("rollout.resume", "rollout.promote", "rollout.rollback")}
        bar = self.query_one(RollbackBar)
        bar.key = self._key_for("rollout.rollback")
        if self.read_only:
            bar.phase = "read_only"
        self.controller.subscribe(self._on_controller_event)
        if isinstance(self.controller, ConnectedHandle):
            self.controller.on_notice(self._on_connection_notice)
        self.run_controller()
        self.set_interval(REFRESH_S, self._refresh_if_dirty)
        watch_terminal(self.app, self.terminal_gone)
        self.refresh_view()

    def terminal_gone(self, why: str) -> None:
        """Nobody can see this console: a detached controller is only left (it goes on supervising); the
        controller in here stops with it, saying so in its journal, and the report is written."""
        if self._leaving:
            return
        self._leaving = True
        state = self.controller.state
        if isinstance(self.controller, JournalingHandle) and state.started and not state.finished:
            self.controller.emit(
                ev.ErrorRaised(
                    self.controller.now(),
                    where="console",
                    message=(
                        f"the console's terminal is gone ({why}): the controller inside it stops with it and traffic stays where it "
                        "is; run the same command again to resume from the journal"
                    ),
                )
            )
        self.shut_down()

    def on_resize(self, event: events.Resize) -> None:
        self._fit_subtitle(event.size.width)

    def _fit_subtitle(self, width: int) -> None:
        room = width - HEADER_SIDES - len(self.title) - len(" — ")
        self.sub_title = view.subtitle(self.plan.strategy, self.plan.image, room, self.read_only)

    def _key_for(self, binding_id: str) -> str:
        """The key a binding answers to, as the keymap moved it."""
        if binding_id in self.keymap:
            return self.keymap[binding_id].split(",")[0].strip()
        for binding in CONSOLE_BINDINGS:
            if binding.id == binding_id:
                return binding.key
        return "?"

    # -- the controller --------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="controller")
    async def run_controller(self) -> None:
        await self.controller.run()

    def _on_controller_event(self, event: ev.Event) -> None:
        self._dirty = True
        if isinstance(event, ev.SampleTaken):
            now = datetime.now()
            for metric, values in event.metrics.items():
                if values.get("canary") is not None:
                    self._last_seen[metric] = now
            return
        # This console's own coming and going (and its session with a controller that died) the connection's notices tell.
        line = None if isinstance(event, ev.ConsoleEvent) and event.actor == self.actor else describe(event)
        if line is not None:
            self.log_line(Text(f"{self._clock(event.t):>6} {line}", style=LOG_STYLES.get(type(event), "")))
        if isinstance(event, ev.FlagChanged):
            self.refresh_flags()
        if self.controller.state.phase != self._phase:
            # A change of phase (a rollback above all) is shown at once, not at the next tick.
            self.refresh_view()

    def _on_connection_notice(self, line: str) -> None:
        self.log_line(Text(f"{self._clock(self.controller.now()):>6} {line}", style="cyan"))

    def _clock(self, t: float) -> str:
        """The log's clock: in days for a rollout planned over a day, as the headless timeline's."""
        return rollout_clock(t, spans_days(self.plan.planned_duration))

    def log_line(self, text: Text) -> None:
        if self._panes is None:
            self._early_lines.append(text)
            return
        self._panes[1].write(text)

    def _refresh_if_dirty(self) -> None:
        if self._dirty:
            self.refresh_view()

    def refresh_view(self) -> None:
        """Every pane from the controller's state."""
        self._dirty = False
        state = self.controller.state
        self.query_one(StageTrack).track = view.stage_track(self.plan, state, self.controller.now(), self._acting_keys)
        self._refresh_bar(state)
        if self._panes is not None:
            self._refresh_panes(state)
        elif state.started:  # the first frame shows where the rollout is: the panes follow it
            self.call_after_refresh(self.mount_panes)
        if state.phase != self._phase:
            self._phase = state.phase
            self.refresh_bindings()
            self._highlight_the_cause(state)

    def _refresh_panes(self, state) -> None:
        from widgets.chart_screen import ChartScreen
        from widgets.checklist import Checklist
        from widgets.metric_table import MetricTable

        self.query_one(MetricTable).show(view.metric_rows(self.plan, state, self._last_seen))
        self._show_detail(self.query_one(MetricTable))
        status = view.source_status(self.plan, state, self._last_seen)
        pane = self.query_one("#metrics-pane")
        if pane.border_subtitle != status:  # setting it repaints the whole pane
            pane.border_subtitle = status
        self.query_one(Checklist).show(view.checklist(self.plan, state))
        self._show_detail(self.query_one(Checklist))
        if isinstance(self.app.screen, ChartScreen):
            self.app.screen.draw(view.chart_data(self.plan, state, self.app.screen.data.metric))

    def _refresh_bar(self, state) -> None:
        if self.read_only:
            return
        bar = self.query_one(RollbackBar)
        bar.phase = (
            "unverified"
            if state.rollback_failure
            else {Phase.ROLLING_BACK: "rolling_back", Phase.ROLLED_BACK: "rolled_back", Phase.GATE_FAILED: "idle"}.get(state.phase, "ready")
        )
        bar.detail = self._bar_detail()

    def _highlight_the_cause(self, state) -> None:
        """The metric a pause or rollback is about gets the cursor, scrolled into view (a tall status
        line leaves a short table), once, as it happens: the operator's own moves are never fought."""
        cause = {Phase.PAUSED: state.paused_trigger, Phase.ROLLING_BACK: state.rollback_trigger}.get(state.phase)
        if self._panes is None:
            return  # mount_panes highlights it
        from widgets.metric_table import MetricTable

        table = self.query_one(MetricTable)
        if cause and cause in table.rows:
            table.move_cursor(row=table.get_row_index(cause))

    def _show_detail(self, table: KeyedTable) -> None:
        """The highlighted row in full on the line under its table: a metric's every limit, a
        pre-flight item's whole name and result, a flag's state."""
        line = self.query_one(f"#{table.id}-detail", Static)
        detail = table.highlighted_detail
        if str(line.content) != detail:
            line.update(detail)

    def on_data_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        from widgets.keyed_table import KeyedTable

        if isinstance(event.data_table, KeyedTable):
            self._show_detail(event.data_table)

    def _bar_detail(self) -> str:
        state = self.controller.state
        if state.phase == Phase.ROLLED_BACK and state.rollback_duration_s is not None:
            return f"stable serves 100% · took {state.rollback_duration_s:.3f}s"
        if state.phase == Phase.COMPLETED:
            return "undo the release"
        if state.active:
            return f"new {state.weight}% → 0%"
        return ""

    @property
    def flag_store(self):
        return self.rollout.flags.store if self.rollout.flags else None

    def refresh_flags(self) -> None:
        if self.rollout.flags is not None and self._panes is not None:
            from widgets.flag_panel import FlagPanel

            self.query_one(FlagPanel).show(flag_rows(self.rollout.flags.flags()))
            self._show_detail(self.query_one(FlagPanel))

    def record_flag_changes(self, changes) -> None:
        self.controller.record_flag_changes(changes)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self.in_fleet
        if action in ACTING and self.read_only:
            return False
        state = self.controller.state
        if action == "inject":
            return self.sim_metrics is not None
        if state.finished and action in ("promote", "promote_full", "pause"):
            return False  # nothing left to promote or hold: the footer stops offering it
        if action in ("promote", "promote_full"):
            return True if state.active else None
        if action == "pause":
            return True if state.phase in (Phase.RUNNING, Phase.AWAITING_PROMOTE) else (False if state.phase == Phase.PAUSED else None)
        if action == "resume":
            return state.phase == Phase.PAUSED
        if action == "sign_off":
            return True if any(item.status == "waiting" for item in state.preflight.values()) else None
        if action == "kill_flags":
            return True if self.rollout.flags is not None else False
        return True

    def submit(self, command: str, argument: str = "") -> None:
        self.controller.submit(command, self.actor, argument)

    def action_rollback(self) -> None:
        state = self.controller.state
        if isinstance(self.app.screen, ConfirmScreen):
            return
        if state.phase == Phase.ROLLING_BACK:
            self.submit("rollback")  # the rollback is open: its next attempt now, no question asked
            self.notify("Trying the rollback again now.", title="Roll back")
            return
        if state.phase in (Phase.ROLLED_BACK, Phase.GATE_FAILED):
            self.notify("Nothing to roll back: stable already serves all traffic.", title="Roll back")
            return
        self.app.push_screen(
            ConfirmScreen(f"Roll back {self.plan.name}?", self._rollback_consequences(), "Roll back (Enter / y)"),
            lambda confirmed: self.submit("rollback") if confirmed else None,
        )

    def _rollback_consequences(self) -> str:
        state = self.controller.state
        flags = [f.name for f in self.plan.flags if f.disable_on_rollback]
        flag_text = f" Flags switched off: {', '.join(flags)}." if flags else ""
        if state.phase.before_first_change:
            return "Nothing has changed yet: this stops the release before its first change."
        if state.phase == Phase.COMPLETED:
            return f"The release is complete: this undoes it and stable ({self.plan.strategy}) serves 100% again.{flag_text}"
        return f"The new version serves {state.weight}% of traffic. All of it goes back to stable now.{flag_text}"

    def action_promote(self) -> None:
        self._promote("promote", full=False)

    def action_promote_full(self) -> None:
        self._promote("promote-full", full=True)

    def _promote(self, command: str, *, full: bool) -> None:
        """Sent at once after a window held; otherwise asked first, saying what it cuts short and skips."""
        if isinstance(self.app.screen, ConfirmScreen):
            return
        question = view.promote_question(self.plan, self.controller.state, self.controller.now(), full=full)
        if question is None:
            self.submit(command)
            return
        title, body = question
        asked_at = self.controller.state.stage

        def answered(confirmed: bool) -> None:
            if not confirmed:
                return
            state = self.controller.state
            if state.stage != asked_at or not state.active:  # the question no longer holds: promote nothing
                self.notify(f"The rollout moved on while you were asked ({view.state_line(state)[0]}): nothing was promoted.", title="Promote")
                return
            self.submit(command)

        self.app.push_screen(ConfirmScreen(title, body, "Promote (Enter / y)"), answered)

    def action_pause(self) -> None:
        self.submit("pause")

    def action_resume(self) -> None:
        self.submit("resume")

    def action_sign_off(self) -> None:
        waiting = [name for name, item in self.controller.state.preflight.items() if item.status == "waiting"]
        from widgets.checklist import Checklist

        highlighted = self.query_one(Checklist).highlighted_key if self._panes is not None else None
        item = highlighted if highlighted in waiting else (waiting[0] if waiting else None)
        if item is not None:
            self.submit("sign-off", item)

    def on_checklist_sign_off_requested(self, message: Checklist.SignOffRequested) -> None:
        """`s` on a row of the checklist: a manual item waiting is signed off; any other row says why not."""
        if self.read_only:
            return
        spec = next((item for item in self.plan.preflight if item.name == message.item), None)
        result = self.controller.state.preflight.get(message.item)
        if spec is None:
            return
        if spec.kind != "manual":
            self.notify(f"'{spec.name}' is a {spec.kind} check: it passes by itself; only manual items are signed off.", title="Sign off")
        elif result is not None and result.status == "pass":
            self.notify(f"'{spec.name}' is already signed off by {result.by}.", title="Sign off")
        elif result is None or result.status != "waiting" or self.controller.state.preflight_done or self.controller.state.finished:
            over = " (the gate is over)" if self.controller.state.preflight_done or self.controller.state.finished else ""
            self.notify(f"'{spec.name}' is not waiting for a sign-off{over}.", title="Sign off")
        else:
            self.submit("sign-off", spec.name)

    def on_checklist_output_requested(self, message: Checklist.OutputRequested) -> None:
        from widgets.text_screen import TextScreen

        item = message.item
        self.app.push_screen(TextScreen(f"{item.name}: {item.state}", item.output or "(no output yet)"))

    def on_metric_table_chart_requested(self, message: MetricTable.ChartRequested) -> None:
        from widgets.chart_screen import ChartScreen

        self.app.push_screen(ChartScreen(view.chart_data(self.plan, self.controller.state, message.metric)))
        self.backfill_chart(message.metric)

    @work(exclusive=True, exit_on_error=False, group="chart")
    async def backfill_chart(self, metric: str) -> None:
        """Earlier values from the source's history (Prometheus keeps them; the simulator does not)."""
        state = self.controller.state
        start = state.stage_started_t if state.stage >= 0 else 0.0
        points = await self.controller.metrics.history(metric, start, self.controller.now(), self.plan.interval)
        from widgets.chart_screen import ChartScreen

        if points and isinstance(self.app.screen, ChartScreen) and self.app.screen.data.metric == metric:
            backfill = [(p.t, TrackValues(p.canary, p.stable)) for p in points]
            self.app.screen.draw(view.chart_data(self.plan, state, metric, backfill))

    def on_rollback_bar_pressed(self) -> None:
        self.action_rollback()

    def action_kill_flags(self) -> None:
        names = [f.name for f in self.plan.flags if f.new]
        self.app.push_screen(
            ConfirmScreen(
                "Kill switch", f"Switch off every new flag of this release: {', '.join(names)}. Apps see it within a second.", "Switch off (Enter / y)"
            ),
            lambda confirmed: self.call_later(self.kill_flags) if confirmed else None,
        )

    async def kill_flags(self) -> None:
        flags = self.rollout.flags
        if flags is None:
            return
        try:
            self.controller.record_flag_changes(await flags.kill(self.actor))
        except Exception as error:  # a flag file in a bad state is shown, never fatal to the console
            self.notify(str(error), title="Kill switch failed", severity="error", timeout=20)
        self.refresh_flags()

    def action_inject(self, fault: str) -> None:
        assert self.sim_metrics is not None
        label, values = FAULTS[fault]
        self.sim_metrics.inject(self.controller.now(), "canary", **values)
        self.log_line(Text(f"{self._clock(self.controller.now()):>6} demo: injected {label} into the canary", style="magenta"))

    def action_keys(self) -> None:
        keys = [(b.key_display or self.app.get_key_display(b), b.description or b.action) for b in self._all_bindings()]
        keys.append(("ctrl+p", "Command palette: every action by name"))
        from widgets.keys_screen import KeysScreen

        self.app.push_screen(KeysScreen(keys))

    def _all_bindings(self) -> list[Binding]:
        seen, bindings = set(), []
        for active in self.active_bindings.values():
            binding = active.binding
            if binding.id in seen or not active.enabled or binding.system:
                continue
            seen.add(binding.id)
            bindings.append(binding)
        return bindings

    def action_quit_console(self) -> None:
        """q: in the fleet too, the whole app quits (Escape is the key back to the fleet)."""
        self._leave_console(exit_app=self.in_fleet)

    def action_back(self) -> None:
        self._leave_console(exit_app=False)

    def _leave_console(self, exit_app: bool) -> None:
        state = self.controller.state
        if state.finished or not state.started or self.detached:
            self.shut_down(exit_app)
            return
        if state.phase == Phase.ROLLING_BACK:
            body = (
                "The rollback is not verified on the target yet. The controller runs inside this console: when it "
                "quits, nobody tries the rollback again and the new version may still serve traffic. "
                "Run the same `brahma run` again to go on with the rollback."
            )
        else:
            where = f"stage {state.stage + 1} ({state.weight}% on the new version)" if state.stage >= 0 else "the pre-flight gate"
            body = (
                f"The rollout is at {where}. The controller runs inside this console: when it quits, nobody samples "
                "the metrics and no automatic rollback can happen. Traffic stays where it is. "
                "Run the same `brahma run` again to resume from the journal."
            )
        self.app.push_screen(
            ConfirmScreen("Quit while the rollout runs?", body, "Quit (Enter / y)", "Stay (n)"), lambda ok: self.shut_down(exit_app) if ok else None
        )

    @work(exclusive=True, group="shutdown")
    async def shut_down(self, exit_app: bool = False) -> None:
        """Detach from a detached controller; or stop the one in here, close the journal and clients, write the report."""
        self.controller.stop()
        following = [w for w in self.workers if w.group == "controller"]
        if self.detached:
            for worker in following:
                worker.cancel()  # it may be waiting to restart a controller: nothing to finish
        else:
            from console.rollout import close_rollout

            await self.workers.wait_for_complete(following)
            await close_rollout(self.rollout)
        self.leave(self.controller.state.phase)
        if exit_app:  # the host's leave went back to the fleet: the app goes on to quit
            self.app.exit()


class ConsoleKeys:
    """Mixed into an App that hosts rollout consoles, with `BINDINGS = CONSOLE_BINDINGS`: the console's keys are the
    app's, so that they work over the screens the console opens, as they did when the console was the app; each
    goes to the console nearest the top of the screen stack, and none is offered while no console is open."""

    screen_stack: list[Screen]

    def console_in_front(self) -> RolloutScreen | None:
        return next((screen for screen in reversed(self.screen_stack) if isinstance(screen, RolloutScreen)), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in CONSOLE_ACTIONS:
            return True
        console = self.console_in_front()
        return console.check_action(action, parameters) if console is not None else False

    def _console(self) -> RolloutScreen:
        console = self.console_in_front()
        assert console is not None, "check_action offers a console's keys only while one is open"
        return console

    def action_rollback(self) -> None:
        self._console().action_rollback()

    def action_promote(self) -> None:
        self._console().action_promote()

    def action_promote_full(self) -> None:
        self._console().action_promote_full()

    def action_pause(self) -> None:
        self._console().action_pause()

    def action_resume(self) -> None:
        self._console().action_resume()

    def action_sign_off(self) -> None:
        self._console().action_sign_off()

    def action_kill_flags(self) -> None:
        self._console().action_kill_flags()

    def action_keys(self) -> None:
        self._console().action_keys()

    def action_quit_console(self) -> None:
        self._console().action_quit_console()

    def action_inject(self, fault: str) -> None:
        self._console().action_inject(fault)
