"""The controller on the simulator with a virtual clock: every scenario, command and mode."""

import asyncio
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from console.controller.clock import PacedClock
from console.controller.controller import ControllerOptions
from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state import Phase, read_state
from console.report import write_report
from console.samples import Sample, TrackValues
from console.targets.base import TargetError
from tests.conftest import ROOT, SAMPLES, plan_from, sim_controller


def names(journal: Path) -> list[str]:
    return [e.name for e in read_events(journal)]


def of_type(journal: Path, kind):
    return [e for e in read_events(journal) if isinstance(e, kind)]


@pytest.mark.parametrize(
    ("phase", "before_first_change", "active", "stable_serves_all", "finished"),
    [
        (Phase.NEW, True, False, True, False),
        (Phase.PREFLIGHT, True, False, True, False),
        (Phase.RUNNING, False, True, False, False),
        (Phase.PAUSED, False, True, False, False),
        (Phase.AWAITING_PROMOTE, False, True, False, False),
        (Phase.ROLLING_BACK, False, False, False, False),
        (Phase.ROLLED_BACK, False, False, True, True),
        (Phase.COMPLETED, False, False, False, True),
        (Phase.GATE_FAILED, False, False, True, True),
    ],
)
def test_what_each_phase_says(phase, before_first_change, active, stable_serves_all, finished):
    assert (phase.before_first_change, phase.active, phase.stable_serves_all, phase.finished) == (before_first_change, active, stable_serves_all, finished)
    assert json.dumps({"phase": phase}) == f'{{"phase": "{phase.value}"}}' and f"{phase}" == phase.value, "written as it always was"


