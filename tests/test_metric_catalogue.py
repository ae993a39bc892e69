"""The built-in metrics are described once, and what reads the description agrees with it."""

from __future__ import annotations

import subprocess
import sys

from console.metric_catalogue import BUILTIN_METRICS, CATALOGUE, POD_HEALTH_METRICS, REQUEST_METRICS, TRAFFIC_METRICS
from console.metrics.prometheus import BUILTIN_QUERIES, REQUESTS_METRIC
from console.plan import defaults
from console.sim.metrics import SimMetricSource
from console.sim.scenario import load_scenario
from console.sim.target import SimTarget
from tests.conftest import ROOT


def test_the_catalogue_is_light_enough_for_the_first_frame():
    code = (
        "import sys\nimport console.metric_catalogue, console.units\n"
        "heavy = [m for m in ('pydantic', 'yaml', 'textual', 'console.plan', 'console.controller') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_default_limit_is_on_a_catalogued_metric():
    limits = [defaults.POST_DEPLOY, defaults.STAGE_1, defaults.STAGE_2, defaults.STAGE_3, defaults.CRITICAL, defaults.WARNING]
    assert {metric for limit in limits for metric in limit} <= BUILTIN_METRICS


def test_the_sources_give_what_the_catalogue_says_they_give(tmp_path):
    assert set(BUILTIN_QUERIES) - {REQUESTS_METRIC} == set(REQUEST_METRICS), "a built-in query for each metric read from requests"
    target = SimTarget("canary", "r/a:2", "r/a:1", 10, tmp_path / "sim.json")
    sample = SimMetricSource(load_scenario("healthy"), target).values_at(sorted(BUILTIN_METRICS), 0.0, 10.0)
    assert set(sample.values) == BUILTIN_METRICS, "the simulator measures every built-in metric"
    assert TRAFFIC_METRICS <= set(REQUEST_METRICS) and not TRAFFIC_METRICS & POD_HEALTH_METRICS
    assert all(metric.label and len(metric.label) <= 9 for metric in CATALOGUE.values()), "a label fits the table's metric column"
