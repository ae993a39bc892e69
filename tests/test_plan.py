"""Plans: defaults, YAML and HCL as one model, and validation that names file, line and field."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import strict_json
from console.app.cli import main
from console.plan import PlanError, load_plan, load_plan_text
from console.plan.model import plan_from_plain
from tests.conftest import SAMPLES, plan_from


def problems(text: str, hcl: bool = False) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan_text(text, "plan.hcl" if hcl else "plan.yaml", hcl=hcl)
    return [str(p) for p in caught.value.problems]


def test_minimal_plan_takes_the_reference_defaults():
    plan = load_plan(SAMPLES / "minimal.yaml")
    assert plan.name == "checkout-2.4.1"
    assert plan.strategy == "canary"
    assert [(s.weight, s.observe) for s in plan.stages] == [(5, 600), (25, 900), (50, 1200), (100, 3600)]
    stage_3 = {c.metric: (c.op, c.value) for c in plan.stages[2].criteria}
    assert stage_3 == {"error_rate": ("<", 0.001), "latency_p99": ("<", 300), "success_rate": (">", 0.9995)}
    post = {c.metric for c in plan.stages[3].criteria}
    assert post == {"error_rate", "latency_p50", "latency_p95", "latency_p99", "success_rate"}
    critical = {t.check.metric: (t.check.op, t.check.value, t.check.consecutive) for t in plan.triggers if t.severity == "critical"}
    assert critical == {
        "error_rate": (">", 0.01, 1),
        "success_rate": ("<", 0.99, 1),
        "latency_p99": (">", 1000, 1),
        "health_check_failures": (">", 3, 1),
        "memory_oom_kills": (">", 0, 1),
    }
    warning = {t.check.metric: t.check.value for t in plan.triggers if t.severity == "warning"}
    assert warning == {"error_rate": 0.005, "latency_p99": 500, "cpu": 0.8, "memory": 0.85}
    assert (plan.interval, plan.pause_timeout, plan.min_requests) == (10, 900, 50)


def test_yaml_and_hcl_plans_are_the_same_plan():
    from_yaml, from_hcl = load_plan(SAMPLES / "canary.yaml"), load_plan(SAMPLES / "canary.hcl")
    assert from_yaml.stages == from_hcl.stages
    assert from_yaml.triggers == from_hcl.triggers
    assert (from_yaml.name, from_yaml.image, from_yaml.flags) == (from_hcl.name, from_hcl.image, from_hcl.flags)


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")) + ["canary.hcl"])
def test_every_sample_plan_is_valid(sample):
    assert main(["validate", str(SAMPLES / sample)]) == 0


def test_relative_checks_and_partial_stages():
    plan = plan_from("app: a\nimage: r/a:2\nstages:\n  - weight: 10\n    criteria: {latency_p99: '<= 1.2x stable'}\n")
    check = plan.stages[0].criteria[0]
    assert check.relative and check.value == 1.2
    assert check.holds(300, 260) is True and check.holds(320, 260) is False and check.holds(300, None) is None
    assert [s.weight for s in plan.stages] == [10, 100], "a plan that stops short of 100% gets the monitoring stage"


def test_strategies_have_their_own_default_stages():
    blue_green = plan_from("app: a\nimage: r/a:2\nstrategy: blue-green\n")
    rolling = plan_from("app: a\nimage: r/a:2\nstrategy: rolling\n")
    assert [s.weight for s in blue_green.stages] == [0, 100]
    assert [s.weight for s in rolling.stages] == [100]


def test_trigger_overrides_and_switching_a_default_off():
    plan = plan_from("app: a\nimage: r/a:2\ntriggers:\n  warning:\n    cpu: '> 90%'\n    memory: null\n")
    warning = {t.check.metric: (t.check.value, t.check.consecutive) for t in plan.triggers if t.severity == "warning"}
    assert warning["cpu"] == (0.9, 2)
    assert "memory" not in warning


def test_every_problem_is_reported_with_file_line_and_field():
    text = (
        "app: checkout\n"
        "image: r/c:1\n"
        "stages:\n"
        "  - weight: 5\n"
        "    criteria: {eror_rate: '< 2%', latency_p99: '< fast'}\n"
        "  - weight: 3\n"
        "  - weight: 300\n"
        "triggers:\n"
        "  critical:\n"
        "    signups: '< 3'\n"
    )
    assert problems(text) == [
        "plan.yaml:5: stages[0].criteria.eror_rate: metric 'eror_rate' is not defined by any provider (did you mean 'error_rate'?)",
        "plan.yaml:5: stages[0].criteria.latency_p99: expected a latency like 500ms or 0.5s, got 'fast'",
        "plan.yaml:6: stages[1].weight: weights must increase from stage to stage: 3 follows 5",
        "plan.yaml:7: stages[2].weight: a weight is a percentage from 0 to 100, got 300",
        "plan.yaml:10: triggers.critical.signups: metric 'signups' is not defined by any provider (define it under metrics.queries)",
    ]


@pytest.mark.parametrize(("strategy", "weights", "line", "index", "odd"), [("blue-green", "0, 50, 100", 7, 1, 50), ("rolling", "25, 100", 6, 0, 25)])
def test_a_cluster_plan_names_the_stage_its_strategy_cannot_honour(strategy, weights, line, index, odd):
    stages = "".join(f"  - weight: {w}\n" for w in weights.split(", "))
    text = f"app: web\nimage: r/web:2\nstrategy: {strategy}\ntarget: kubernetes\nstages:\n{stages}"
    allowed = "0% or 100%" if strategy == "blue-green" else "100%"
    assert problems(text) == [f"plan.yaml:{line}: stages[{index}].weight: a {strategy} release on Kubernetes takes stages at {allowed} only, not {odd}%"]
    assert load_plan_text(text.replace("target: kubernetes", "target: sim"), "plan.yaml").strategy == strategy, "the simulator can"


def test_unknown_keys_suggest_the_right_one():
    found = problems("app: a\nimage: r/a:2\nstratgy: canary\nstages:\n  - weight: 5\n    obsrve: 1m\n")
    assert found == [
        "plan.yaml:3: stratgy: unknown field (did you mean 'strategy'?)",
        "plan.yaml:6: stages[0].obsrve: unknown field (did you mean 'observe'?)",
    ]


def test_wrong_types_and_missing_fields():
    assert problems("app: [1]\nweight: 3\n") == [
        "plan.yaml:1: app: Input should be a valid string",
        "plan.yaml:1: image: is required",
        "plan.yaml:2: weight: unknown field",
    ]


def test_a_business_metric_defined_by_a_query_may_be_judged():
    plan = plan_from(
        "app: a\nimage: r/a:2\nmetrics:\n  queries: {checkout_conversion: 'sum(rate(orders{track=\"{track}\"}[1m]))'}\n"
        "stages:\n  - weight: 50\n    criteria: {checkout_conversion: '>= 0.95x stable'}\n"
    )
    assert "checkout_conversion" in plan.metric_names


def test_hcl_problems_name_their_lines():
    text = 'app = "a"\nimage = "r/a:1"\nstage {\n  weight = 5\n}\nstage {\n  weight = 2\n  criteria = {\n    latency_p99 = "< soon"\n  }\n}\n'
    assert problems(text, hcl=True) == [
        "plan.hcl:7: stages[1].weight: weights must increase from stage to stage: 2 follows 5",
        "plan.hcl:9: stages[1].criteria.latency_p99: expected a latency like 500ms or 0.5s, got 'soon'",
    ]


@pytest.mark.parametrize(
    "content, hcl, expected",
    [
        (b"", False, "plan.yaml:1: the plan is empty"),
        (b"   \n\n", False, "plan.yaml:1: the plan is empty"),
        (b"app: a\nimage: [unclosed\n", False, "plan.yaml:3: not valid YAML"),
        (b"- just\n- a list\n", False, "plan.yaml:1: a plan is a mapping"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", False, "plan.yaml:1: not a text file"),
        (b"app: a\nimage: b\x00\n", False, "plan.yaml:2: not a text file: it holds NUL bytes"),
        (b"\xff\xfe\xfa", False, "plan.yaml:1: not a text file"),
        (b'app = "a"\nstage {\n  weight = \n}\n', True, "plan.hcl:"),
    ],
)
def test_junk_never_raises_anything_but_plan_error(content, hcl, expected):
    with pytest.raises(PlanError) as caught:
        load_plan_text(content, "plan.hcl" if hcl else "plan.yaml", hcl=hcl)
    assert str(caught.value).startswith(expected)


def test_validate_command_exits_2_with_path_line_messages(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: a\nimage: r/a:1\ninterval: soon\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(bad), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:3: interval: expected a duration like 10m, 1h30m or 500ms, got 'soon'",
        f"{tmp_path}:1: is a directory, not a plan file",
    ]
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path):
    with pytest.raises(PlanError, match=r"nope.yaml:1: cannot read: No such file"):
        load_plan(tmp_path / "nope.yaml")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
plan_keys = st.sampled_from(
    [
        "app",
        "image",
        "strategy",
        "stages",
        "triggers",
        "interval",
        "analysis",
        "metrics",
        "target",
        "weight",
        "observe",
        "criteria",
        "critical",
        "warning",
        "flags",
        "preflight",
    ]
)
plan_like = st.dictionaries(plan_keys, json_values, max_size=8)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(plan_like)
def test_loader_never_crashes_on_structured_input(data):
    import yaml

    try:
        load_plan_text(yaml.safe_dump(data), "fuzz.yaml")
    except PlanError as error:
        assert error.problems and all(p.line >= 1 for p in error.problems)


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_loader_never_crashes_on_junk(raw):
    for hcl in (False, True):
        try:
            load_plan_text(raw, "fuzz", hcl=hcl)
        except PlanError:
            pass


def test_prometheus_plans_judge_only_what_the_provider_gives():
    plan = plan_from("app: a\nimage: r/a:2\ntarget: kubernetes\n")
    # Rates and latencies from Prometheus; pod health from the cluster itself.
    assert set(plan.metric_names) == {"error_rate", "success_rate", "latency_p50", "latency_p95", "latency_p99", "health_check_failures", "memory_oom_kills"}
    with pytest.raises(PlanError, match=r"test.yaml:6: triggers.warning.cpu: metric 'cpu' has no built-in prometheus query: add metrics.queries.cpu"):
        plan_from("app: a\nimage: r/a:2\ntarget: kubernetes\ntriggers:\n  warning:\n    cpu: '> 90%'\n")
    with_query = plan_from("app: a\nimage: r/a:2\ntarget: kubernetes\nmetrics:\n  queries: {cpu: 'avg(x)'}\ntriggers:\n  warning:\n    cpu: '> 90%'\n")
    assert "cpu" in with_query.metric_names


# -- input that cannot be misused: bounded documents, no key twice, strict numbers -------------------

LAUGHS = "".join(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi"))
ALIAS_BOMB = (
    'app: checkout\nimage: r/checkout:2.4.1\nmetrics:\n  queries:\n    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join("    " + line + "\n" for line in LAUGHS.splitlines())
)


def test_an_alias_bomb_is_refused_without_expanding_it():
    assert len(ALIAS_BOMB) < 1024, "a 1 KB plan expanding to 9^9 nodes"
    found = problems(ALIAS_BOMB)
    assert len(found) == 1 and "aliases repeat more than 10000 nodes; write the plan out instead" in found[0]
    assert found[0].startswith("plan.yaml:5: metrics.queries.")


def test_an_alias_inside_itself_is_refused():
    assert problems("app: a\nimage: r/a:2\nstages: &loop [*loop]\n") == [
        "plan.yaml:3: stages[0]: an alias refers to a node that holds it: the document would never end"
    ]


def test_aliases_and_merge_keys_that_stay_small_are_plans_like_any_other():
    plan = plan_from(
        "app: a\nimage: r/a:2\nstages:\n"
        "  - &first {weight: 5, observe: 1m, criteria: &criteria {error_rate: '< 0.5%'}}\n"
        "  - {<<: *first, weight: 25, criteria: *criteria}\n"
        "  - {<<: *first, weight: 50, name: half}\n"
    )
    assert [(s.weight, s.observe, s.name) for s in plan.stages[:3]] == [(5, 60, "stage 1"), (25, 60, "stage 2"), (50, 60, "half")]
    assert problems("app: a\nimage: r/a:2\nstages:\n  - &first {weight: 5}\n  - {<<: *first,\n     weight: 300}\n") == [
        "plan.yaml:6: stages[1].weight: a weight is a percentage from 0 to 100, got 300"
    ], "a key written beside a merge is placed on its own line"


@pytest.mark.parametrize(
    ("text", "hcl", "expected"),
    [
        ("app: a\nimage: r/a:2\nx: " + "[" * 100 + "]" * 100 + "\n", False, "plan.yaml:3: x" + "[0]" * 32 + ": nested more than 32 levels deep"),
        ("app: a\nimage: r/a:2\nx: " + "[" * 5000 + "]" * 5000 + "\n", False, "plan.yaml:3: not valid YAML: exceeded maximum nesting depth"),
        ("app: a\nimage: r/a:2\n" + "".join(f"{'  ' * n}k{n}:\n" for n in range(40)) + "\n", False, "plan.yaml:36: k0.k1.k2"),
        ('app = "a"\nimage = "r/a:2"\nx = ' + "[" * 5000 + "]" * 5000 + "\n", True, "plan.hcl:3: x" + "[0]" * 32 + ": nested more than 32 levels deep"),
        ('app = "a"\nimage = "r/a:2"\nx = ' + "(" * 3000 + "1" + ")" * 3000 + "\n", True, "plan.hcl:1: nested more than 32 levels deep"),
    ],
    ids=["yaml-flow-100", "yaml-flow-5000", "yaml-block-40", "hcl-tuples-5000", "hcl-parentheses-3000"],
)
def test_deep_nesting_is_a_problem_at_its_line_not_a_recursion_error(text, hcl, expected):
    found = problems(text, hcl)
    assert found[0].startswith(expected), found


def test_without_libyaml_deep_nesting_is_still_a_problem(monkeypatch):
    import yaml

    from console.plan import document

    monkeypatch.setattr(document, "_YamlLoader", yaml.SafeLoader)  # its composer recurses once per level
    assert problems("app: a\nimage: r/a:2\nx: " + "[" * 900 + "]" * 900 + "\n") == ["plan.yaml:1: nested more than 32 levels deep"]


@pytest.mark.parametrize(("hcl", "limit"), [(False, 1 << 20), (True, 64 << 10)])
def test_a_document_past_its_size_limit_is_refused_before_it_is_parsed(hcl, limit):
    filler = "# " + "x" * 78 + "\n"
    head = 'app = "a"\nimage = "r/a:2"\n' if hcl else "app: a\nimage: r/a:2\n"
    text = head + filler * ((limit - len(head)) // len(filler))
    assert len(text.encode()) <= limit
    load_plan_text(text, "plan.hcl" if hcl else "plan.yaml", hcl=hcl)
    kind = "an HCL plan" if hcl else "a plan or scenario"
    assert problems(text + filler, hcl) == [f"plan.{'hcl' if hcl else 'yaml'}:1: larger than {limit >> 10} KiB, the most {kind} may be"]


def test_a_file_past_the_limit_is_not_read_whole(tmp_path):
    assert str(pytest.raises(PlanError, load_plan, "/dev/zero").value) == "/dev/zero:1: larger than 1024 KiB, the most a plan or scenario may be"
    scenario = tmp_path / "big.yaml"
    scenario.write_text("name: big\nseed: 1\n" + "#\n" * (1 << 20))
    from console.sim.scenario import load_scenario

    with pytest.raises(PlanError, match=r"big.yaml:1: larger than 1024 KiB"):
        load_scenario(str(scenario))


def test_a_key_written_twice_names_both_lines():
    assert problems("app: a\nimage: r/a:2\nstages:\n  - weight: 5\n    observe: 1m\n    weight: 50\napp: b\n") == [
        "plan.yaml:6: stages[0].weight: written twice, on lines 4 and 6: keep one",
        "plan.yaml:7: app: written twice, on lines 1 and 7: keep one",
    ]
    assert problems('app: a\nimage: r/a:2\ntriggers:\n  critical: {error_rate: "> 1%", "error_rate": "> 5%"}\n') == [
        "plan.yaml:4: triggers.critical.error_rate: written twice, on lines 4 and 4: keep one"
    ]
    assert plan_from("app: a\nimage: r/a:2\nstages:\n  - {weight: 5}\n  - {weight: 50}\n").stages[1].weight == 50, "the same key in two mappings is fine"


def test_an_hcl_name_set_twice_names_both_lines():
    text = (
        'app = "a"\nimage = "r/a:2"\n'
        "stage {\n  weight = 5\n  weight = 50\n}\n"
        "analysis {\n  min_requests = 5\n}\nanalysis {\n  min_requests = 6\n}\n"
        'metrics {\n  queries = {\n    cpu = "avg(x{track=\\"{track}\\"})"\n    "cpu" = "avg(y)"\n  }\n}\n'
        "stages = []\n"
    )
    assert problems(text, hcl=True) == [
        "plan.hcl:5: stages[0].weight: written twice, on lines 4 and 5: keep one",
        "plan.hcl:10: analysis: written twice, on lines 7 and 10: keep one",
        "plan.hcl:16: metrics.queries.cpu: written twice, on lines 15 and 16: keep one",
        "plan.hcl:19: stages: written twice, on lines 3 and 19: keep one",
    ]
    assert [s.weight for s in load_plan(SAMPLES / "canary.hcl").stages] == [5, 25, 50, 100], "repeated stage blocks are the list of stages"


def test_the_duplicate_that_once_ran_50_percent_is_refused_by_validate(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("app: checkout\nimage: r/checkout:2.4.1\nstages:\n  - weight: 5\n    weight: 50\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"{plan}:5: stages[0].weight: written twice, on lines 4 and 5: keep one\n"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stages:\n  - weight", "true", "stages[0].weight: Input should be a valid integer"),
        ("stages:\n  - weight", "5.0", "stages[0].weight: Input should be a valid integer"),
        ("stages:\n  - weight", "'5'", "stages[0].weight: Input should be a valid integer"),
        ("analysis:\n  min_requests", "true", "analysis.min_requests: Input should be a valid integer"),
        ("analysis:\n  min_coverage", "true", "analysis.min_coverage: Input should be a valid number"),
        (
            "triggers:\n  critical:\n    error_rate: {when: '> 1%', consecutive",
            "true}",
            "triggers.critical.error_rate.consecutive: Input should be a valid integer",
        ),
        ("target:\n  replicas", "true", "target.replicas: Input should be a valid integer"),
        ("manual", "1", "manual: Input should be a valid boolean"),
        ("flags:\n  - name: f\n    schedule", "[5, true]", "flags[0].schedule[1]: Input should be a valid integer"),
    ],
)
def test_a_number_is_a_number_and_a_switch_is_true_or_false(field, value, message):
    found = problems(f"app: a\nimage: r/a:2\n{field}: {value}\n")
    assert any(p.endswith(message) for p in found), found


def test_a_scenario_takes_numbers_not_switches(tmp_path):
    from console.sim.scenario import load_scenario

    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nseed: true\ncanary: {error_rate: true}\n")
    with pytest.raises(PlanError) as caught:
        load_scenario(str(scenario))
    assert [str(p) for p in caught.value.problems] == [
        f"{scenario}:2: seed: Input should be a valid integer",
        f"{scenario}:3: canary.error_rate: Input should be a valid number",
    ]


# -- release names, warnings, the flag file -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../escaped", "a release name takes letters, digits, '.', '-' and '_' only, not '/'"),
        ("/tmp/elsewhere/abs", "a release name takes letters, digits, '.', '-' and '_' only, not '/'"),
        ("a/b", "a release name takes letters, digits, '.', '-' and '_' only, not '/'"),
        ('"a\\0b"', "a release name takes letters, digits, '.', '-' and '_' only, not '\\x00'"),
        ("x" * 300, "a release name has at most 63 characters (it names files in the state dir), not 300"),
        ("x" * 64, "a release name has at most 63 characters (it names files in the state dir), not 64"),
        ("flags", "'flags' is taken by the state dir itself (flags, brahma-error are reserved)"),
        ("brahma-error", "'brahma-error' is taken by the state dir itself (flags, brahma-error are reserved)"),
        (".hidden", "a release name starts with a letter or a digit"),
        ("-x", "a release name starts with a letter or a digit"),
        ("checkout.20261201T000000", "a release name cannot end like an archived journal's time stamp (.YYYYMMDDTHHMMSS)"),
        ("'café'", "a release name takes letters, digits, '.', '-' and '_' only, not 'é'"),
        ("''", "a release name cannot be empty"),
    ],
)
def test_a_release_name_is_fit_to_name_files(name, message):
    assert problems(f"app: checkout\nimage: r/checkout:2.4.1\nname: {name}\n") == [f"plan.yaml:3: name: {message}"]


def test_names_that_are_fine():
    for name in ("checkout-2.4.1", "Checkout_2.4.1-rc.1", "x" * 63, "9lives"):
        assert plan_from(f"app: checkout\nimage: r/checkout:2.4.1\nname: {name}\n").name == name


def test_a_name_made_from_an_image_tag_that_cannot_be_one_says_to_write_name():
    digest = "sha256:" + "a" * 64
    assert problems(f"app: checkout\nimage: r/checkout@{digest}\n") == [
        f"plan.yaml:2: image: app and the image's tag make the release name 'checkout-{'a' * 64}', which cannot name the rollout's files: "
        f"a release name has at most 63 characters (it names files in the state dir), not 73; give the plan a name, e.g. `name: checkout-{'a' * 54}`"
    ]
    assert problems("app: my app\nimage: r/checkout:2.4.1\n") == [
        "plan.yaml:2: image: app and the image's tag make the release name 'my app-2.4.1', which cannot name the rollout's files: "
        "a release name takes letters, digits, '.', '-' and '_' only, not ' '; give the plan a name, e.g. `name: my-app-2.4.1`"
    ]
    assert plan_from(f"app: checkout\nimage: r/checkout@{digest}\nname: checkout-2\n").name == "checkout-2"


def test_the_longest_name_fits_every_file_it_names_even_in_a_deep_state_dir(tmp_path):
    import os
    import socket

    from console.journal.state_dir import RolloutFiles
    from console.plan.names import RELEASE_NAME_MAX
    from console.supervisor.files import socket_address

    deep = tmp_path.joinpath(*["d" * 50] * 4)
    deep.mkdir(parents=True)
    files = RolloutFiles(deep, "n" * RELEASE_NAME_MAX)
    archived = RolloutFiles(deep, f"{files.name}.20261201T000000")
    kept = (
        files.journal,
        files.sim_state,
        files.sim_flags,
        files.lock,
        files.socket,
        files.log,
        files.launch,
        files.report,
        archived.journal,
        archived.sim_state,
    )
    names = [path.name for path in kept]
    assert max(len(name) for name in names) <= os.pathconf(deep, "PC_NAME_MAX")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with socket_address(files.socket) as address:
            server.bind(address)
            server.listen()
            client.connect(address)
    finally:
        client.close()
        server.close()


def test_a_custom_query_that_cannot_tell_canary_from_stable_is_a_warning():
    plan = plan_from(
        "app: a\nimage: r/a:2\nmetrics:\n  queries:\n"
        "    cpu: 'avg(rate(cpu_seconds_total{app=\"a\"}[1m]))'\n"
        "    memory: 'avg(memory{{matchers}})'\n"
        "    signups: 'sum(rate(signups{track=\"{track}\"}[{window}]))'\n"
    )
    assert [p.as_warning() for p in plan.warnings] == [
        "test.yaml:5: warning: metrics.queries.cpu: the query has no {track} (nor {matchers}): canary and stable read the same series, "
        "so the canary is never told apart from stable"
    ]
    assert plan_from("app: a\nimage: r/a:2\n").warnings == ()


def test_validate_prints_warnings_and_still_passes(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("app: a\nimage: r/a:2\nmetrics:\n  queries: {cpu: 'avg(cpu)'}\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"{plan}:4: warning: metrics.queries.cpu: the query has no {{track}}") and result.stderr.count("\n") == 1
    assert "valid: canary of r/a:2" in result.stdout


def test_the_flag_file_must_be_a_flag_file_or_none_yet(tmp_path):
    (tmp_path / "flags.json").write_text('{"flags": {}}\n')
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    (tmp_path / "link").symlink_to("/dev/null")
    cases = {
        str(tmp_path): f"{tmp_path} is a directory, not a flag file",
        "/dev/null": "/dev/null is under /dev: a kernel interface, not a flag file",
        str(tmp_path / "link"): f"{tmp_path / 'link'} is under /dev: a kernel interface, not a flag file",
        "/proc/self/environ": "/proc/self/environ is under /proc: a kernel interface, not a flag file",
        str(
            tmp_path / "notes.txt"
        ): f"{tmp_path / 'notes.txt'} is not a flagd flag file (line 1: invalid JSON: Expecting value (column 1)): name the flag file your apps read",
    }
    for path, message in cases.items():
        assert problems(f"app: a\nimage: r/a:2\nflags_file: {path}\n") == [f"plan.yaml:3: flags_file: {message}"]
    for fine in (tmp_path / "flags.json", tmp_path / "not-yet.json"):
        assert plan_from(f"app: a\nimage: r/a:2\nflags_file: {fine}\n").flags_file == str(fine)


def test_a_bare_number_on_a_percentage_is_refused_with_what_to_write():
    """`< 5` was read as a ratio (500%): a canary failing 19% of its requests was promoted."""
    text = (
        "app: a\nimage: r/a:2\nstages:\n  - weight: 5\n    criteria:\n"
        "      error_rate: '< 5'\n      success_rate: '> 0.95'\n      cpu: '< 150%'\n"
        "triggers:\n  critical:\n    error_rate: '> 5'\n  warning:\n    memory: {when: '> 85', consecutive: 2}\n"
    )
    assert problems(text) == [
        "plan.yaml:6: stages[0].criteria.error_rate: error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent",
        "plan.yaml:7: stages[0].criteria.success_rate: success_rate is a percentage and '0.95' has no unit: write \"95%\" if 0.95 is a "
        'fraction, "0.95%" if it is a percentage, or declare metrics.units.success_rate: fraction to write this metric\'s limits as fractions',
        "plan.yaml:8: stages[0].criteria.cpu: a percentage is from 0% to 100%, got '150%'",
        "plan.yaml:11: triggers.critical.error_rate.when: error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent",
        "plan.yaml:13: triggers.warning.memory.when: memory is a percentage and '85' has no unit: write \"85%\" for 85 percent",
    ]


def test_fractions_are_read_where_the_plan_says_its_limits_are_fractions():
    plan = plan_from(
        "app: a\nimage: r/a:2\nmetrics:\n  units: {error_rate: fraction}\n"
        "stages:\n  - weight: 5\n    criteria: {error_rate: '< 0.05', success_rate: '> 99%'}\n"
        "triggers:\n  critical:\n    error_rate: '> 0.1'\n"
    )
    assert [c.describe() for c in plan.stages[0].criteria] == ["< 5%", "> 99%"]
    assert next(t.check.value for t in plan.triggers if t.check.metric == "error_rate" and t.severity == "critical") == 0.1
    assert problems("app: a\nimage: r/a:2\nmetrics:\n  units: {error_rate: fraction}\ntriggers:\n  critical:\n    error_rate: '> 5'\n") == [
        "plan.yaml:7: triggers.critical.error_rate.when: error_rate's limits are fractions from 0 to 1 (metrics.units.error_rate: fraction), "
        "got '5': write 0.05 for 5%, or \"5%\""
    ]


def test_only_percentages_take_a_unit_and_a_unit_nothing_judges_is_a_warning():
    assert problems("app: a\nimage: r/a:2\nmetrics:\n  units: {latency_p99: percent, memory_oom_kills: fraction, cpu: ratio}\n") == [
        "plan.yaml:4: metrics.units.cpu: Input should be 'percent' or 'fraction'",
    ]
    assert problems("app: a\nimage: r/a:2\nmetrics:\n  units:\n    latency_p99: percent\n    memory_oom_kills: fraction\n    throughput: percent\n") == [
        "plan.yaml:5: metrics.units.latency_p99: latency_p99 is in milliseconds, not a percentage: only percentages take a unit",
        "plan.yaml:6: metrics.units.memory_oom_kills: memory_oom_kills is a count, not a percentage: only percentages take a unit",
        "plan.yaml:7: metrics.units.throughput: throughput is in requests per second, not a percentage: only percentages take a unit",
    ]
    plan = plan_from("app: a\nimage: r/a:2\nmetrics:\n  units: {paymnet_success_rate: percent}\n")
    assert [p.as_warning() for p in plan.warnings] == [
        "test.yaml:4: warning: metrics.units.paymnet_success_rate: no stage or trigger judges paymnet_success_rate: is its name the one the limits use?"
    ]


def test_a_business_metric_declared_a_percentage_reads_its_limits_as_written():
    business = "stages:\n  - weight: 5\n    criteria: {payment_success_rate: '> 98%'}\n"
    plan = plan_from(f"app: a\nimage: r/a:2\nmetrics:\n  units: {{payment_success_rate: percent}}\n{business}")
    check = plan.stages[0].criteria[-1]
    assert (check.metric, check.describe(), check.value) == ("payment_success_rate", "> 98%", pytest.approx(0.98))
    assert "payment_success_rate" in plan.metric_names, "the simulator takes a business metric the plan declares"
    assert problems(f"app: a\nimage: r/a:2\nmetrics:\n  provider: sim\n  queries: {{payment_success_rate: 'x{{track=\"{{track}}\"}}'}}\n{business}") == [
        "plan.yaml:8: stages[0].criteria.payment_success_rate: expected a number, got '98%': a percentage on payment_success_rate needs "
        "its unit declared (metrics.units.payment_success_rate: percent, its values fractions from 0 to 1)"
    ]
    assert problems(f"app: a\nimage: r/a:2\nmetrics:\n  provider: prometheus\n  units: {{payment_success_rate: percent}}\n{business}") == [
        "plan.yaml:8: stages[0].criteria.payment_success_rate: metric 'payment_success_rate' has no built-in prometheus query: "
        "add metrics.queries.payment_success_rate"
    ]


def test_validate_prints_every_limit_as_it_was_read(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "app: a\nimage: r/a:2\nstages:\n  - weight: 5\n    observe: 5m\n    criteria: {error_rate: '< 5%'}\n"
        "triggers:\n  critical: {error_rate: '> 1%', success_rate: null, latency_p99: null, health_check_failures: null, memory_oom_kills: null}\n"
        "  warning: {cpu: {when: '> 90%', consecutive: 3}, error_rate: null, latency_p99: null, memory: null}\n"
    )
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  stage 1 (5%, 5m): error_rate < 5% (must)",
        "  monitoring (100%, 1h): error_rate < 0.1% (must), latency_p50 < 100ms (must), latency_p95 < 200ms (must), "
        "latency_p99 < 500ms (must), success_rate > 99.95% (must)",
        "  every sample: rolls back if error_rate > 1%",
        "  every sample: pauses if cpu > 90% (3 in a row)",
        "  judge: sequential (alpha 1%, tolerance 20%, floor 0.01%): rolls back once sure the new version fails over 1.2× as often as stable",
    ]


@pytest.mark.parametrize(
    ("analysis", "said"),
    [
        (
            "{alpha: 0.05, tolerance: 50%, floor: 0.1%}",
            "judge: sequential (alpha 5%, tolerance 50%, floor 0.1%): rolls back once sure the new version fails over 1.5× as often as stable",
        ),
        ("{judge: threshold}", "judge: threshold: the limits alone decide"),
    ],
)
def test_validate_prints_the_judge_as_it_was_read(tmp_path, analysis, said):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"app: a\nimage: r/a:2\nanalysis: {analysis}\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"  {said}"


def test_validate_of_a_bare_percentage_exits_2_naming_its_line(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("app: a\nimage: r/a:2\nstages:\n  - weight: 5\n    criteria: {error_rate: '< 5'}\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "validate", str(plan)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"{plan}:5: stages[0].criteria.error_rate: error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent\n"


# -- the Prometheus source's count queries -----------------------------------------------------------

COUNTS_PLAN = "app: a\nimage: r/a:2\ntarget: kubernetes\nmetrics:\n  counts:\n"


def test_count_queries_are_read_into_the_plan():
    plan = plan_from(
        COUNTS_PLAN + "    requests: 'grpc_server_handled_total{{matchers}}'\n    errors: 'grpc_server_handled_total{{matchers},grpc_code!=\"OK\"}'\n"
    )
    assert plan.metrics.counts.requests == "grpc_server_handled_total{{matchers}}"
    assert plan.metrics.counts.errors == 'grpc_server_handled_total{{matchers},grpc_code!="OK"}'
    assert plan.metrics.counts.latency_buckets is None, "left out: the built-in query"
    assert plan.warnings == ()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("' '", "a count query selects the counters, e.g. http_requests_total{{matchers}}"),
        ("'x{{matchers}}[{window}]'", "unknown placeholder {window}: a count query may use {app}, {track} and {matchers}"),
        ("'requests_total{app=\"{app}\"}'", "the query has no {track} (nor {matchers}): canary and stable would be counted on the same series"),
        (
            "'rate(requests_total{{matchers}}[1m])'",
            "rate() gives no counter: select the counters themselves (cumulative, as exported); Brahma takes their increase between samples",
        ),
        ("'increase (requests_total{{matchers}}[1m])'", "increase() gives no counter"),
    ],
)
def test_a_count_query_that_gives_no_counters_of_one_track_is_refused_at_its_line(query, message):
    found = problems(COUNTS_PLAN + f"    errors: {query}\n")
    assert len(found) == 1
    assert found[0].startswith("plan.yaml:6: metrics.counts.errors: " + message)


def test_a_misspelt_count_is_refused_with_the_right_name():
    found = problems(COUNTS_PLAN + "    latency_bucket: 'x{{matchers}}'\n")
    assert found == ["plan.yaml:6: metrics.counts.latency_bucket: unknown field (did you mean 'latency_buckets'?)"]


def test_summed_counters_are_a_warning():
    plan = plan_from(COUNTS_PLAN + "    requests: 'sum by (code) (http_requests_total{{matchers}})'\n")
    assert [p.as_warning() for p in plan.warnings] == [
        "test.yaml:6: warning: metrics.counts.requests: summed counters hide a reset of one of them "
        "(a pod that restarts counts its whole history again): select the series as exported"
    ]


def test_count_queries_beside_the_simulator_are_a_warning():
    plan = plan_from("app: a\nimage: r/a:2\nmetrics:\n  counts:\n    requests: 'x{{matchers}}'\n")
    assert [p.as_warning() for p in plan.warnings] == [
        "test.yaml:4: warning: metrics.counts: count queries are Prometheus': the sim provider does not read them"
    ]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.*") if p.suffix in (".yaml", ".hcl")))
def test_a_compiled_plan_comes_back_whole_from_its_json_as_the_controller_serves_it(sample):
    plan = load_plan(SAMPLES / sample)
    assert plan_from_plain(json.loads(strict_json.dumps(dataclasses.asdict(plan)))) == plan


def test_reading_a_compiled_plan_imports_neither_pydantic_nor_the_loader():
    code = (
        "import json, sys\nfrom console.plan.model import plan_from_plain\n"
        "plan_from_plain(json.loads(sys.stdin.read()))\n"
        "print(json.dumps([m for m in ('pydantic', 'yaml', 'console.plan.loader') if m in sys.modules]))\n"
    )
    served = strict_json.dumps(dataclasses.asdict(load_plan(SAMPLES / "canary-gated.yaml")))
    result = subprocess.run([sys.executable, "-c", code], input=served, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_flag_step_may_have_a_window_of_its_own_beside_the_plain_ones():
    plan = load_plan(SAMPLES / "flags-week.yaml")
    steps = [(stage.flag_step.percentage, stage.flag_step.users, stage.observe) for stage in plan.stages if stage.flag_step]
    day = 86400.0
    assert steps == [(0, ("alice", "bob"), day), (5, ("alice", "bob"), day)] + [
        (share, ("alice", "bob"), observe) for share, observe in ((25, 2 * day), (50, 2 * day), (100, day / 2))
    ], "internal users stay on as the shares rise"
    assert plan.planned_duration == pytest.approx(6.5 * day + 6300)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("[internal, {step: 5, observe: 2x}]", ["plan.yaml:6: flags[0].schedule[1].observe: expected a duration like 10m, 1h30m or 500ms, got '2x'"]),
        ("[{step: 5, obsrve: 1d}]", ["plan.yaml:6: flags[0].schedule[0].obsrve: unknown field (did you mean 'observe'?)"]),
        ("[{observe: 1d}]", ["plan.yaml:6: flags[0].schedule[0].step: is required"]),
        ("[{step: 50}, {step: 25, observe: 1d}]", ["plan.yaml:6: flags[0].schedule[1].step: enablement steps must rise to at most 100%: 25 follows 50"]),
    ],
)
def test_a_flag_step_written_in_full_is_refused_at_its_field_alone(schedule, expected):
    assert problems(f"app: a\nimage: r/a:2\nflags:\n  - name: f\n    internal_users: [x]\n    schedule: {schedule}\n") == expected


def test_a_flag_step_written_in_full_on_lines_of_its_own_is_refused_at_its_line():
    text = "app: a\nimage: r/a:2\nflags:\n  - name: f\n    schedule:\n      - 5\n      - step: 25\n        observe: 2days\n"
    assert problems(text) == ["plan.yaml:8: flags[0].schedule[1].observe: expected a duration like 10m, 1h30m or 500ms, got '2days'"]


def test_a_plain_step_is_kept_as_written_so_the_digest_of_an_older_plan_is_unchanged():
    plain = plan_from("app: a\nimage: r/a:2\nflags:\n  - name: f\n    schedule: [5, 50]\n    step_observe: 1h\n")
    in_full = plan_from("app: a\nimage: r/a:2\nflags:\n  - name: f\n    schedule: [5, {step: 50, observe: 1h}]\n    step_observe: 1h\n")
    assert [s.observe for s in plain.stages] == [s.observe for s in in_full.stages]
    assert plain.flags[0].schedule == [5, 50], "a plain step stays a plain number: journals of older plans resume without 'changed since'"