async def test_healthy_rollout_goes_through_every_stage_and_monitoring(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    assert await controller.run() == "completed"
    journal = controller.journal.path
    assert [e.weight for e in of_type(journal, ev.StageStarted)] == [5, 25, 50, 100]
    assert [e.t for e in of_type(journal, ev.StageStarted)] == [0, 600, 1500, 2700]
    completed = of_type(journal, ev.Completed)
    assert len(completed) == 1 and completed[0].t == 6300, "promoted, then the 60-minute window held"
    assert [c["weight"] for c in controller.target.cluster.changes] == [5, 25, 50, 100]
    assert controller.target.cluster.stable_image == canary_plan.image


async def test_error_spike_rolls_back_within_one_sample_of_the_fault(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "error-spike")
    assert await controller.run() == "rolled_back"
    rollback = of_type(controller.journal.path, ev.RollbackStarted)[0]
    assert rollback.trigger == "error_rate"
    assert 17 * 60 <= rollback.t <= 17 * 60 + canary_plan.interval
    assert controller.state.weight == 0 and controller.target.cluster.weight == 0
    assert controller.target.cluster.stable_image.endswith(":previous")
    assert names(controller.journal.path)[-2:] == ["rollback_verified", "rolled_back"]


async def test_latency_creep_pauses_then_headless_rolls_back_after_pause_timeout(canary_plan, tmp_path):
    """The limits alone (judge: threshold): the sequential judge's p99 test rolls the creep back before the warning pauses it."""
    controller = sim_controller(dataclasses.replace(canary_plan, judge="threshold"), tmp_path, "latency-creep")
    assert await controller.run() == "rolled_back"
    paused = of_type(controller.journal.path, ev.Paused)[0]
    rollback = of_type(controller.journal.path, ev.RollbackStarted)[0]
    assert paused.trigger == "latency_p99" and "500ms" in paused.reason
    assert rollback.t == pytest.approx(paused.t + canary_plan.pause_timeout)
    assert rollback.trigger == "latency_p99" and "no decision" in rollback.reason


async def test_no_data_is_never_promoted(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "no-data")
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    assert [e.weight for e in of_type(journal, ev.StageStarted)] == [5]
    assert not of_type(journal, ev.StagePassed)
    assert of_type(journal, ev.Paused)[0].trigger == "inconclusive"


async def test_flapping_under_the_consecutive_limit_does_not_roll_back(canary_plan, tmp_path):
    """The limits alone (judge: threshold): the sequential judge counts the blips' errors, and rolls back (below)."""
    controller = sim_controller(dataclasses.replace(canary_plan, judge="threshold"), tmp_path, "flapping")
    assert await controller.run() == "completed"
    journal = controller.journal.path
    breaches = [s for s in of_type(journal, ev.SampleTaken) if "error_rate" in s.breaches]
    assert len(breaches) >= 4, "the blips were seen (on counts a blip breaches only beyond doubt)"
    assert not of_type(journal, ev.Paused) and not of_type(journal, ev.RollbackStarted)


async def test_the_sequential_judge_counts_the_errors_of_a_flapping_canary_and_rolls_it_back(canary_plan, tmp_path):
    """Each blip fails 0.7% of a sample's requests, 70 times stable's rate: as counts, evidence no limit's streak waits for."""
    controller = sim_controller(canary_plan, tmp_path, "flapping")
    assert await controller.run() == "rolled_back"
    rollback = of_type(controller.journal.path, ev.RollbackStarted)[0]
    assert rollback.trigger == "judge:error_rate" and rollback.t < 25 * 60, "before the 50% stage (alpha is shared with the three latency tests)"


async def test_without_the_judges_evidence_in_its_events_a_rollout_decides_the_same(canary_plan, tmp_path):
    """A calibration's replays journal no evidence (ControllerOptions.journal_evidence): the judge decides on its own tests."""

    async def events(journal_evidence: bool) -> list[dict]:
        state_dir = tmp_path / str(journal_evidence)
        controller = sim_controller(canary_plan, state_dir, "flapping", ControllerOptions(journal_evidence=journal_evidence))
        assert await controller.run() == "rolled_back"
        return [{key: value for key, value in event.to_dict().items() if key not in ("ts", "duration_s")} for event in read_events(controller.journal.path)]

    with_evidence, without = await events(True), await events(False)
    assert any(event.get("judge") for event in with_evidence) and not any(event.get("judge") for event in without)
    assert [{**event, "judge": None} for event in with_evidence] == [{**event, "judge": None} for event in without]


class Operator:
    """Gives commands when the controller reaches given moments, like a captain at the console."""

    def __init__(self, controller, plan):
        self.controller, self.plan = controller, plan
        self.at_event: dict[str, list[tuple[str, object]]] = {}
        controller.subscribe(self.on_event)

    def when(self, event_name: str, command: str, match=lambda e: True):
        self.at_event.setdefault(event_name, []).append((command, match))

    def on_event(self, event):
        for command, match in list(self.at_event.get(event.name, [])):
            if match(event):
                self.at_event[event.name].remove((command, match))
                self.controller.submit(command, "captain@laptop")
                return


async def test_operator_rollback_mid_stage_records_actor_and_reason(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    operator = Operator(controller, canary_plan)
    operator.when("stage_started", "rollback", lambda e: e.stage == 1)
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    command = of_type(journal, ev.CommandIssued)[0]
    assert (command.command, command.actor) == ("rollback", "captain@laptop")
    rollback = of_type(journal, ev.RollbackStarted)[0]
    assert rollback.trigger == "operator" and "captain@laptop" in rollback.reason
    raw = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {"event": "command", "name": "rollback", "actor": "captain@laptop"}.items() <= raw[[r["event"] for r in raw].index("command")].items()
    assert [c["op"] for c in controller.target.cluster.changes] == ["set_weight", "rollback"], "the 25% asked for with the rollback waiting never went out"


class HeldShiftTarget:
    """A sim target whose shift to `held_weight` writes, then waits for a rollout that never becomes available."""

    def __init__(self, inner, held_weight: int):
        self.inner, self.held_weight = inner, held_weight
        self.cluster = inner.cluster
        self.waiting = asyncio.Event()
        self.given_up = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def set_weight(self, weight: int) -> bool:
        changed = await self.inner.set_weight(weight)
        if weight == self.held_weight:
            self.waiting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.given_up = True
                raise
        return changed


async def test_operator_rollback_cuts_short_a_shift_still_waiting_for_its_rollout(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    target = controller.target = HeldShiftTarget(controller.target, held_weight=25)

    async def roll_back_while_waiting() -> None:
        await target.waiting.wait()
        controller.submit("rollback", "captain@laptop")

    operator = asyncio.create_task(roll_back_while_waiting())
    assert await asyncio.wait_for(controller.run(), timeout=10) == "rolled_back", "the rollback did not wait for the shift"
    await operator
    assert target.given_up, "the shift was cancelled, never released"
    journal = controller.journal.path
    events = list(read_events(journal))
    held = next(i for i, e in enumerate(events) if isinstance(e, ev.StageStarted) and e.weight == 25)
    assert [e.name for e in events[held:]] == ["stage_started", "command", "rollback_started", "rollback_verified", "rolled_back"]
    rollback = of_type(journal, ev.RollbackStarted)[0]
    assert (rollback.trigger, rollback.reason, rollback.t) == ("operator", "rolled back by captain@laptop", 600)
    assert not of_type(journal, ev.Paused) and not of_type(journal, ev.ErrorRaised)
    assert target.cluster.weight == 0 and target.cluster.stable_image.endswith(":previous")


class SlowShiftTarget:
    """A sim target whose shift to `slow_weight` waits `wait_s` of rollout time for its rollout, as a cluster's may."""

    def __init__(self, inner, clock, slow_weight: int, wait_s: float):
        self.inner, self.clock, self.slow_weight, self.wait_s = inner, clock, slow_weight, wait_s
        self.cluster = inner.cluster

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def set_weight(self, weight: int) -> bool:
        changed = await self.inner.set_weight(weight)
        if weight == self.slow_weight:
            await self.clock.wait_until(self.clock.now() + self.wait_s, asyncio.Event())
        return changed


async def test_a_stage_window_starts_once_its_traffic_is_in_place(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    controller.target = SlowShiftTarget(controller.target, controller.clock, slow_weight=25, wait_s=300)
    assert await controller.run() == "completed", "a third of the window spent waiting for the rollout is not a window with a hole"
    journal = controller.journal.path
    started = next(e for e in of_type(journal, ev.StageStarted) if e.weight == 25)
    shifted = next(e for e in of_type(journal, ev.TrafficShifted) if e.weight == 25)
    passed = next(e for e in of_type(journal, ev.StagePassed) if e.stage == started.stage)
    assert (shifted.t - started.t, shifted.waited_s) == (300, 300)
    assert passed.t == shifted.t + started.observe_s, "the whole window observed 25%, after the shift"
    assert [e.waited_s for e in of_type(journal, ev.TrafficShifted) if e.weight != 25] == [0, 0, 0]
    assert "25% in place after 5m (the window started then)" in write_report(journal).read_text()


async def test_promote_skips_the_rest_of_the_window_and_promote_full_goes_to_100(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    operator = Operator(controller, canary_plan)
    operator.when("stage_started", "promote", lambda e: e.stage == 0)
    operator.when("stage_started", "promote-full", lambda e: e.stage == 1)
    assert await controller.run() == "completed"
    starts = [(e.weight, e.t) for e in of_type(controller.journal.path, ev.StageStarted)]
    assert starts == [(5, 0), (25, 0), (100, 0)]


async def test_the_journal_says_which_stages_a_promote_skipped(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    operator = Operator(controller, canary_plan)
    operator.when("sample", "promote", lambda e: e.stage == 1 and e.t >= 900)  # 25%'s window cut short
    operator.when("stage_started", "promote-full", lambda e: e.stage == 2)  # past 50%, whose window began
    assert await controller.run() == "completed"
    state = read_state(controller.journal.path)
    assert state.passed_stages == [0, 3] and state.skipped_stages == [1, 2]


async def test_promote_full_from_the_first_stage_skips_the_stages_never_started(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    Operator(controller, canary_plan).when("sample", "promote-full", lambda e: e.t >= 60)
    assert await controller.run() == "completed"
    assert read_state(controller.journal.path).skipped_stages == [0, 1, 2]


async def test_a_promote_after_a_window_held_skips_nothing_and_one_past_the_last_window_skips_it(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, options=ControllerOptions(headless=False, manual=True))
    operator = Operator(controller, canary_plan)
    for _ in canary_plan.stages[:-1]:
        operator.when("awaiting_promote", "promote")
    operator.when("stage_started", "promote", lambda e: e.stage == 3)  # completes at once: monitoring cut short
    assert await controller.run() == "completed"
    state = read_state(controller.journal.path)
    assert state.passed_stages == [0, 1, 2] and state.skipped_stages == [3]


async def test_pause_and_resume_restart_the_window(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    operator = Operator(controller, canary_plan)
    operator.when("sample", "pause", lambda e: e.t == 300)
    operator.when("paused", "resume")
    assert await controller.run() == "completed"
    journal = controller.journal.path
    resumed = of_type(journal, ev.Resumed)[0]
    second = of_type(journal, ev.StageStarted)[1]
    assert second.t == resumed.t + canary_plan.stages[0].observe, "the whole window holds again after a resume"


async def test_manual_mode_waits_for_promote_after_each_window(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, options=ControllerOptions(headless=False, manual=True))
    operator = Operator(controller, canary_plan)
    promote_at = []
    for _ in canary_plan.stages[:-1]:
        operator.when("awaiting_promote", "promote")
    controller.subscribe(lambda e: promote_at.append(e.t) if e.name == "awaiting_promote" else None)
    assert await controller.run() == "completed"
    assert promote_at == [600, 1500, 2700]


async def test_rollback_after_full_promotion_undoes_the_release(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, options=ControllerOptions(exit_when_finished=False))
    Operator(controller, canary_plan).when("completed", "rollback")
    controller.subscribe(lambda e: controller.stop() if e.name == "rolled_back" else None)
    assert await controller.run() == "rolled_back"
    assert controller.target.cluster.stable_image.endswith(":previous")
    assert names(controller.journal.path)[-5:] == ["completed", "command", "rollback_started", "rollback_verified", "rolled_back"]


async def test_rollback_during_preflight_changes_nothing(tmp_path):
    plan = plan_from("app: a\nimage: r/a:2\npreflight:\n  - {name: code review, kind: manual}\n")
    controller = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False))
    controller.subscribe(lambda e: controller.submit("rollback", "captain@laptop") if e.name == "preflight_result" else None)
    assert await controller.run() == "rolled_back"
    assert controller.target.cluster.changes == []
    assert "target_prepared" not in names(controller.journal.path)


async def test_manual_preflight_item_signed_off_records_who(tmp_path):
    plan = plan_from("app: a\nimage: r/a:2\npreflight:\n  - {name: code review, kind: manual}\n")
    controller = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False, exit_when_finished=True))
    controller.subscribe(
        lambda e: controller.submit("sign-off", "reviewer@desk", "code review") if e.name == "preflight_result" and e.status == "waiting" else None
    )
    assert await controller.run() == "completed"
    results = of_type(controller.journal.path, ev.PreflightResult)
    assert [(r.status, r.by) for r in results] == [("waiting", ""), ("pass", "reviewer@desk")]


async def test_headless_gate_fails_on_unsigned_manual_item_and_changes_nothing(tmp_path):
    plan = plan_from("app: a\nimage: r/a:2\npreflight:\n  - {name: code review, kind: manual}\n  - {name: notes, kind: manual, required: false}\n")
    controller = sim_controller(plan, tmp_path)
    assert await controller.run() == "gate_failed"
    assert of_type(controller.journal.path, ev.PreflightFailed)[0].failed == ["code review"]
    assert controller.target.cluster.changes == []


# --- the gate as a step of the loop: checks held by the test (held_checks) to see it mid-way ------

GATE = (
    "app: a\nimage: r/a:2\npreflight:\n"
    "  - {name: code review, kind: manual}\n"
    "  - {name: tests, kind: command, argv: [make, test]}\n"
    "  - {name: scan, kind: command, argv: [make, scan]}\n"
)


def latest(controller, item: str) -> str:
    return controller.state.preflight[item].status


async def until(controller, predicate, task: asyncio.Task) -> None:
    """Run until `predicate(controller.state)` holds after an event (or the controller ends, which fails)."""
    reached = asyncio.Event()
    controller.subscribe(lambda e: reached.set() if predicate(controller.state) else None)
    if not predicate(controller.state):
        await asyncio.wait((asyncio.ensure_future(reached.wait()), task), timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert predicate(controller.state), f"not reached; phase {controller.state.phase}"


async def test_a_sign_off_is_taken_while_the_checks_still_run(tmp_path, held_checks):
    controller = sim_controller(plan_from(GATE), tmp_path, options=ControllerOptions(headless=False))
    run = asyncio.create_task(controller.run())
    await until(controller, lambda s: "code review" in s.preflight and s.preflight["tests"].status == "running", run)
    controller.submit("sign-off", "reviewer@desk", "code review")
    await until(controller, lambda s: s.preflight["code review"].status == "pass", run)
    assert (latest(controller, "tests"), latest(controller, "scan")) == ("running", "running"), "signed off while both checks run"
    assert controller.state.phase == "preflight" and controller.target.cluster.changes == []
    held_checks.finish("tests", True, "42 passed")
    held_checks.finish("scan", True)
    assert await run == "completed"
    journal = controller.journal.path
    signed = next(r for r in of_type(journal, ev.PreflightResult) if r.item == "code review" and r.status == "pass")
    assert (signed.by, signed.output) == ("reviewer@desk", "signed off by reviewer@desk")
    raw = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {"event": "command", "name": "sign-off", "actor": "reviewer@desk", "argument": "code review"}.items() <= next(
        r for r in raw if r["event"] == "command"
    ).items()
    assert names(journal).index("preflight_passed") > names(journal).index("command"), "the gate opened once both were in"


async def test_a_failed_required_check_closes_the_gate_at_once_without_waiting_for_sign_offs(tmp_path, held_checks):
    controller = sim_controller(plan_from(GATE), tmp_path, options=ControllerOptions(headless=False))
    run = asyncio.create_task(controller.run())
    await until(controller, lambda s: s.preflight.get("scan") and s.preflight["scan"].status == "running", run)
    held_checks.finish("scan", False, "CVE-2024-0001 critical")
    assert await asyncio.wait_for(run, 30) == "gate_failed", "no sign-off can open a gate a required check has failed"
    assert held_checks.cancelled == ["tests"], "the check still running was stopped"
    journal = controller.journal.path
    assert of_type(journal, ev.PreflightFailed)[0].failed == ["scan"]
    tests = [r for r in of_type(journal, ev.PreflightResult) if r.item == "tests"]
    assert [r.status for r in tests] == ["running", "cancelled"]
    assert tests[-1].output == "cancelled: the gate cannot open: scan failed"
    assert names(journal)[-1] == "preflight_failed", "every result is journaled before the gate's end"
    assert controller.target.cluster.changes == []


async def test_a_sign_off_after_the_gate_failed_changes_nothing(tmp_path, held_checks):
    controller = sim_controller(plan_from(GATE), tmp_path, options=ControllerOptions(headless=False, exit_when_finished=False))
    run = asyncio.create_task(controller.run())
    await until(controller, lambda s: "scan" in s.preflight, run)
    held_checks.finish("scan", False)
    await until(controller, lambda s: s.phase == "gate_failed", run)
    controller.submit("sign-off", "reviewer@desk", "code review")
    await until(controller, lambda s: names(controller.journal.path)[-1] == "command", run)
    controller.stop()
    await run
    assert latest(controller, "code review") == "waiting", "a closed gate takes no sign-off"


async def test_a_rollback_during_the_gate_stops_its_checks_and_changes_nothing(tmp_path, held_checks):
    controller = sim_controller(plan_from(GATE), tmp_path, options=ControllerOptions(headless=False))
    run = asyncio.create_task(controller.run())
    await until(controller, lambda s: "scan" in s.preflight, run)
    controller.submit("rollback", "captain@laptop")
    assert await asyncio.wait_for(run, 30) == "rolled_back"
    assert sorted(held_checks.cancelled) == ["scan", "tests"]
    journal = controller.journal.path
    assert names(journal)[-5:] == ["command", "preflight_result", "preflight_result", "rollback_started", "rolled_back"]
    assert {r.output for r in of_type(journal, ev.PreflightResult) if r.status == "cancelled"} == {"cancelled: the release was stopped by captain@laptop"}
    assert of_type(journal, ev.RollbackStarted)[0].reason == "stopped before any change by captain@laptop"
    assert controller.target.cluster.changes == []


async def test_a_gate_taken_up_again_keeps_its_sign_offs_and_runs_its_checks_again(tmp_path, held_checks):
    plan = plan_from(GATE)
    first = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False))
    run = asyncio.create_task(first.run())
    await until(first, lambda s: "code review" in s.preflight and "scan" in s.preflight, run)
    first.submit("sign-off", "reviewer@desk", "code review")
    held_checks.finish("tests", True)
    await until(first, lambda s: s.preflight["code review"].status == "pass" and s.preflight["tests"].status == "pass", run)
    first.stop()  # the controller goes away mid-gate (a console quitting, SIGTERM)
    await run
    first.journal.close()
    assert latest(first, "scan") == "cancelled"

    second = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False))
    assert second.resumed and second.state.preflight["code review"].by == "reviewer@desk"
    run = asyncio.create_task(second.run())
    await until(second, lambda s: s.preflight["tests"].status == "running" and s.preflight["scan"].status == "running", run)
    assert latest(second, "code review") == "pass", "the sign-off journaled before stands"
    held_checks.finish("tests", True)
    held_checks.finish("scan", True)
    assert await asyncio.wait_for(run, 30) == "completed"
    assert held_checks.runs == ["tests", "scan", "tests", "scan"], "a passed check runs again: what held then may not now"
    reviews = [r.status for r in read_events(second.journal.path) if isinstance(r, ev.PreflightResult) and r.item == "code review"]
    assert reviews == ["waiting", "pass"], "no new wait for a sign-off already given"


async def test_a_per_stage_manual_gate_waits_for_a_promote_after_that_stage_only(tmp_path):
    plan = plan_from(
        "app: a\nimage: r/a:2\nstages:\n  - {weight: 5, observe: 10m}\n  - {weight: 25, observe: 10m, manual: true}\n  - {weight: 100, observe: 10m}\n"
    )
    assert [s.manual for s in plan.stages] == [False, True, False]
    controller = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False))
    held = []
    controller.subscribe(lambda e: held.append(e.stage) if e.name == "awaiting_promote" else None)
    Operator(controller, plan).when("awaiting_promote", "promote")
    assert await controller.run() == "completed"
    assert held == [1]
    promoted = next(e for e in of_type(controller.journal.path, ev.StageStarted) if e.stage == 2)
    assert promoted.t == 1200, "stage 3 started at the promote, after stage 2's window held"


