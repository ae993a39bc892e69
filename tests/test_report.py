"""The runbook from a journal alone: what a person reads first after an incident.

Most reports here come from journals of real runs (the simulator on virtual time, the Kubernetes
emulator for the kubectl hints); a few from journals written by hand, for what a run rarely does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from console.app.cli import main
from console.controller.controller import ControllerOptions
from console.journal import events as ev
from console.journal.evidence import JudgeEvidence
from console.journal.journal import Journal, read_events
from console.narrate import rollout_clock
from console.plan import load_plan
from console.plan.checks import Check
from console.report import write_report
from console.report.judgement import Limit, Moments, judge_metric
from console.report.markdown import SUMMARY_WIDTH
from console.sim.scenario import load_scenario
from console.units import format_metric_value
from tests.conftest import SAMPLES, sim_controller

SECTIONS = [
    "## Think step",
    "## Changes",
    "## Pre-Deployment Validation",
    "## Timeline",
    "## Metrics Summary",
    "## Feature Flags",
    "## Notifications",
    "## Issues Encountered",
    "## Rollback Plan",
    "## Post-Deployment Actions",
]
OLD_IMAGE = "registry.example.com/app:previous"
"""What sim_controller runs as stable."""
OPERATOR = "captain@laptop"
REPRS = re.compile(r"\{'|\['|\[\"|\bNone\b|\bTrue\b|\bFalse\b")
"""What a Python repr leaves in text: dicts and lists of strings, None, booleans."""

RUNS = {
    "canary-healthy": ("canary.yaml", "healthy"),
    "canary-error-spike": ("canary.yaml", "error-spike"),
    "canary-latency-creep": ("canary.yaml", "latency-creep", "threshold"),  # the limits' warning: the judge catches the creep first
    "canary-no-data": ("canary.yaml", "no-data"),
    "canary-flapping": ("canary.yaml", "flapping", "threshold"),  # the limits alone: the sequential judge rolls it back
    "blue-green-healthy": ("blue-green.yaml", "healthy"),
    "blue-green-error-spike": ("blue-green.yaml", "error-spike"),
    "rolling-healthy": ("rolling.yaml", "healthy"),
    "rolling-error-spike": ("rolling.yaml", "error-spike"),
}


@dataclass
class Run:
    journal: Path
    events: list[ev.Event]
    report: str

    @property
    def lines(self) -> list[str]:
        return self.report.splitlines()

    def section(self, title: str) -> str:
        return self.report.split(f"## {title}\n\n", 1)[1].split("\n## ", 1)[0]

    def of(self, kind: type[ev.Event]) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def finished(journal: Path) -> Run:
    return Run(journal, list(read_events(journal)), write_report(journal).read_text())


def no_fsync(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(os, "fsync", lambda fd: None)  # what these tests read is the journal's content, not its durability


async def run_sim(state_dir: Path, plan_file: str = "canary.yaml", scenario: str = "healthy", judge: str = "", when=None, **controller_args) -> Run:
    """A rollout of a sample plan on the simulator (its judge replaced by `judge` if given); `when(controller)`
    subscribes an operator first."""
    plan = load_plan(SAMPLES / plan_file)
    controller = sim_controller(replace(plan, judge=judge) if judge else plan, state_dir, scenario, **controller_args)
    if when is not None:
        when(controller)
    await controller.run()
    controller.journal.close()
    return finished(controller.journal.path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Every sample strategy under the scenarios that matter, run once for the module's tests."""
    done = {}
    with pytest.MonkeyPatch.context() as patch:
        no_fsync(patch)
        for name, (plan_file, scenario, *judge) in RUNS.items():
            done[name] = asyncio.run(run_sim(tmp_path_factory.mktemp(name), plan_file, scenario, *judge))
    return done


def on_event(controller, name: str, command: str, match=lambda e: True) -> None:
    """The operator gives `command` the first time the controller emits `name` matching `match`."""
    given = []

    def listener(event: ev.Event) -> None:
        if not given and event.name == name and match(event):
            given.append(event)
            controller.submit(command, OPERATOR)

    controller.subscribe(listener)


def stop_on(controller, name: str) -> None:
    controller.subscribe(lambda event: controller.stop() if event.name == name else None)


def assert_opening(run: Run) -> None:
    """Three lines, one each, then (for a rollback) what it was about, then the sections in order."""
    lines = run.lines
    assert lines[0].startswith("# Release ") and lines[1] == ""
    assert [line.split(":", 1)[0] for line in lines[2:5]] == ["- Released", "- Happened", "- Now"]
    assert lines[5] == "" and all(len(line) <= SUMMARY_WIDTH for line in lines[2:5])
    headers = [line for line in lines if line.startswith("## ")]
    rolled_back = run.events[-1].name in ("rolled_back", "rollback_started", "rollback_failed")
    assert headers == (["## Why it was rolled back"] if rolled_back else []) + SECTIONS
    assert lines[6] == headers[0], "what a rollback was about comes first"


def assert_renders(report: str) -> None:
    """As GitHub shows it (GitHub-flavoured Markdown): every table a table, no paragraph swallowed by a list."""
    html = MarkdownIt("gfm-like").render(report)
    assert html.count("<table>") == sum(line.startswith("|--") for line in report.splitlines())
    assert "<li>Flags the plan brings" not in html and "<li>At the end" not in html


def assert_plain_text(report: str) -> None:
    assert not REPRS.findall(report), [line for line in report.splitlines() if REPRS.search(line)]
    prose = [line for line in report.splitlines() if not line.startswith(("|", "kubectl", "brahma", "#", "~~~"))]
    assert all(len(line) <= SUMMARY_WIDTH for line in prose), [line for line in prose if len(line) > SUMMARY_WIDTH]


def flat(text: str) -> str:
    """The text with its wrapping undone, for phrases a line break may split."""
    return " ".join(text.split())


