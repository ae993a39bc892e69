"""A plan's business metric on the simulator: its values from the scenario file, its limits as written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from console.plan.problems import PlanError
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.target import SimTarget
from tests.conftest import ROOT, SAMPLES, plan_from


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "payments.yaml"
    path.write_text(
        "name: payments\nstable: {metrics: {payment_success_rate: 0.995, basket_eur: 41}}\n"
        "canary: {metrics: {payment_success_rate: 0.99}}\n"
        "events:\n  - {at: 10m, track: canary, set: {metrics: {payment_success_rate: 0.9}}, over: 10m}\n"
    )
    return path


def source(scenario, tmp_path, weight: int = 25) -> SimMetricSource:
    target = SimTarget("canary", "r/p:2", "r/p:1", 10, tmp_path / "sim.json")
    target.cluster.new_deployed, target.cluster.weight = True, weight
    return SimMetricSource(scenario, target)


def test_a_scenario_gives_business_metrics_to_each_track_and_events_move_them(scenario_file, tmp_path):
    metrics = source(load_scenario(str(scenario_file)), tmp_path)
    names = ["payment_success_rate", "basket_eur", "error_rate"]
    before = metrics.values_at(names, 60, 10)
    assert before.values["payment_success_rate"].canary == 0.99 and before.values["payment_success_rate"].stable == 0.995
    assert before.values["basket_eur"].canary == before.values["basket_eur"].stable == 41, "canary follows stable unless set"
    assert before.errors == ()
    halfway = metrics.values_at(names, 15 * 60, 10)
    assert halfway.values["payment_success_rate"].canary == pytest.approx(0.945), "over: 10m moves it gradually"
    assert halfway.values["payment_success_rate"].stable == 0.995


def test_a_business_metric_the_scenario_lacks_has_no_data_and_says_why(tmp_path):
    sample = source(load_scenario("healthy"), tmp_path).values_at(["payment_success_rate", "error_rate"], 60, 10)
    assert sample.values["payment_success_rate"].canary is None and sample.values["payment_success_rate"].stable is None
    assert sample.values["error_rate"].canary is not None
    assert sample.errors == ("the scenario gives payment_success_rate no values",)


def test_a_scenario_s_business_metrics_are_numbers_and_never_a_built_in_s_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nstable:\n  metrics: {payment_success_rate: true}\ncanary:\n  metrics: {error_rate: 0.5}\n")
    with pytest.raises(PlanError) as caught:
        load_scenario(str(path))
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:3: stable.metrics.payment_success_rate: Input should be a valid number",
        f"{path}:5: canary.metrics: error_rate is built in: set it beside metrics, not in them",
    ]


async def test_a_canary_failing_payments_is_rolled_back_by_its_business_limit(tmp_path, scenario_file):
    from tests.conftest import sim_controller

    plan = plan_from(
        "app: p\nimage: r/p:2\nmetrics:\n  units: {payment_success_rate: percent}\n"
        "stages:\n  - weight: 25\n    observe: 30m\n    criteria: {payment_success_rate: '> 98%'}\n"
        "triggers:\n  critical: {payment_success_rate: '< 95%'}\n"
    )
    controller = sim_controller(plan, tmp_path, str(scenario_file))
    assert await controller.run() == "rolled_back"
    assert controller.state.rollback_reason.startswith("payment_success_rate 9") and "% < 95% (critical)" in controller.state.rollback_reason


def test_the_sample_business_plan_runs_on_the_simulator_and_rolls_back_on_payments(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "console.app", "run", str(SAMPLES / "payments.yaml"), "--headless", "--fast", "--json", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    rollback = next(e for e in events if e["event"] == "rollback_started")
    assert rollback["trigger"] == "payment_success_rate" and rollback["reason"].endswith("% < 95% (critical)")
    report = (tmp_path / "payments-3.1.0.md").read_text()
    assert "| payment_success_rate | 99.4%" in report, "its values shown as the percentages its limits are"


def test_a_run_says_when_its_scenario_gives_a_judged_business_metric_no_values(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.app",
            "run",
            str(SAMPLES / "payments.yaml"),
            "--headless",
            "--fast",
            "--scenario",
            "healthy",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert "brahma: warning: the scenario healthy gives no values for payment_success_rate: its samples are inconclusive, never a pass" in result.stderr
    assert result.returncode == 3, "inconclusive past its limit pauses, and a headless pause rolls back"