async def test_a_manual_last_stage_waits_for_the_promote_that_completes_the_release(tmp_path):
    plan = plan_from("app: a\nimage: r/a:2\nstages:\n  - {weight: 5, observe: 10m}\n  - {weight: 100, observe: 10m, manual: true}\n")
    controller = sim_controller(plan, tmp_path, options=ControllerOptions(headless=False))
    Operator(controller, plan).when("awaiting_promote", "promote")
    assert await controller.run() == "completed"
    assert names(controller.journal.path)[-4:] == ["stage_passed", "awaiting_promote", "command", "completed"]


async def test_critical_breach_while_paused_still_rolls_back(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "error-spike", options=ControllerOptions(headless=False))
    Operator(controller, canary_plan).when("stage_started", "pause", lambda e: e.stage == 1)
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    assert of_type(journal, ev.Paused)[0].t == 600
    assert of_type(journal, ev.RollbackStarted)[0].trigger == "error_rate"


async def test_blue_green_and_rolling_run_on_the_simulator(tmp_path):
    for strategy, weights in (("blue-green", [0, 100]), ("rolling", [100])):
        plan = plan_from(f"app: a\nimage: r/a:2\nstrategy: {strategy}\nanalysis: {{min_requests: 20}}\n")
        controller = sim_controller(plan, tmp_path / strategy)
        assert await controller.run() == "completed", strategy
        assert [c["weight"] for c in controller.target.cluster.changes] == weights