def unwrapped(text: str) -> list[str]:
    """Lines as written before wrapping: a wrapped bullet's continuation joins its first line."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def status_of(run: Run, metric: str) -> str:
    row = next(line for line in run.section("Metrics Summary").splitlines() if line.startswith(f"| {metric} "))
    return [cell.strip() for cell in row.strip("|").split("|")][-1]


def breaching_sample(run: Run) -> ev.SampleTaken:
    rollback = run.of(ev.RollbackStarted)[0]
    return [s for s in run.of(ev.SampleTaken) if s.t <= rollback.t and rollback.trigger in s.breaches][-1]


# --- the opening: three lines, then what a rollback was about ---------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_every_report_opens_with_three_lines_then_the_sections_in_order(runs, name):
    assert_opening(runs[name])
    assert_plain_text(runs[name].report)
    assert_renders(runs[name].report)


def test_a_rolled_back_canary_says_what_breached_with_its_value_and_the_state_now(runs):
    run = runs["canary-error-spike"]
    sample = breaching_sample(run)
    value = format_metric_value("error_rate", sample.metrics["error_rate"]["canary"])
    stable = format_metric_value("error_rate", sample.metrics["error_rate"]["stable"])
    assert run.lines[2:5] == [
        f"- Released: checkout {OLD_IMAGE} → registry.example.com/checkout:2.4.1, canary in 4 stages",
        f"- Happened: rolled back 7m into stage 2 at 25%: error_rate {value} > 1% (critical), with success_rate",
        f"- Now: stable serves 100% on {OLD_IMAGE} (verified); flags: new-checkout-flow unchanged",
    ]
    why = run.section("Why it was rolled back")
    assert f"- Decision at `17:00`, 7m into stage 2 at 25%: {run.of(ev.RollbackStarted)[0].reason}" in flat(why)
    assert "- Trigger: error_rate > 1%, critical: any one sample past it rolls back" in why
    assert re.search(rf"\| error_rate +\| {re.escape(value)} +\| {re.escape(stable)} +\| rolls back if > 1%; ", why), why
    assert "- Time to rollback: " in why and "- Stable verified: stable within every critical limit" in why
    assert "Rollback started (error_rate): error_rate" in run.section("Issues Encountered")


def test_a_promoted_canary_says_so_and_where_it_serves(runs):
    run = runs["canary-healthy"]
    assert run.lines[3:5] == [
        "- Happened: promoted to 100% in 1h45m as planned; every window held",
        "- Now: the new version serves 100% on registry.example.com/checkout:2.4.1; flags: new-checkout-flow unchanged",
    ]
    assert run.section("Issues Encountered").strip() == "Nothing: no pause, no breach, no error."


def test_a_pause_nobody_decided_names_the_breach_that_paused_it(runs):
    run = runs["canary-latency-creep"]
    pause = run.of(ev.Paused)[0]
    paused_on = next(s for s in run.of(ev.SampleTaken) if s.t == pause.t)
    value = format_metric_value("latency_p99", paused_on.metrics["latency_p99"]["canary"])
    assert run.lines[3] == f"- Happened: rolled back 24m50s into stage 2 at 25%: latency_p99 {value} > 500ms (warning), then paused 15m undecided"
    why = run.section("Why it was rolled back")
    assert "2 samples in a row past it pause the rollout; the pause went undecided past pause_timeout" in " ".join(why.split())
    assert f"The sample that breached, at `{pause.t // 60:.0f}:{pause.t % 60:02.0f}`" in why
    assert f"`19:50` Paused (latency_p99): {pause.reason}; rolled back after 15m paused" in " ".join(run.section("Issues Encountered").split())


def test_no_data_is_never_ok(runs):
    run = runs["canary-no-data"]
    assert "no data: simulated canary has no data, then paused 15m undecided" in run.lines[3]
    for metric in ("error_rate", "latency_p99", "success_rate"):
        assert status_of(run, metric).startswith("no data: "), "a few samples with values are not a window's evidence"


def test_warnings_that_fired_without_acting_are_issues(runs):
    run = runs["canary-flapping"]
    fired = [s for s in run.of(ev.SampleTaken) if s.streaks.get("warning:error_rate>0.005")]
    assert len(fired) >= 2 and not run.of(ev.Paused), "on counts a blip's warning holds only beyond doubt: a few of them"
    assert run.lines[3] == "- Happened: promoted to 100% in 1h45m as planned; every window held; 1 trigger fired without acting (Issues)"
    issues = " ".join(run.section("Issues Encountered").split())
    assert f"Warning error_rate > 0.5% fired on {len(fired)} samples from `{rollout_clock(fired[0].t)}`" in issues
    assert "never 2 in a row, so it did not pause" in issues
    assert status_of(run, "error_rate").startswith("regressed: up to "), "a warning limit was crossed in the last window"
    assert "- [ ] Look into the triggers that fired without acting (Issues): the new version flaps near a limit." in run.report


def test_blue_green_and_rolling_say_how_they_ran(runs):
    # Images are never cut: when both do not fit on the line with the stages, the stages give way.
    assert runs["blue-green-error-spike"].lines[2] == f"- Released: billing {OLD_IMAGE} → registry.example.com/billing:3.0.0, blue-green in 2 stages"
    assert runs["blue-green-error-spike"].lines[3].startswith("- Happened: rolled back 12m into switch at 100%: error_rate ")
    assert runs["rolling-healthy"].lines[3] == "- Happened: promoted to 100% in 30m as planned; every window held"
    # A rolling update leaves no stable to compare with: the limits alone speak, and say so.
    assert status_of(runs["rolling-healthy"], "latency_p99") == "within limits: no stable to compare"


# --- the Metrics Summary's status: limits and the stable baseline, not relative change alone ---


def moments(values: list[float]) -> Moments:
    series = Moments()
    for value in values:
        series.add(value)
    return series


def noisy(mean: float, spread: float, n: int, seed: int) -> Moments:
    rng = random.Random(seed)
    return moments([mean * rng.uniform(1 - spread, 1 + spread) for _ in range(n)])


ERROR_LIMITS = [Limit(Check("error_rate", "<", 0.001), "criterion"), Limit(Check("error_rate", ">", 0.01), "critical")]
SUCCESS_LIMITS = [Limit(Check("success_rate", ">", 0.9995), "criterion"), Limit(Check("success_rate", "<", 0.99), "critical")]


@pytest.mark.parametrize(
    "metric, before, after, limits, breached, samples, status",
    [
        # 0.0101% → 0.02%: twice stable, significant over 360 samples, and far inside every limit.
        ("error_rate", noisy(0.000101, 0.3, 360, 1), noisy(0.0002, 0.3, 360, 2), ERROR_LIMITS, [], 360, "ok"),
        # Past half the way from stable to the 0.1% limit: material, and significant.
        ("error_rate", noisy(0.0001, 0.3, 360, 1), noisy(0.0007, 0.3, 360, 2), ERROR_LIMITS, [], 360, "regressed"),
        # A limit crossed on a sample is a regression, whatever the means say.
        ("error_rate", noisy(0.0001, 0.3, 360, 1), noisy(0.0002, 0.3, 360, 2), ERROR_LIMITS, ["up to 2% (rolls back if > 1%)"], 360, "regressed"),
        # Lower is worse for success_rate: its limits say which way.
        ("success_rate", noisy(0.9999, 0.00001, 360, 1), noisy(0.9990, 0.00001, 360, 2), SUCCESS_LIMITS, [], 360, "regressed"),
        ("success_rate", noisy(0.9999, 0.00001, 360, 1), noisy(0.9998, 0.00001, 360, 2), SUCCESS_LIMITS, [], 360, "ok"),
        # No limit: more than 20% worse, significantly, is a regression; within noise it is not.
        ("latency_p50", noisy(100, 0.05, 360, 1), noisy(130, 0.05, 360, 2), [], [], 360, "regressed"),
        ("latency_p50", noisy(100, 0.9, 4, 1), noisy(130, 0.9, 4, 2), [], [], 4, "ok"),
        ("latency_p50", noisy(100, 0.05, 360, 1), noisy(110, 0.05, 360, 2), [], [], 360, "ok"),
        # Missing evidence is never "ok".
        ("error_rate", noisy(0.0001, 0.3, 360, 1), Moments(), ERROR_LIMITS, [], 360, "no data"),
        ("error_rate", noisy(0.0001, 0.3, 360, 1), noisy(0.0001, 0.3, 20, 2), ERROR_LIMITS, [], 360, "no data"),
        ("error_rate", Moments(), noisy(0.0002, 0.3, 360, 2), ERROR_LIMITS, [], 360, "within limits"),
        ("latency_p50", Moments(), noisy(130, 0.05, 360, 2), [], [], 360, "no baseline"),
    ],
)
def test_a_metric_regressed_only_past_a_limit_or_materially_and_significantly_worse(metric, before, after, limits, breached, samples, status):
    assert judge_metric(metric, before, after, limits, breached, samples).status == status


def test_an_identical_new_version_is_rarely_called_regressed():
    """A/A: canary and stable from the same distribution, with no limit to lean on; tolerance 0.5%."""
    seeds = 2000
    regressed = sum(
        judge_metric("latency_p50", noisy(100, 0.3, 60, seed), noisy(100, 0.3, 60, seed + seeds), [], [], 60).status == "regressed" for seed in range(seeds)
    )
    assert regressed <= seeds * 0.005


async def test_a_healthy_canary_with_noise_is_never_regressed_over_many_seeds(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    healthy = load_scenario("healthy")
    plan = load_plan(SAMPLES / "canary.yaml")
    for seed in range(1, 9):
        controller = sim_controller(plan, tmp_path / str(seed), "healthy")
        controller.metrics.scenario = replace(healthy, seed=seed)
        assert await controller.run() == "completed"
        controller.journal.close()
        run = finished(controller.journal.path)
        statuses = [status_of(run, metric) for metric in plan.metric_names]
        assert statuses == ["ok"] * len(statuses), (seed, statuses)


# --- what the journal tells of people and of the way back ---------------------------------------


async def test_stages_a_promote_cut_short_or_jumped_over_show_as_skipped(tmp_path, monkeypatch):
    no_fsync(monkeypatch)

    def operator(controller):
        on_event(controller, "sample", "promote", lambda e: e.stage == 0 and e.t == 120)
        on_event(controller, "sample", "promote-full", lambda e: e.stage == 1)

    run = await run_sim(tmp_path, when=operator)
    timeline = run.section("Timeline")
    assert re.search(r"\| stage 1 +\| 5% +\| 0:00 +\| 10m +\| 2m +\| skipped \(promoted by captain@laptop after 2m of 10m\)", timeline)
    assert re.search(r"\| stage 2 +\| 25% +\| 2:00 +\| 15m +\| 10s +\| skipped \(promoted by captain@laptop after 10s of 15m\)", timeline)
    assert re.search(r"\| stage 3 +\| 50% +\| — +\| 20m +\| — +\| skipped \(jumped over by promote-full by captain@laptop\)", timeline)
    assert re.search(r"\| monitoring +\| 100% +\| 2:10 +\| 1h +\| 1h +\| passed", timeline)
    assert "3 stages skipped by promote" in run.lines[3]
    issues = run.section("Issues Encountered")
    assert "stage 3 skipped: jumped over by promote-full by captain@laptop; its window was not observed whole" in " ".join(issues.split())
    assert "- [ ] Watch the metrics the skipped stages would have judged" in run.report
    assert_opening(run)
    assert_plain_text(run.report)


async def test_a_stage_promoted_after_its_window_held_passed(tmp_path, monkeypatch):
    no_fsync(monkeypatch)

    def captain(controller):
        on_event(controller, "awaiting_promote", "promote", lambda e: e.stage == 0)
        controller.subscribe(lambda e: controller.stop() if e.name == "awaiting_promote" and e.stage == 1 else None)

    run = await run_sim(tmp_path, when=captain, options=ControllerOptions(headless=False, manual=True, exit_when_finished=False))
    timeline = run.section("Timeline")
    assert re.search(r"\| stage 1 +\| 5% +\| 0:00 +\| 10m +\| 10m +\| passed \(promoted by captain@laptop\)", timeline)
    assert re.search(r"\| stage 2 +\| 25% +\| 10:00 +\| 15m +\| 15m +\| passed, waiting for a promote", timeline), "the journal ends there"
    assert "stage 2 held: waiting for a promote" in timeline
    assert run.lines[4].startswith("- Now: UNFINISHED: the new version serves 25%")
    assert "skipped" not in run.report


async def test_an_unfinished_headless_run_is_taken_up_by_the_same_command(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    run = await run_sim(tmp_path, scenario="latency-creep", judge="threshold", when=lambda c: stop_on(c, "paused"))
    assert run.report.startswith("# Release checkout-2.4.1: unfinished (paused)")
    assert run.lines[4].startswith("- Now: UNFINISHED: the new version serves 25%; a person decides")
    plan = SAMPLES / "canary.yaml"
    assert f"```sh\nbrahma run {plan} --state-dir {tmp_path} --headless\nbrahma run {plan} --state-dir {tmp_path}\n```" in run.report
    assert "`19:50` Paused (latency_p99): " in run.report and "; still paused when the journal ends" in flat(run.report)
    assert_plain_text(run.report)


async def test_an_unfinished_run_at_a_console_is_attached_to(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    options = ControllerOptions(headless=False, exit_when_finished=False)
    run = await run_sim(tmp_path, scenario="latency-creep", judge="threshold", when=lambda c: stop_on(c, "paused"), options=options)
    assert f"```sh\nbrahma attach checkout-2.4.1 --state-dir {tmp_path}\n```" in run.report
    assert "started by tester@host, at a console" in run.section("Changes")


async def test_an_operator_pause_resume_and_an_undo_after_completion(tmp_path, monkeypatch):
    no_fsync(monkeypatch)

    def operator(controller):
        on_event(controller, "sample", "pause", lambda e: e.t == 300)
        on_event(controller, "paused", "resume")
        on_event(controller, "completed", "rollback")
        stop_on(controller, "rolled_back")

    run = await run_sim(tmp_path, when=operator, options=ControllerOptions(exit_when_finished=False))
    assert run.lines[3] == "- Happened: completed, then rolled back at 110:00: rolled back by captain@laptop"
    assert run.lines[4] == f"- Now: stable serves 100% on {OLD_IMAGE} (verified); flags: new-checkout-flow unchanged"
    assert "- Decision at `110:00`, after the release had completed: rolled back by captain@laptop" in run.report
    assert "- Trigger: an operator's rollback" in run.report
    assert "`5:00` Paused (operator): paused by captain@laptop; resumed after 0s" in flat(run.section("Issues Encountered"))
    events = run.section("Timeline")
    assert "`5:00` " in events and "pause by captain@laptop" in events and "resumed (the window started again)" in events
    assert_opening(run)


def cut_at_rollback(source: Path, target: Path, *extra: dict) -> Path:
    """The journal up to its rollback_started line, then `extra` lines: a rollback that did not finish."""
    kept = []
    for line in source.read_text().splitlines():
        kept.append(line)
        if json.loads(line)["event"] == "rollback_started":
            break
    target.write_text("\n".join(kept + [json.dumps(e) for e in extra]) + "\n")
    return target


def test_a_rollback_not_verified_says_the_new_version_may_still_serve(runs, tmp_path):
    failed = {
        "event": "rollback_failed",
        "t": 1021.0,
        "ts": "2026-01-05T10:17:01+00:00",
        "reason": "not_verified",
        "detail": "stable serves 75%, not 100%",
        "attempts": 3,
        "since_s": 4.5,
        "retry_in_s": 4.0,
    }
    run = finished(cut_at_rollback(runs["canary-error-spike"].journal, tmp_path / "checkout-2.4.1.jsonl", failed))
    assert run.report.startswith("# Release checkout-2.4.1: ROLLBACK NOT VERIFIED")
    assert run.lines[3].startswith("- Happened: rolling back (not verified) 7m into stage 2 at 25%: error_rate ")
    assert run.lines[4] == "- Now: ROLLBACK NOT VERIFIED: the new version may still serve traffic (see Rollback Plan)"
    assert "`17:01` Rollback NOT verified: the target does not serve stable alone (3 attempts, 4s): stable serves 75%, not 100%" in flat(
        run.section("Issues Encountered")
    )
    assert "Time to rollback" not in run.report, "no rollback time for a rollback that has not finished"
    plan = SAMPLES / "canary.yaml"
    assert f"```sh\nbrahma run {plan} --state-dir {tmp_path} --headless\n```" in run.section("Rollback Plan")
    assert run.section("Post-Deployment Actions").startswith("- [ ] Check by hand that stable serves all traffic")
    assert_opening(run)
    assert_plain_text(run.report)


def test_an_older_journal_still_makes_a_runbook(runs, tmp_path):
    """Journals written before the plan's limits, flags and supervision were journaled."""
    lines = []
    for line in runs["canary-error-spike"].journal.read_text().splitlines():
        data = json.loads(line)
        if data["event"] == "rollout_started":
            for key in ("triggers", "flags", "headless"):
                del data[key]
            data["stages"] = [{k: v for k, v in s.items() if k != "criteria"} for s in data["stages"]]
        lines.append(json.dumps(data))
    (tmp_path / "old.jsonl").write_text("\n".join(lines) + "\n")
    run = finished(tmp_path / "old.jsonl")
    assert_opening(run)
    assert_plain_text(run.report)
    assert "error_rate " in run.lines[3] and "> 1% (critical)" in run.lines[3], "the trigger read from the samples' streaks"
    assert status_of(run, "error_rate").startswith("regressed: up to ")
    assert re.search(r"\| stage 1 +\| error_rate +\| [\d.]+% +\| [\d.]+% +\| — +\| — +\|", run.section("Timeline")), "what older journals judged"


