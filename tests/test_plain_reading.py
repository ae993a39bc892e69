"""The plain reading of a plan (console/plan/plain_reading.py) gives what the loader's pydantic models give, or
leaves the plan to them: it never vouches for a plan they would refuse, nor reads one differently."""

from __future__ import annotations

import subprocess
import sys

import pytest

from console.plan.document import parse_document
from console.plan.loader import _as_written, _model, _normalise
from console.plan.model import PlanSpec
from console.plan.plain_reading import Unsure, read_plainly
from console.sim.scenario import ScenarioSpec
from tests.conftest import ROOT, SAMPLES

PLANS = sorted([*SAMPLES.glob("*.yaml"), *SAMPLES.glob("*.hcl")])
SCENARIOS = sorted([*(ROOT / "console" / "sim" / "scenarios").glob("*.yaml"), *(SAMPLES / "scenarios").glob("*.yaml")])
BASE = "app: checkout\nimage: r/checkout:2.4.1\n"
VALID = [
    "interval: 10\n",  # an int for a float: as a float
    "stages:\n  - {weight: 5, observe: 90}\n  - {weight: 100, observe: 1h30m}\n",
    "triggers:\n  critical: {error_rate: {when: '> 1%', consecutive: 2}, latency_p99: null}\n",
    "flags:\n  - name: f\n    schedule: [internal, 5, {step: 25, observe: 2d}, {step: internal}, 100]\n    internal_users: [a]\n",
    "analysis: {judge: threshold, min_coverage: 1, tolerance: 50%}\n",
    "target: {kind: kubernetes, deployment: checkout, replicas: 4}\nmetrics: {provider: prometheus, prometheus: {labels: {team: pay}}}\n",
]
REFUSED = [
    "interval: true\n",  # a switch is no number
    "stages:\n  - {weight: '5', observe: 10m}\n",  # nor is a string
    "stages:\n  - {weight: 5.0, observe: 10m}\n",  # a float is no int
    "stages:\n  - {weight: 5, observe: soon}\n",
    "stages:\n  - {weight: 5, observe: 10m, colour: red}\n",  # an unknown field
    "triggers:\n  critical: {error_rate: {when: '> 1%', consecutive: 0}}\n",  # out of bounds
    "analysis: {judge: bayesian}\n",
    "analysis: {min_coverage: 0}\n",
    "flags:\n  - schedule: [5]\n",  # a required field left out
    "flags:\n  - {name: f, schedule: [internl]}\n",
    "manual: 1\n",
]


def as_the_models_read_it(written, kind=PlanSpec):
    try:
        return repr(_as_written(_model(kind).model_validate(written)))
    except Exception as error:  # pydantic's ValidationError
        return f"refused: {type(error).__name__}"


def as_read_plainly(written, kind=PlanSpec):
    try:
        return repr(read_plainly(kind, written))
    except Unsure:
        return "unsure"


def written(text: str, source: str = "plan.yaml", hcl: bool = False):
    return _normalise(parse_document(source, text.encode(), hcl).data)


@pytest.mark.parametrize("path", PLANS, ids=lambda path: path.name)
def test_every_sample_plan_is_read_plainly_as_the_models_read_it(path):
    plan = written(path.read_text(), str(path), hcl=path.suffix == ".hcl")
    assert as_read_plainly(plan) == as_the_models_read_it(plan) != "unsure"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_scenario_is_read_plainly_as_the_models_read_it(path):
    scenario = parse_document(str(path), path.read_bytes(), False).data
    assert as_read_plainly(scenario, ScenarioSpec) == as_the_models_read_it(scenario, ScenarioSpec) != "unsure"


@pytest.mark.parametrize(
    "text",
    [
        "name: s\ncanary: {error_rate: 2}\n",
        "name: s\ncanary: {metrics: {error_rate: 0.1}}\n",
        "name: s\ncanary: {metrics: {orders: .inf}}\n",
        "name: s\nevents: [{at: soon, set: {}}]\n",
        "name: s\ncanary: {no_data: 1}\n",
    ],
)
def test_a_scenario_the_models_refuse_is_left_to_them(text):
    scenario = parse_document("s.yaml", text.encode(), False).data
    assert as_the_models_read_it(scenario, ScenarioSpec) == "refused: ValidationError"
    assert as_read_plainly(scenario, ScenarioSpec) == "unsure"


@pytest.mark.parametrize("text", VALID)
def test_a_valid_plan_is_read_plainly_as_the_models_read_it(text):
    plan = written(BASE + text)
    assert as_read_plainly(plan) == as_the_models_read_it(plan) != "unsure"


@pytest.mark.parametrize("text", REFUSED)
def test_a_plan_the_models_refuse_is_left_to_them(text):
    plan = written(BASE + text)
    assert as_the_models_read_it(plan) == "refused: ValidationError"
    assert as_read_plainly(plan) == "unsure"


def test_a_valid_plan_is_loaded_without_pydantic_and_a_bad_one_still_says_its_line():
    code = (
        "import sys\nfrom console.plan import load_plan, load_plan_text, PlanError\n"
        f"load_plan({str(SAMPLES / 'canary.yaml')!r})\nprint('pydantic' in sys.modules)\n"
        "try:\n    load_plan_text('app: a\\nimage: r/a:1\\ninterval: true\\n', 'bad.yaml')\nexcept PlanError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded_pydantic, *said = result.stdout.splitlines()
    assert loaded_pydantic == "False"
    assert any(line.startswith("bad.yaml:3: interval:") for line in said), said