async def test_state_is_a_fold_over_the_journal(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "latency-creep")
    await controller.run()
    replayed = read_state(controller.journal.path)
    assert (replayed.phase, replayed.stage, replayed.rollback_reason) == (
        controller.state.phase,
        controller.state.stage,
        controller.state.rollback_reason,
    )


async def test_every_event_has_name_t_and_wall_time(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "error-spike")
    await controller.run()
    for line in controller.journal.path.read_text().splitlines():
        record = json.loads(line)
        assert {"event", "t", "ts"} <= record.keys()
        if record["event"].startswith("preflight"):
            assert record["t"] <= 0


FLAGGED = (
    "app: checkout\nimage: r/checkout:2.5.0\nmetrics: {{scenario: {scenario}}}\n"
    "stages:\n  - {{weight: 50, observe: 10m}}\n  - {{weight: 100, observe: 10m}}\n"
    "flags:\n  - name: new-flow\n    schedule: [internal, 5, 50, 100]\n    internal_users: [alice]\n    step_observe: 5m\n"
)


async def test_flag_enablement_steps_follow_promotion_each_held_like_a_stage(tmp_path):
    from console.app.wiring import RunOptions, build_rollout

    rollout = build_rollout(plan_from(FLAGGED.format(scenario="healthy")), RunOptions(fast=True, state_dir=tmp_path), "tester@host")
    assert await rollout.controller.run() == "completed"
    journal = rollout.controller.journal.path
    starts = [(e.stage_name, e.t) for e in of_type(journal, ev.StageStarted)]
    assert starts[2:] == [("new-flow: internal users", 1200), ("new-flow: 5%", 1500), ("new-flow: 50%", 1800), ("new-flow: 100%", 2100)]
    flag = rollout.flags.store.get("new-flow")
    assert (flag.enabled, flag.percentage, flag.allowed_users) == (True, 100, ("alice",))
    shares = [c.new["percentage"] for c in of_type(journal, ev.FlagChanged) if c.new.get("enabled")]
    assert shares == [0, 5, 50, 100]