# --- the Kubernetes hints, run against the cluster --------------------------------------------


@pytest.mark.parametrize(
    "manifest, plan_file, undone",
    [
        ("canary.yaml", "kubernetes-canary.yaml", {"checkout": "registry.example.com/checkout:2.4.0"}),
        ("canary-httproute.yaml", "kubernetes-canary-httproute.yaml", {"checkout": "registry.example.com/checkout:2.4.0"}),
        ("blue-green.yaml", "kubernetes-blue-green.yaml", {"billing-blue": "registry.example.com/billing:2.9.4"}),
        ("rolling.yaml", "kubernetes-rolling.yaml", {"search": "registry.example.com/search:1.8.2"}),
    ],
)
async def test_the_kubectl_commands_of_a_completed_release_undo_it_on_the_cluster(kube_emulator, tmp_path, manifest, plan_file, undone):
    from testbed.kubernetes_support import apply_sample, deployments, image, kube_rollout, kubectl

    apply_sample(kube_emulator, manifest)
    rollout = kube_rollout(kube_emulator, tmp_path, plan_file)
    assert await rollout.run() == "completed"
    run = finished(rollout.controller.journal.path)
    assert_plain_text(run.report)
    plan = run.section("Rollback Plan")
    assert f"```sh\nbrahma attach {rollout.controller.plan.name} --state-dir {tmp_path}\n```" in plan
    commands = plan.split("(what its rollback does):\n\n```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert all(line.startswith(("kubectl -n default ", "# ")) for line in commands), commands
    for line in commands:
        if not line.startswith("#"):
            kubectl(kube_emulator, *shlex.split(line)[1:])
    assert {name: image(d) for name, d in deployments(kube_emulator).items()} == undone
    if manifest == "blue-green.yaml":
        assert "colour=blue" in kubectl(kube_emulator, "get", "service/billing", "-o", "wide")


async def test_a_rolled_back_release_on_a_cluster_says_what_brahmas_rollback_did(kube_emulator, tmp_path):
    from testbed.kubernetes_support import apply_sample, kube_rollout

    apply_sample(kube_emulator, "rolling.yaml")
    rollout = kube_rollout(kube_emulator, tmp_path, "kubernetes-rolling.yaml", scenario="error-spike")
    assert await rollout.run() == "rolled_back"
    run = finished(rollout.controller.journal.path)
    assert run.lines[4] == "- Now: stable serves 100% on registry.example.com/search:1.8.2 (verified); no flags"
    plan = " ".join(run.section("Rollback Plan").split())
    assert "Brahma's rollback did this on the cluster; by hand (if Brahma cannot)" in plan
    assert "kubectl -n default rollout undo deployment/search --to-revision=1" in plan
    assert_opening(run)


# --- journals written by hand: the gate, flags, notifications, secrets --------------------------

STARTED = ev.RolloutStarted(
    0.0,
    rollout="checkout-2.4.1",
    app="checkout",
    image="r/checkout:2.4.1",
    strategy="canary",
    plan="plan.yaml",
    stages=[{"name": "stage 1", "weight": 5, "observe_s": 600}],
    planned_s=600,
    actor="captain@laptop",
    rollback_plan="weight 0, flags off",
)


def write_journal(path: Path, events: list[ev.Event]) -> Path:
    journal = Journal(path)
    for event in events:
        journal.append(event)
    journal.close()
    return path


def rolled_back_release(path: Path) -> Path:
    return write_journal(
        path,
        [
            STARTED,
            ev.FlagChanged(0.0, flag="new-flow", old={}, new={"enabled": False, "percentage": 0}, actor="brahma", reason="created disabled before the deploy"),
            ev.PreflightResult(0.0, item="unit tests", kind="command", status="pass", required=True, output="exit 0\n42 passed", duration_s=1.5, by="brahma"),
            ev.PreflightResult(0.0, item="code review", kind="manual", status="waiting", required=True, output="waiting for a sign-off"),
            ev.PreflightResult(0.0, item="code review", kind="manual", status="pass", required=True, output="signed off by reviewer@desk", by="reviewer@desk"),
            ev.PreflightResult(
                0.0,
                item="benchmarks",
                kind="command",
                status="fail",
                required=False,
                output="exit 1\np99 +18% over budget\nsee bench.txt",
                duration_s=3.0,
                by="brahma",
            ),
            ev.PreflightResult(
                0.0,
                item="infrastructure",
                kind="terraform",
                status="pass",
                required=True,
                output="terraform plan: no changes (exit 0)\nstate backed up to .brahma/x.json",
                by="brahma",
            ),
            ev.PreflightPassed(0.0),
            ev.TargetPrepared(0.0, before={"stable_image": "r/checkout:2.4.0"}, changes=["create canary"]),
            ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
            ev.SupervisionResumed(60.0, unwatched_s=45.0, window_restarted=True),
            ev.CommandIssued(120.0, command="pause", actor="captain@laptop"),
            ev.RollbackStarted(170.0, reason="error_rate 3% > 1%", trigger="error_rate"),
            ev.NotificationSent(
                170.2, webhook="slack hooks.slack.com", about="rollback_started", status="sent", attempts=3, detail="HTTP 200 after HTTP 500, HTTP 500"
            ),
            ev.FlagChanged(
                170.0,
                flag="new-flow",
                old={"enabled": True, "percentage": 5},
                new={"enabled": False, "percentage": 5},
                actor="brahma",
                reason="rollback: error_rate 3% > 1%",
            ),
            ev.RollbackVerified(170.0, healthy=True, detail="stable within every critical limit (5 checked)"),
            ev.RolledBack(170.0, duration_s=0.012),
            ev.NotificationSent(171.0, webhook="json deploys.example.com", about="rolled_back", status="failed", attempts=4, detail="HTTP 503"),
            ev.ErrorRaised(171.0, where="notify json deploys.example.com", message="rolled_back not delivered after 4 attempts: HTTP 503"),
        ],
    )


def test_the_runbook_of_a_rolled_back_release(tmp_path):
    report = write_report(rolled_back_release(tmp_path / "checkout-2.4.1.jsonl")).read_text()
    assert report.startswith("# Release checkout-2.4.1: rolled back")
    assert report.splitlines()[4] == "- Now: stable serves 100% on r/checkout:2.4.0 (verified); flags off (new-flow)"
    assert "- Time to rollback: 0.012s of Brahma's own time from the decision to stable serving 100%" in report
    assert "- Flags switched off: new-flow" in report
    # The gate: each item once, with its last result, who signed it off and when.
    assert re.search(r"\| code review +\| manual +\| yes +\| pass +\| reviewer@desk +\| \d\d:\d\d:\d\d \| 0\.00s \| signed off by reviewer@desk +\|", report)
    assert report.count("| code review ") == 1
    assert re.search(r"\| benchmarks +\| command +\| advisory +\| fail +\| brahma +\| \d\d:\d\d:\d\d \| 3\.00s \| see bench\.txt +\|", report)
    assert "### benchmarks: fail (advisory)\n\n~~~\nexit 1\np99 +18% over budget\nsee bench.txt\n~~~" in report
    assert "### unit tests" not in report, "the whole output only for items that did not pass"
    # Flag changes, the notifications and what failed among them.
    assert "- `0:00` new-flow: created (off, 0%) by brahma (created disabled before the deploy)" in report
    assert "- `2:50` new-flow: on, 5% → off, 5% by brahma (rollback: error_rate 3% > 1%)" in report
    assert re.search(r"\| `2:50` \| slack hooks\.slack\.com +\| rollback_started \| sent +\| 3 +\| HTTP 200 after HTTP 500, HTTP 500 \|", report)
    assert re.search(r"\| `2:51` \| json deploys\.example\.com +\| rolled_back +\| failed \| 4 +\| HTTP 503 +\|", report)
    issues = unwrapped(report.split("## Issues Encountered\n\n", 1)[1])
    assert "- `1:00` Unsupervised for 45s: the stage's window started again" in issues
    assert "- `2:51` Error in notify json deploys.example.com: rolled_back not delivered after 4 attempts: HTTP 503" in issues
    assert "pause by captain@laptop" in report and "supervision resumed from the journal after 45s unwatched" in report
    follow_ups = unwrapped(report.split("## Post-Deployment Actions\n\n", 1)[1])
    assert follow_ups[:2] == [
        "- [ ] Find the cause of the rollback (error_rate): error_rate 3% > 1%",
        "- [ ] Fix, then run the release again; the journal of this attempt is kept beside the new one.",
    ]
    assert "- [ ] Look into the advisory pre-flight items that did not pass: benchmarks." in follow_ups
    assert "- [ ] Fix the webhooks that could not be notified (json deploys.example.com) and tell their people by hand." in follow_ups
    assert_plain_text(report)


def test_a_release_with_no_notifications_says_so(tmp_path):
    journal = write_journal(tmp_path / "r.jsonl", [STARTED, ev.PreflightPassed(0.0), ev.Completed(600.0)])
    report = write_report(journal).read_text()
    assert "## Notifications\n\nNo notification was sent.\n" in report
    assert_plain_text(report)


def test_secrets_in_outputs_are_masked_in_the_runbook(tmp_path):
    output = "GET https://deployer:hunter2@staging.example.com/healthz?token=abc123\nAuthorization: Bearer eyJhbGciOi.secret"
    journal = write_journal(
        tmp_path / "r.jsonl",
        [
            STARTED,
            ev.PreflightResult(0.0, item="staging", kind="http", status="fail", required=True, output=output, by="brahma"),
            ev.PreflightFailed(0.0, failed=["staging"]),
        ],
    )
    report = write_report(journal).read_text()
    for secret in ("hunter2", "abc123", "eyJhbGciOi"):
        assert secret not in report
    assert "- [ ] Make the failed pre-flight items pass (staging), then run the release again." in report


def test_a_gate_that_failed_says_nothing_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "app: checkout\nimage: registry.example.com/checkout:2.4.1\n"
        "preflight:\n"
        "  - {name: unit tests, kind: command, argv: [python3, -c, 'import sys; print(\"2 failed\"); sys.exit(1)']}\n"
        "  - {name: code review, kind: manual}\n"
    )
    assert main(["run", str(plan), "--headless", "--fast", "--state-dir", str(tmp_path / "state")]) == 4
    run = finished(tmp_path / "state" / "checkout-2.4.1.jsonl")
    assert run.lines[2:5] == [
        "- Released: checkout registry.example.com/checkout:2.4.1 (nothing was changed), canary 5% → 25% → 50% → 100%",
        "- Happened: stopped at the pre-flight gate: 2 required items did not pass (code review, unit tests)",
        "- Now: nothing was changed: the running version serves as before; no flags",
    ]
    assert "### unit tests: fail (required)\n\n~~~\nexit 1\n2 failed\n~~~" in run.report
    assert_opening(run)
    assert_plain_text(run.report)