async def test_a_breach_during_enablement_rolls_back_and_switches_the_flag_off(tmp_path):
    from console.app.wiring import RunOptions, build_rollout

    scenario = tmp_path / "late-spike.yaml"
    scenario.write_text("name: late-spike\nevents:\n  - {at: 26m, track: canary, set: {error_rate: 0.05}}\n")
    rollout = build_rollout(plan_from(FLAGGED.format(scenario=scenario)), RunOptions(fast=True, state_dir=tmp_path), "tester@host")
    assert await rollout.controller.run() == "rolled_back"
    rollback = of_type(rollout.controller.journal.path, ev.RollbackStarted)[0]
    assert rollback.trigger == "error_rate" and rollout.controller.state.stage == 3  # during "new-flow: 5%"
    assert rollout.flags.store.get("new-flow").enabled is False


class FailingShiftTarget:
    """A sim target whose shifts to `failing_weight` fail every time, as a cluster that denies them does."""

    def __init__(self, inner, clock, failing_weight: int):
        self.inner, self.clock, self.failing_weight = inner, clock, failing_weight
        self.cluster = inner.cluster
        self.attempts: list[float] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def set_weight(self, weight: int) -> bool:
        if weight == self.failing_weight:
            self.attempts.append(self.clock.now())
            raise TargetError("forbidden: update deployments/app-canary in namespace default")
        return await self.inner.set_weight(weight)


async def test_a_failing_shift_is_retried_with_backoff_and_its_errors_journaled_once_with_a_count(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    target = controller.target = FailingShiftTarget(controller.target, controller.clock, failing_weight=25)
    assert await asyncio.wait_for(controller.run(), timeout=10) == "rolled_back", "no tight loop: virtual time moves on"
    gaps = [round(b - a, 6) for a, b in zip(target.attempts, target.attempts[1:])]
    assert gaps[:6] == [1, 2, 4, 8, 16, 30] and set(gaps[5:]) == {30}, "1s doubling, at most 30s apart"
    journal = controller.journal.path
    paused = of_type(journal, ev.Paused)[0]
    rollback = of_type(journal, ev.RollbackStarted)[0]
    assert rollback.t == paused.t + canary_plan.pause_timeout and "failed to shift traffic" in rollback.reason
    errors = of_type(journal, ev.ErrorRaised)
    assert errors[0].repeated == 0 and all(e.repeated for e in errors[1:])
    assert 1 + sum(e.repeated for e in errors) == len(target.attempts) == 34
    assert len(errors) <= 1 + canary_plan.pause_timeout / 60, "one line, then a count a minute"
    assert {(e.where, e.message) for e in errors} == {("target.set_weight", "forbidden: update deployments/app-canary in namespace default")}
    assert names(journal)[names(journal).index("rollback_started") - 1] == "error", "the count is written before what follows"
    report = write_report(journal).read_text()
    assert f"Error in target.set_weight ({errors[1].repeated} more times): forbidden" in report


async def test_a_resume_retries_a_failed_shift_at_once_and_a_new_error_is_journaled_in_full(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, options=ControllerOptions(headless=False))
    target = controller.target = FailingShiftTarget(controller.target, controller.clock, failing_weight=25)
    resumed_at: list[float] = []

    def on_event(e) -> None:
        if isinstance(e, ev.ErrorRaised) and e.repeated and not resumed_at:
            resumed_at.append(controller.now())
            controller.submit("resume", "captain@laptop")
        elif isinstance(e, ev.ErrorRaised) and resumed_at and len(target.attempts) > 10:
            controller.submit("rollback", "captain@laptop")

    controller.subscribe(on_event)
    assert await asyncio.wait_for(controller.run(), timeout=10) == "rolled_back"
    assert resumed_at[0] in target.attempts, "tried again the moment the operator resumed"
    lines = [(e.name, getattr(e, "repeated", None)) for e in read_events(controller.journal.path)]
    resumed = lines.index(("resumed", None))
    assert lines[resumed + 1] == ("error", 0), "after a person acted, the error is told again in full"


async def test_the_sim_cluster_changed_by_someone_else_is_drift_that_pauses_then_rolls_back(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    state_file = controller.target.state_file

    def change_by_hand(e) -> None:
        cluster = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**cluster, "weight": 40}))

    controller.subscribe(lambda e: change_by_hand(e) if isinstance(e, ev.SampleTaken) and e.t == 900 else None)
    assert await asyncio.wait_for(controller.run(), timeout=10) == "rolled_back"
    journal = controller.journal.path
    drift = of_type(journal, ev.DriftDetected)
    assert [(d.t, d.changes, d.weight) for d in drift] == [(910, ["sim cluster weight: 25 → 40"], 25)], "found at the next sample, said once"
    paused = of_type(journal, ev.Paused)[0]
    assert (paused.t, paused.trigger) == (910, "drift")
    rollback = of_type(journal, ev.RollbackStarted)[0]
    assert rollback.t == 910 + canary_plan.pause_timeout and rollback.trigger == "drift"
    assert [c["weight"] for c in controller.target.cluster.changes if c["op"] == "set_weight"] == [5, 25], "nothing re-applied over it"
    report = write_report(journal).read_text()
    assert "Drift (1 change beside the release): sim cluster weight: 25 → 40" in report