def test_brahma_report_writes_it_again_from_any_journal(tmp_path, capsys):
    journal = rolled_back_release(tmp_path / "old.jsonl")
    assert main(["report", str(journal), "--output", str(tmp_path / "again.md")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == write_report(journal, tmp_path / "first.md").read_text()


def open_rollback(path: Path, verified: bool) -> Path:
    """A rollback whose target failed twice (the second journaled a minute on), then read back stable alone, or not yet."""
    failure = dict(reason="rollback", detail="the Kubernetes API at https://k8s:6443 is unreachable: Connection refused")
    return write_journal(
        path,
        [
            STARTED,
            ev.PreflightPassed(0.0),
            ev.TargetPrepared(0.0, before={"stable_image": "r/checkout:2.4.0"}, changes=["create canary"]),
            ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
            ev.RollbackStarted(170.0, reason="error_rate 3% > 1%", trigger="error_rate"),
            ev.RollbackFailed(173.0, **failure, attempts=1, since_s=0.0, retry_in_s=1.0),
            ev.RollbackFailed(234.0, **failure, attempts=7, since_s=61.0, retry_in_s=30.0),
            *(
                [ev.RolledBack(266.0, duration_s=96.0, read_back="deployment/checkout runs checkout=r/checkout:2.4.0; no deployment/checkout-canary")]
                if verified
                else []
            ),
        ],
    )


def test_an_unverified_rollback_heads_the_runbook_and_its_issues(tmp_path):
    report = write_report(open_rollback(tmp_path / "r.jsonl", verified=False)).read_text()
    assert report.startswith("# Release checkout-2.4.1: ROLLBACK NOT VERIFIED")
    issues = flat(report.split("## Issues Encountered\n\n", 1)[1].split("\n\n", 1)[0])
    assert issues == (
        "- `2:50` Rollback started (error_rate): error_rate 3% > 1% "
        "- `2:53` Rollback NOT verified: the target failed to roll back (1 attempt): the Kubernetes API at https://k8s:6443 is unreachable: Connection refused "
        "- `3:54` Rollback NOT verified: the target failed to roll back (7 attempts, 1m1s): the Kubernetes API at https://k8s:6443 is unreachable: Connection refused"
    )
    actions = report.split("## Post-Deployment Actions\n\n", 1)[1]
    assert actions.startswith("- [ ] Check by hand that stable serves all traffic")
    assert "Fix, then run the release again" not in actions, "not before the rollback is done"


def test_a_rollback_verified_after_failures_keeps_them_and_what_was_read_back(tmp_path):
    report = write_report(open_rollback(tmp_path / "r.jsonl", verified=True)).read_text()
    assert report.startswith("# Release checkout-2.4.1: rolled back")
    assert report.count("Rollback NOT verified") == 2
    assert "rolled back in 96.000s (read back: deployment/checkout runs checkout=r/checkout:2.4.0; no deployment/checkout-canary)" in flat(report)


def test_terminal_control_in_an_older_journals_outputs_is_neutralised_in_the_runbook(tmp_path):
    # Journals written before outputs were neutralised where they are captured still hold it.
    output = "exit 1\n\x1b[31mFAILED\x1b[0m 3 tests\x1b]0;owned\x07\nFAIL\rPASS"
    journal = write_journal(
        tmp_path / "r.jsonl",
        [
            STARTED,
            ev.PreflightResult(0.0, item="unit tests", kind="command", status="fail", required=True, output=output, by="brahma"),
            ev.PreflightFailed(0.0, failed=["unit tests"]),
        ],
    )
    report = write_report(journal).read_text()
    assert "| 0.00s | FAIL␍PASS |" in report
    assert "~~~\nexit 1\nFAILED 3 tests\nFAIL␍PASS\n~~~" in report
    assert "\x1b" not in report and "\x07" not in report and "\r" not in report


def test_stages_a_promote_went_past_read_skipped_never_passed(tmp_path):
    planned = [{"name": name, "weight": weight, "observe_s": 600} for name, weight in (("stage 1", 5), ("stage 2", 25), ("stage 3", 50), ("monitoring", 100))]
    started = ev.RolloutStarted(**{**STARTED.__dict__, "stages": planned, "planned_s": 2400})
    journal = write_journal(
        tmp_path / "r.jsonl",
        [
            started,
            ev.PreflightPassed(0.0),
            ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
            ev.StagePassed(600.0, stage=0, summary={}),
            ev.StageStarted(600.0, stage=1, stage_name="stage 2", weight=25, observe_s=600),
            ev.CommandIssued(700.0, command="promote-full", actor="captain@laptop"),
            ev.StageStarted(700.0, stage=3, stage_name="monitoring", weight=100, observe_s=600),
            ev.CommandIssued(800.0, command="promote", actor="captain@laptop"),
            ev.Completed(800.0),
        ],
    )
    timeline = write_report(journal).read_text().split("## Timeline", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in timeline.splitlines()[2:]]
    assert [(row[0], row[5]) for row in rows] == [
        ("stage 1", "passed"),
        ("stage 2", "skipped (promoted by captain@laptop after 1m40s of 10m)"),
        ("stage 3", "skipped (jumped over by promote-full by captain@laptop)"),
        ("monitoring", "skipped (promoted by captain@laptop after 1m40s of 10m)"),
    ]


def test_a_gate_closed_at_once_asks_to_fix_what_failed_not_what_it_cancelled(tmp_path):
    report = write_report(
        write_journal(
            tmp_path / "checkout-2.4.1.jsonl",
            [
                STARTED,
                ev.PreflightResult(0.0, item="all tests pass", kind="command", status="running", required=True, by="brahma"),
                ev.PreflightResult(0.0, item="security scan", kind="command", status="running", required=True, by="brahma"),
                ev.PreflightResult(
                    0.0, item="security scan", kind="command", status="fail", required=True, output="exit 1\nCVE-2024-0001", duration_s=2.0, by="brahma"
                ),
                ev.PreflightResult(
                    0.0,
                    item="all tests pass",
                    kind="command",
                    status="cancelled",
                    required=True,
                    output="cancelled: the gate cannot open: security scan failed",
                    duration_s=2.0,
                    by="brahma",
                ),
                ev.PreflightFailed(0.0, failed=["security scan"]),
            ],
        )
    ).read_text()
    assert re.search(r"\| all tests pass +\| command +\| yes +\| cancelled +\| brahma +\|[^|]+\| 2\.00s +\| cancelled: the gate cannot open", report)
    assert "- [ ] Make the failed pre-flight items pass (security scan), then run the release again." in report


def test_a_breach_while_paused_is_the_one_that_rolled_back_not_the_one_that_paused(tmp_path):
    """Paused on latency, then rolled back on errors before anybody decided: the runbook's breach is the error."""
    slow = {"error_rate": {"canary": 0.0002, "stable": 0.0001}, "latency_p99": {"canary": 700.0, "stable": 240.0}}
    failing = {"error_rate": {"canary": 0.0214, "stable": 0.0001}, "latency_p99": {"canary": 668.0, "stable": 239.0}}
    journal = write_journal(
        tmp_path / "checkout-2.4.1.jsonl",
        [
            STARTED,
            ev.PreflightPassed(0.0),
            ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
            ev.SampleTaken(396.0, stage=0, metrics=slow, requests=900.0, verdict="breach", breaches=["latency_p99"]),
            ev.Paused(396.0, reason="latency_p99 700ms > 500ms (warning, 2 samples in a row)", trigger="latency_p99"),
            ev.SampleTaken(1008.0, stage=0, metrics=failing, requests=900.0, verdict="breach", breaches=["error_rate", "latency_p99"]),
            ev.RollbackStarted(1009.0, reason="error_rate 2.14% > 1% (critical)", trigger="error_rate"),
            ev.RollbackVerified(1031.0, healthy=True, detail="stable within every critical limit (5 checked)"),
            ev.RolledBack(1031.0, duration_s=0.37),
        ],
    )
    report = write_report(journal).read_text()
    why = report.split("## Why it was rolled back\n\n", 1)[1].split("\n## ", 1)[0]
    assert "The sample that breached, at `16:48`" in why, why
    assert re.search(r"\| error_rate +\| 2\.14% +\| 0\.01% +\|", why), why
    assert "- Happened: rolled back 16m49s into stage 1 at 5%: error_rate 2.14% > 1% (critical)" in report
    assert "paused 10m13s undecided" not in report


REGRESSED_CANARY = "name: regressed\nseed: 1\nstable: {error_rate: 0.0008, latency_p99_ms: 240, rps: 2000}\ncanary: {error_rate: 0.0028, latency_p99_ms: 245}\n"
"""3.5 times stable's errors, under every limit: the sequential judge rolls it back in the 5% stage."""


async def test_a_rollback_the_sequential_judge_decided_says_so_with_its_evidence(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    scenario = tmp_path / "regressed.yaml"
    scenario.write_text(REGRESSED_CANARY)
    controller = sim_controller(load_plan(SAMPLES / "canary.yaml"), tmp_path / "state", str(scenario))
    await controller.run()
    controller.journal.close()
    run = finished(controller.journal.path)
    assert run.of(ev.RollbackStarted)[0].trigger == "judge:error_rate"
    assert_opening(run)
    assert_plain_text(run.report)
    assert_renders(run.report)
    assert "judge:error_rate" not in run.report, "the trigger as a person says it, never its journal name"
    evidence = JudgeEvidence.from_journal(run.of(ev.SampleTaken)[-1].judge["error_rate"])
    why = flat(run.section("Why it was rolled back"))
    assert (
        "- Trigger: the sequential judge (error rate vs stable): evidence beyond doubt that the new version's errors exceed "
        "stable's by more than the plan's tolerance (analysis.tolerance), from the counts both tracks served over the whole "
        f"rollout ({evidence.e_value_said})" in why
    )
    threshold = f"{round(math.exp(evidence.log_threshold)):,}"
    assert re.search(rf"e-value [\d,]+ of the {threshold} that rolls back", why), "1/alpha: 100 for one e-process at alpha 1%"
    assert f"| error_rate | {format_metric_value('error_rate', run.of(ev.SampleTaken)[-1].metrics['error_rate']['canary'])} |" in flat(why)
    assert f"the sequential judge: errors {evidence.said()} of stable's" in why
    summary = run.section("Metrics Summary")
    rows = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")] for line in summary.splitlines() if line.startswith("| "))}
    assert rows["metric"] == ["metric", "before", "after", "change", "limit", "vs stable (judge)", "status"]
    assert rows["error_rate"][5] == evidence.said() and rows["latency_p99"][5].endswith("ms") and rows["cpu"][5] == "—", "only what the judge weighed"
    assert "Vs stable is the sequential judge's ratio" in flat(summary)
    assert "Rollback started by the sequential judge (error rate vs stable): errors " in run.section("Issues Encountered")


async def test_a_runbook_without_the_judges_evidence_has_no_column_for_it(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    controller = sim_controller(replace(load_plan(SAMPLES / "canary.yaml"), judge="threshold"), tmp_path, "error-spike")  # no judge to weigh them
    await controller.run()
    controller.journal.close()
    report = finished(controller.journal.path).report
    assert "## Metrics Summary" in report and "| error_rate " in report
    assert "vs stable (judge)" not in report and "sequential judge" not in report


def test_a_latencys_ratio_to_stable_names_the_bound_its_slow_requests_are_counted_past(tmp_path):
    """As a latency's evidence is journaled: the share of requests slower than a bound, canary against stable."""
    metrics = {"latency_p99": {"canary": 270.0, "stable": 245.0}}
    judge = {"latency_p99": {"ratio": 1.3, "low": 0.65, "high": 2.2, "log_e": 0.5, "log_threshold": 5.99, "bound_ms": 250}}
    journal = write_journal(
        tmp_path / "checkout-2.4.1.jsonl",
        [
            STARTED,
            ev.PreflightPassed(0.0),
            ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
            ev.SampleTaken(10.0, stage=0, metrics=metrics, requests=100.0, verdict="pass", judge=judge),
        ],
    )
    summary = finished(journal).section("Metrics Summary")
    row = next(line for line in summary.splitlines() if line.startswith("| latency_p99 "))
    assert "| ×1.3 [0.65–2.2] over 250ms |" in row