async def test_a_promote_is_refused_while_drift_stands_and_a_resume_accepts_it(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, options=ControllerOptions(headless=False))
    state_file = controller.target.state_file
    operator = Operator(controller, canary_plan)
    operator.when("paused", "promote", lambda e: e.trigger == "drift")
    operator.when("error", "resume", lambda e: e.where == "promote")

    def change_by_hand(e) -> None:
        if isinstance(e, ev.SampleTaken) and e.t == 900:
            state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "replicas": 12}))

    controller.subscribe(change_by_hand)
    assert await asyncio.wait_for(controller.run(), timeout=10) == "completed"
    events = list(read_events(controller.journal.path))
    drifted = next(i for i, e in enumerate(events) if isinstance(e, ev.DriftDetected))
    refused = next(i for i, e in enumerate(events) if isinstance(e, ev.ErrorRaised) and e.where == "promote")
    resumed = next(i for i, e in enumerate(events) if isinstance(e, ev.Resumed))
    assert drifted < refused < resumed
    assert not [e for e in events[drifted:resumed] if isinstance(e, ev.StageStarted)], "no stage over the drift"
    assert "sim cluster replicas: 10 → 12" in events[refused].message
    assert len(of_type(controller.journal.path, ev.DriftDetected)) == 1, "accepted by the resume: not told again"


async def test_a_restarted_controller_does_not_re_apply_over_drift_nobody_accepted(canary_plan, tmp_path):
    first = sim_controller(canary_plan, tmp_path, options=ControllerOptions(headless=False))
    state_file = first.target.state_file

    def on_event(e) -> None:
        if isinstance(e, ev.SampleTaken) and e.t == 900:
            state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "weight": 40}))
        if isinstance(e, ev.Paused) and e.trigger == "drift":
            first.stop()

    first.subscribe(on_event)
    await asyncio.wait_for(first.run(), timeout=10)
    first.journal.close()
    second = sim_controller(canary_plan, tmp_path)
    assert second.resumed and second.state.drift_standing == ["sim cluster weight: 25 → 40"]
    assert await asyncio.wait_for(second.run(), timeout=10) == "rolled_back"
    assert [c["op"] for c in second.target.cluster.changes][-1] == "rollback"
    assert [c["weight"] for c in second.target.cluster.changes if c["op"] == "set_weight"] == [5, 25], "25% was not written over the 40%"
    assert len(of_type(second.journal.path, ev.DriftDetected)) == 1, "the restart found the same drift: not news"


# --- listeners: a console widget or a notifier that fails never stops the rollout ----------------


async def test_a_listener_that_raises_mid_step_is_journaled_and_the_rollout_reaches_its_end(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)

    def broken_widget(event):
        raise RuntimeError("widget gone")  # on every event, the errors it causes included

    controller.subscribe(broken_widget)
    assert await controller.run() == "completed"
    journal = controller.journal.path
    assert names(journal)[-2:] == ["completed", "error"] and controller.target.cluster.weight == 100
    errors = of_type(journal, ev.ErrorRaised)
    assert {e.where for e in errors} == {"listener test_a_listener_that_raises_mid_step_is_journaled_and_the_rollout_reaches_its_end.<locals>.broken_widget"}
    assert errors[0].message == "on rollout_started: widget gone"
    sample_errors = [e.t for e in errors if e.message == "on sample: widget gone"]
    assert sample_errors and all(b - a >= 60 for a, b in zip(sample_errors, sample_errors[1:])), "the same failure at most once a minute"


async def test_a_listener_that_raises_on_the_rollback_does_not_leave_the_canary_serving(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path, "error-spike")
    controller.subscribe(lambda e: 1 / 0 if e.name == "rollback_started" else None)
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    assert names(journal)[-4:] == ["rollback_started", "error", "rollback_verified", "rolled_back"]
    assert of_type(journal, ev.ErrorRaised)[0].message == "on rollback_started: division by zero"
    assert controller.target.cluster.weight == 0 and controller.target.cluster.stable_image.endswith(":previous")


class Killed(BaseException):
    """The process dies (SIGKILL, the machine): nothing of the controller runs after it."""


async def test_a_run_killed_right_after_a_window_held_moves_on_without_judging_it_again(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)

    def kill_after_the_first_window(event):
        if event.name == "stage_passed":
            raise Killed

    controller.subscribe(kill_after_the_first_window)
    with pytest.raises(Killed):
        await controller.run()
    resumed = sim_controller(canary_plan, tmp_path)
    assert await resumed.run() == "completed"
    journal = resumed.journal.path
    assert [e.stage for e in of_type(journal, ev.StagePassed)] == [0, 1, 2, 3], "the held window was journaled once"
    assert [e.t for e in of_type(journal, ev.StageStarted)] == [0, 600, 1500, 2700]
    assert [c["weight"] for c in resumed.target.cluster.changes] == [5, 25, 50, 100]


# --- coverage by time: late samples that measure the time cost nothing; holes and no data do ----


class SlowSource:
    """A sim metric source whose answers take `took(n)` seconds of rollout time (n: the sample's number)."""

    def __init__(self, inner, clock, took):
        self.inner, self.clock, self.took = inner, clock, took
        self.spans: list[float] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def sample(self, metrics, t, window_s):
        self.spans.append(window_s)
        await self.clock.wait_until(self.clock.now() + self.took(len(self.spans)), asyncio.Event())
        return await self.inner.sample(metrics, t, window_s)


@pytest.mark.parametrize("slower", [1.2, 1.5, 1.9])
async def test_samples_landing_late_from_a_slow_source_still_cover_the_window(canary_plan, tmp_path, slower):
    controller = sim_controller(canary_plan, tmp_path)
    source = controller.metrics = SlowSource(controller.metrics, controller.clock, lambda n: slower * canary_plan.interval)
    assert await controller.run() == "completed", "a healthy canary whose source is slower than the interval is promoted"
    journal = controller.journal.path
    assert not of_type(journal, ev.Paused)
    assert max(source.spans) == pytest.approx(slower * canary_plan.interval), "each sample measured the time since the one before"
    samples = of_type(journal, ev.SampleTaken)
    assert len(samples) < 6300 / canary_plan.interval / 1.15, "fewer samples than the windows' length over the interval"


async def test_a_source_with_holes_longer_than_two_intervals_gives_low_coverage_and_is_never_promoted(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    controller.metrics = SlowSource(controller.metrics, controller.clock, lambda n: 60 if n % 4 == 0 else 0)  # a minute's hole every fourth sample
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    paused = of_type(journal, ev.Paused)[0]
    assert paused.trigger == "coverage" and "usable data covered only" in paused.reason, paused.reason
    assert not of_type(journal, ev.StagePassed) and [e.weight for e in of_type(journal, ev.StageStarted)] == [5]


class GappySource:
    """A sim metric source with no data on every `every`-th sample: missing samples, truly."""

    def __init__(self, inner, every: int):
        self.inner, self.every, self.count = inner, every, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def sample(self, metrics, t, window_s):
        self.count += 1
        if self.count % self.every == 0:
            return Sample({m: TrackValues(None, None) for m in metrics}, None, ("no data in the range",))
        return await self.inner.sample(metrics, t, window_s)


async def test_a_source_missing_samples_gives_low_coverage_and_is_never_promoted(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    controller.metrics = GappySource(controller.metrics, every=3)  # a third missing, never three in a row
    assert await controller.run() == "rolled_back"
    journal = controller.journal.path
    paused = of_type(journal, ev.Paused)[0]
    assert paused.trigger == "coverage" and "(67% < 80%)" in paused.reason, paused.reason
    assert paused.t == 600 and not of_type(journal, ev.StagePassed)


# --- simulated time (--speed) never runs ahead of the controller ---------------------------------


async def test_the_paced_clock_moves_only_while_the_controller_waits_and_at_most_at_its_speed():
    wall = [100.0]
    clock = PacedClock(speed=100, monotonic=lambda: wall[0])
    clock.start(50)
    wall[0] += 30  # the controller worked 30s of wall time: 3000s at speed 100, held back
    assert clock.now() == 50
    wake = asyncio.Event()
    waiting = asyncio.create_task(clock.wait_until(60, wake))
    await asyncio.sleep(0)
    wall[0] += 0.05
    assert clock.now() == pytest.approx(55)
    wall[0] += 1
    assert clock.now() == 60, "never past what the controller waits for"
    wake.set()
    await waiting
    wall[0] += 30
    assert clock.now() == 60


class SlowController:
    """A sim metric source that holds the wall clock: every sample costs `cost_s` of wall time, far past the interval."""

    def __init__(self, inner, wall, cost_s):
        self.inner, self.wall, self.cost_s = inner, wall, cost_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def sample(self, metrics, t, window_s):
        self.wall[0] += self.cost_s
        return await self.inner.sample(metrics, t, window_s)


async def test_a_controller_slower_than_the_paced_clock_holds_it_back_and_misses_no_sample(canary_plan, tmp_path):
    wall = [0.0]
    speed = 1e6  # an interval is 10µs of wall time; each sample costs a second of it
    controller = sim_controller(canary_plan, tmp_path, clock=PacedClock(speed, monotonic=lambda: wall[0]))
    controller.metrics = SlowController(controller.metrics, wall, cost_s=1.0)
    assert await controller.run() == "completed"
    samples = [e.t for e in of_type(controller.journal.path, ev.SampleTaken)]
    assert samples == pytest.approx([canary_plan.interval * n for n in range(1, len(samples) + 1)])
    assert len(samples) == 6300 / canary_plan.interval


def test_a_healthy_minimal_plan_at_speed_20000_is_promoted():
    command = [sys.executable, "-m", "console.app", "run", str(SAMPLES / "minimal.yaml"), "--headless", "--speed", "20000", "--scenario", "healthy"]
    with tempfile.TemporaryDirectory() as state_dir:
        result = subprocess.run([*command, "--state-dir", state_dir], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
