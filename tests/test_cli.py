"""The command line's contracts: exit codes, JSON lines, the report, and no textual on the headless path."""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console import strict_json
from tests.conftest import ROOT, SAMPLES
from tests.test_report import SECTIONS


def brahma(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.app", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "scenario, code, last",
    [
        ("healthy", 0, "completed"),
        ("error-spike", 3, "rolled_back"),
        ("latency-creep", 3, "rolled_back"),
        ("no-data", 3, "rolled_back"),
        ("flapping", 3, "rolled_back"),  # under the limits' consecutive-breach limit, but the sequential judge counts the blips' errors
    ],
)
def test_headless_exit_codes_and_json_lines(tmp_path, scenario, code, last):
    result = brahma("run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--json", "--scenario", scenario, "--state-dir", str(tmp_path))
    assert result.returncode == code, result.stderr
    events = [strict_json.loads(line) for line in result.stdout.splitlines()]
    assert all({"event", "t", "ts"} <= e.keys() for e in events)
    assert events[-1]["event"] == last
    report = (tmp_path / "checkout-2.4.1.md").read_text()
    assert report.startswith("# Release checkout-2.4.1")


@pytest.mark.parametrize("speed", ["nan", "inf", "0", "-2"])
def test_a_speed_that_is_no_pace_is_refused(tmp_path, speed):
    result = brahma("run", str(SAMPLES / "canary.yaml"), "--headless", "--json", f"--speed={speed}", "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert f"argument --speed: expected a positive number of times real time, not '{speed}'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


def test_a_headless_run_stopped_by_sigterm_mid_stage_is_an_interruption_with_its_report(tmp_path):
    import signal

    run = [sys.executable, "-m", "console.app", "run", str(SAMPLES / "canary.yaml"), "--headless", "--json", "--state-dir", str(tmp_path)]
    process = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        while json.loads(process.stdout.readline())["event"] != "traffic_shifted":
            pass
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and "interrupted; the journal keeps where the rollout was" in stderr
    assert (tmp_path / "checkout-2.4.1.md").read_text().startswith("# Release checkout-2.4.1: unfinished (running)")


def test_error_spike_report_has_the_incident(tmp_path):
    brahma("run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--scenario", "error-spike", "--state-dir", str(tmp_path))
    journal = tmp_path / "checkout-2.4.1.jsonl"
    (tmp_path / "checkout-2.4.1.md").unlink()
    result = brahma("report", str(journal))
    assert result.returncode == 0
    report = (tmp_path / "checkout-2.4.1.md").read_text()
    assert [line for line in report.splitlines() if line.startswith("## ")] == ["## Why it was rolled back", *SECTIONS]
    assert report.splitlines()[2] == "- Released: checkout registry.example.com/checkout:previous → :2.4.1, canary 5% → 25% → 50% → 100%"
    assert report.splitlines()[4] == "- Now: stable serves 100% on registry.example.com/checkout:previous (verified); flags off (new-checkout-flow)"
    assert "Rollback started (error_rate): error_rate" in report
    assert "Time to rollback:" in report
    assert re.search(r"\| stage 2 +\| 25% +\| 10:00 +\| 15m +\| 7m +\| rolled back +\|", report)
    assert f"brahma run {SAMPLES / 'canary.yaml'} --state-dir {tmp_path} --headless" in report


@pytest.mark.parametrize(
    "args, message",
    [
        (["--headless", "--manual"], "--manual needs a person"),
        (["--json"], "--json is for headless runs"),
        (["--headless", "--scenario", "nope"], "no such scenario"),
        (["--headless", "--target", "kubernetes", "--metrics", "prometheus", "--fast"], "--speed and --fast are for the simulator only"),
        (["--headless", "--target", "kubernetes"], "simulated metrics need the sim target"),
        (["--headless", "--speed", "3", "--fast"], "not allowed with argument"),
    ],
)
def test_invalid_arguments_exit_2(tmp_path, args, message):
    result = brahma("run", str(SAMPLES / "canary.yaml"), *args, "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_cluster_chosen_on_the_command_line_refuses_stages_its_strategy_cannot_take(tmp_path):
    plan = tmp_path / "blue-green.yaml"  # fine on the simulator, which can split traffic 50/50
    plan.write_text("app: web\nimage: r/web:2\nstrategy: blue-green\nstages: [{weight: 0}, {weight: 50}, {weight: 100}]\n")
    result = brahma("run", str(plan), "--headless", "--target", "kubernetes", "--metrics", "prometheus", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert "--target kubernetes: a blue-green release on Kubernetes takes stages at 0% or 100% only, not 50%" in result.stderr


@pytest.mark.parametrize(
    "manual, said",
    [
        ("stages:\n  - {weight: 5}\n  - {weight: 25, manual: true}\n", "stages[1].manual: stage 2 waits for an operator's promote"),
        ("manual: true\n", "manual: every stage waits for an operator's promote"),
    ],
)
@pytest.mark.parametrize("command", [["run", "--headless", "--fast"], ["supervise"]])
def test_a_plan_that_waits_for_a_promote_is_refused_where_nobody_can_give_one(tmp_path, manual, said, command):
    plan = tmp_path / "held.yaml"
    plan.write_text("app: web\nimage: r/web:2\n" + manual)
    result = brahma(command[0], str(plan), *command[1:], "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert f"brahma: {plan}: {said}, and a headless run has nobody to give it" in result.stderr
    assert not (tmp_path / "s").exists(), "nothing was started"


@pytest.mark.parametrize("console", [[], ["--headless"]])
def test_a_plan_that_does_not_load_is_said_with_its_line_before_anything_starts(tmp_path, console):
    """With a console the plan is read by the fork that would start its controller: what is wrong is said all the same."""
    plan = tmp_path / "bad.yaml"
    plan.write_text("app: web\nimage: r/web:2\nstages:\n  - {weight: 5, observe: soon}\n")
    result = brahma("run", str(plan), *console, "--target", "sim", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert f"{plan}:4: stages[0].observe:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists(), "nothing was started"


def test_a_bad_scenario_file_names_its_line(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nevents:\n  - {at: soon, track: canary, set: {error_rate: 2}}\n")
    result = brahma("run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--scenario", str(scenario), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert f"{scenario}:3: events[0].at: expected a duration" in result.stderr
    assert f"{scenario}:3: events[0].set.error_rate: Input should be less than or equal to 1" in result.stderr
    assert not (tmp_path / "s").exists(), "nothing was started"


@pytest.mark.parametrize("console", [[], ["--headless"]])
def test_a_credential_the_shell_does_not_give_is_named_with_the_plan(tmp_path, console):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "app: checkout\nimage: r/checkout:2.4.1\nmetrics:\n  provider: prometheus\n"
        "  prometheus: {url: 'http://127.0.0.1:9', token_env: BRAHMA_TEST_UNSET_TOKEN}\n"
    )
    result = brahma("run", str(plan), *console, "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert f"brahma: {plan}: metrics.prometheus.token_env: environment variable BRAHMA_TEST_UNSET_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_headless_path_never_imports_textual(tmp_path):
    code = (
        "import sys\nfrom console.app.cli import main\n"
        f"code = main(['run', {str(SAMPLES / 'canary.yaml')!r}, '--headless', '--fast', '--state-dir', {str(tmp_path)!r}])\n"
        "assert code == 0, code\n"
        "loaded = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("phase", "detached", "code"),
    [
        ("completed", False, 0),
        ("rolled_back", True, 3),
        ("gate_failed", False, 4),
        ("rolling_back", False, 5),
        ("rolling_back", True, 0),
        ("running", True, 0),
        ("paused", False, 130),
        ("preflight", False, 130),
    ],
)
def test_how_a_console_was_left_is_the_exit_code(phase, detached, code):
    from console.app.exits import console_exit_code

    assert console_exit_code(phase, detached) == code


FOUNDATION = {
    "console.metric_catalogue",
    "console.derived",
    "console.units",
    "console.atomic",
    "console.private_files",
    "console.redact",
    "console.printable",
    "console.streams",
    "console.actor",
    "console.samples",
    "console.strict_json",
    "console.file_watch",
}
"""Modules every layer may use; they import nothing of Brahma but each other."""
DOMAIN_LAYERS: dict[str, set[str]] = {
    "console.flags": set(),
    "console.plan": {"console.flags"},
    "console.journal": set(),
    "console.judge": set(),
    "console.targets": {"console.plan"},
    "console.metrics": {"console.plan"},
    "console.sim": {"console.plan", "console.targets", "console.metrics"},
    "console.preflight": {"console.plan", "console.flags", "console.targets", "console.metrics"},
    "console.controller": {"console.plan", "console.flags", "console.journal", "console.judge", "console.targets", "console.metrics", "console.preflight"},
    "console.narrate": {"console.journal"},
    "console.report": {"console.plan", "console.journal", "console.narrate", "console.history"},
    "console.notify": {"console.plan", "console.journal", "console.narrate"},
    "console.history": {"console.plan", "console.journal", "console.narrate", "console.targets"},
    "console.backtest": {
        "console.plan",
        "console.flags",
        "console.journal",
        "console.judge",
        "console.targets",
        "console.metrics",
        "console.sim",
        "console.preflight",
        "console.controller",
    },
    "console.calibrate": {
        "console.plan",
        "console.flags",
        "console.journal",
        "console.judge",
        "console.targets",
        "console.metrics",
        "console.sim",
        "console.preflight",
        "console.controller",
        "console.backtest",
    },
}
"""The domain, and what of it each package may import besides the foundation."""
DOMAIN = set(DOMAIN_LAYERS)
MAY_IMPORT: dict[str, set[str]] = {
    **{module: FOUNDATION for module in FOUNDATION},
    **{package: FOUNDATION | below for package, below in DOMAIN_LAYERS.items()},
    "console.rollout": FOUNDATION | DOMAIN,
    "console.supervisor": FOUNDATION | DOMAIN | {"console.rollout"},
    "console.tui": FOUNDATION | DOMAIN | {"console.rollout", "widgets"},
    "console.app": FOUNDATION | DOMAIN | {"console.rollout", "console.supervisor", "console.tui"},
    "widgets": set(),
}
"""Who may import whom: each part imports only what lies below it, so no arrow runs back up. The application
(console/app, the `brahma` command's entry point with it) is on top: nothing imports it, and nothing imports
the console (console/tui) but the application."""
TEXTUAL_ALLOWED = {"console.tui", "widgets"}


def part_of(module: str) -> str:
    """The package or top-level module of console/ (or widgets) that `module` belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "console" else parts[0]


def imports_at_run_time(path: Path) -> list[tuple[str, int]]:
    """Every module `path` imports, wherever the import stands, but for type annotations alone (TYPE_CHECKING)."""
    import ast

    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module in ("console", "widgets"):  # from console import units
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def test_every_part_imports_only_what_lies_below_it():
    sources = sorted((ROOT / "console").rglob("*.py")) + sorted((ROOT / "widgets").glob("*.py"))
    wrong = []
    for path in sources:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module in ("console.__init__", "widgets.__init__"):
            continue
        part = part_of(module)
        assert part in MAY_IMPORT, f"{path.relative_to(ROOT)} belongs to no layer: add {part} to MAY_IMPORT and README's Layout"
        for imported, line in imports_at_run_time(path):
            top = imported.split(".")[0]
            if top == "textual" and part not in TEXTUAL_ALLOWED:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {part} imports textual")
            if top in ("console", "widgets", "tests", "testbed") and part_of(imported) != part and part_of(imported) not in MAY_IMPORT[part]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {part} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_nothing_but_the_console_loads_textual():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "console").rglob("*.py")
        if part_of(".".join(path.relative_to(ROOT).parts)) != "console.tui"
    )
    modules = [module for module in modules if module != "console.app.__main__"]  # it runs brahma
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "assert 'textual' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("plan_text", "message"),
    [
        ("app: checkout\nimage: r/checkout:2.4.1\nname: ../../escaped\n", ":3: name: a release name takes letters"),
        ("app: checkout\nimage: r/checkout:2.4.1\nflags_file: /tmp\n", ":3: flags_file: /tmp is a directory, not a flag file"),
        ("app: checkout\nimage: r/checkout:2.4.1\nstages: " + "[" * 2000 + "]" * 2000 + "\n", ":3: not valid YAML: exceeded maximum nesting depth"),
        ("app: checkout\nimage: r/checkout:2.4.1\nstages: " + "[" * 300 + "]" * 300 + "\n", ":3: stages[0][0]"),
    ],
    ids=["name-outside-the-state-dir", "flags-file-a-directory", "nesting-past-libyaml", "nesting-past-ours"],
)
def test_input_that_would_misuse_the_machine_is_refused_before_anything_is_written(tmp_path, plan_text, message):
    plan = tmp_path / "work" / "plan.yaml"
    plan.parent.mkdir()
    plan.write_text(plan_text)
    state_dir = tmp_path / "work" / "state"
    result = brahma("run", str(plan), "--headless", "--fast", "--state-dir", str(state_dir))
    assert result.returncode == 2, result.stderr
    assert f"{plan}{message}" in result.stderr and "Traceback" not in result.stderr
    assert not state_dir.exists(), "no state dir, no journal: nothing started"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["plan.yaml", "work"], "and nothing anywhere else"


def test_run_prints_the_plan_s_warnings_once_before_it_starts(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text((SAMPLES / "canary.yaml").read_text() + "\n")
    text = plan.read_text().replace("metrics:\n", "metrics:\n  queries: {throughput: 'sum(rate(http_requests_total{app=\"checkout\"}[1m]))'}\n", 1)
    assert text != plan.read_text(), "the sample has a metrics section to add the query to"
    plan.write_text(text)
    result = brahma("run", str(plan), "--headless", "--fast", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"{plan}:") and "metrics.queries.throughput: the query has no {track}" in warnings[0]
    assert result.stderr.startswith(warnings[0]), "before anything else is said"


@pytest.mark.parametrize("console", [[], ["--headless"]])
def test_attach_takes_a_rollout_s_name_never_a_path(tmp_path, console):
    (tmp_path / "state").mkdir()
    (tmp_path / "escaped.jsonl").write_text('{"event":"rollout_started"}\n')
    result = brahma("attach", "../escaped", *console, "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2, result.stderr
    assert result.stderr == "brahma: no rollout can be named '../escaped': a release name takes letters, digits, '.', '-' and '_' only, not '/'\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_a_state_dir_and_its_journals_are_the_operators_alone_whatever_the_umask(tmp_path, umask):
    state_dir, flags_dir = tmp_path / "deep" / "state", tmp_path / "flag-edits"

    def with_umask() -> None:
        os.umask(umask)

    run = subprocess.run(
        [sys.executable, "-m", "console.app", "run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        preexec_fn=with_umask,
    )
    assert run.returncode == 0, run.stderr
    assert mode(state_dir) == 0o700
    assert mode(state_dir / "checkout-2.4.1.jsonl") == mode(state_dir / "checkout-2.4.1.lock") == 0o600
    flag_file = state_dir / "checkout-2.4.1.flags.json"
    edit = subprocess.run(
        [sys.executable, "-m", "console.app", "flags", "--state-dir", str(flags_dir), str(flag_file), "enable", "new-checkout-flow"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        preexec_fn=with_umask,
    )
    assert edit.returncode == 0, edit.stderr
    assert mode(flags_dir) == 0o700 and mode(flags_dir / "flags.jsonl") == 0o600


def test_a_bare_number_on_a_percentage_never_runs_and_with_its_unit_the_failing_canary_rolls_back(tmp_path):
    """`error_rate: "< 5"` was read as 500%: a canary failing 19% of its requests was promoted, exit 0."""
    scenario = tmp_path / "failing.yaml"
    scenario.write_text("name: failing\nstable: {error_rate: 0.001}\ncanary: {error_rate: 0.19}\n")
    plan = tmp_path / "plan.yaml"
    written = (
        "app: checkout\nimage: r/checkout:2.4.1\nstages:\n  - weight: 5\n    observe: 1m\n    criteria: {error_rate: '< 5'}\n"
        "triggers:\n  critical: {error_rate: '> 5'}\n"
    )
    plan.write_text(written)
    state_dir = tmp_path / "s"
    refused = brahma("run", str(plan), "--headless", "--fast", "--scenario", str(scenario), "--state-dir", str(state_dir))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        f"{plan}:6: stages[0].criteria.error_rate: error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent",
        f"{plan}:8: triggers.critical.error_rate.when: error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent",
    ]
    assert not state_dir.exists(), "nothing was started"
    plan.write_text(written.replace("'< 5'", "'< 5%'").replace("'> 5'", "'> 5%'"))
    judged = brahma("run", str(plan), "--headless", "--fast", "--json", "--scenario", str(scenario), "--state-dir", str(state_dir))
    assert judged.returncode == 3, judged.stderr
    rollback = next(json.loads(line) for line in judged.stdout.splitlines() if '"rollback_started"' in line)
    assert rollback["trigger"] == "error_rate" and "> 5%" in rollback["reason"]


def run_with_output_closed(args: list[str], lines: int, stderr_too: bool = False) -> tuple[int, str]:
    """`brahma ARGS | head -LINES` (with `2>&1` when stderr_too): the exit code, and stderr when it was kept apart."""
    process = subprocess.Popen(
        [sys.executable, "-m", "console.app", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        for _ in range(lines):
            process.stdout.readline()
        process.stdout.close()  # the reader is gone: the next line written gets EPIPE
        stderr = "" if stderr_too else process.stderr.read()
        return process.wait(timeout=60), stderr
    finally:
        process.kill()


@pytest.mark.parametrize(("scenario", "code", "last"), [("healthy", 0, "completed"), ("error-spike", 3, "rolled_back")])
def test_a_closed_stdout_stops_the_printing_never_the_supervision(tmp_path, scenario, code, last):
    """`brahma run ... | head -3` died of BrokenPipeError (exit 1) and left the canary at 5% with no controller."""
    args = ["run", str(SAMPLES / "canary.yaml"), "--headless", "--fast", "--scenario", scenario, "--state-dir", str(tmp_path)]
    returncode, stderr = run_with_output_closed(args, 3)
    assert returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    events = [json.loads(line) for line in (tmp_path / "checkout-2.4.1.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == last
    said = [e for e in events if e["event"] == "error"]
    assert [e["where"] for e in said] == ["stdout"] and "the rollout goes on" in said[0]["message"]
    assert (tmp_path / "checkout-2.4.1.md").exists(), "the report is written as ever"


def test_a_closed_pipe_for_stdout_and_stderr_ends_a_failed_gate_as_ever(tmp_path):
    """With `2>&1 | head -3` on a plan whose gate fails, the run hung."""
    plan = tmp_path / "gated.yaml"
    plan.write_text(
        "app: checkout\nimage: r/checkout:2.4.1\npreflight:\n"
        "  - {name: fails, kind: command, argv: ['false']}\n  - {name: passes, kind: command, argv: ['true']}\n"
    )
    returncode, _ = run_with_output_closed(["run", str(plan), "--headless", "--fast", "--state-dir", str(tmp_path / "s")], 2, stderr_too=True)
    assert returncode == 4
    assert json.loads((tmp_path / "s" / "checkout-2.4.1.jsonl").read_text().splitlines()[-1])["event"] == "preflight_failed"


def test_a_stderr_closed_before_the_run_starts_never_stops_it(tmp_path):
    plan = tmp_path / "plan.yaml"  # a plan with a warning, printed on stderr before anything starts
    plan.write_text("app: checkout\nimage: r/checkout:2.4.1\nmetrics:\n  queries: {cpu: 'avg(cpu)'}\n")
    read, write = os.pipe()
    os.close(read)  # nobody will ever read stderr
    try:
        result = subprocess.run(
            [sys.executable, "-m", "console.app", "run", str(plan), "--headless", "--fast", "--json", "--state-dir", str(tmp_path / "s")],
            stdout=subprocess.PIPE,
            stderr=write,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write)
    assert result.returncode == 0
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "completed"


@pytest.mark.parametrize("console", [[], ["--headless"]])
def test_a_flag_file_whose_folder_is_missing_is_refused_naming_it_before_anything_starts(tmp_path, console):
    """The gated sample without a deploy/ folder was `internal error: FileNotFoundError: ... deploy/flags.json.lock`, exit 1."""
    result = brahma("run", str(SAMPLES / "canary-gated.yaml"), "--target", "sim", "--metrics", "sim", *console, "--state-dir", "state", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"brahma: {SAMPLES / 'canary-gated.yaml'}: flags_file deploy/flags.json: its folder {tmp_path / 'deploy'} "
        "does not exist; the plan's flags are created there before the deploy and switched off there by a rollback, "
        "so nothing was started\n"
    )
    assert list(tmp_path.iterdir()) == [], "no state dir, no journal: nothing started"


def test_a_read_only_flag_file_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "deploy").mkdir()
    flags = tmp_path / "deploy" / "flags.json"
    flags.write_text('{"flags": {}}\n')
    flags.chmod(0o444)
    result = brahma("run", str(SAMPLES / "canary-gated.yaml"), "--target", "sim", "--metrics", "sim", "--headless", "--state-dir", "state", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "flags_file deploy/flags.json: read-only (mode 0444" in result.stderr and "nothing was started" in result.stderr
    assert not (tmp_path / "state").exists() and flags.read_text() == '{"flags": {}}\n'


@pytest.mark.parametrize(
    ("image", "said"), [("r/checkout", "'r/checkout' has no tag, so it is :latest"), ("r/checkout:latest", "'r/checkout:latest' is :latest")]
)
def test_an_image_whose_tag_moves_is_a_warning_naming_the_risk(tmp_path, image, said):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"app: checkout\nimage: {image}\n")
    result = brahma("validate", str(plan))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"{plan}:2: warning: image: {said}, which names whatever was pushed last: each pod that starts (the canary's, "
        "one rescheduled, the rollout's at 100%) may pull another build, and the runbook cannot say which ran; "
        "name a version (:2.4.1) or a digest (@sha256:...)\n"
    )


def test_an_empty_image_is_invalid(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("app: checkout\nimage: ''\n")
    result = brahma("run", str(plan), "--headless", "--fast", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert result.stderr == f"{plan}:2: image: the new version's image is required, e.g. registry.example.com/checkout:2.4.1\n"
    assert brahma("validate", str(plan)).returncode == 2


def test_a_rollout_under_way_is_resumed_though_its_flag_file_became_read_only(tmp_path):
    """Refusing it would leave the canary serving with nobody supervising: only a new run is refused."""
    (tmp_path / "deploy").mkdir()
    journal = tmp_path / "state" / "checkout-2.4.1.jsonl"
    plan = tmp_path / "plan.yaml"
    plan.write_text("app: checkout\nimage: r/checkout:2.4.1\nflags_file: deploy/flags.json\nflags: [{name: new-checkout-flow}]\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "console.app", "run", str(plan), "--headless", "--json", "--state-dir", "state"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while json.loads(process.stdout.readline())["event"] != "traffic_shifted":
            pass
        process.kill()  # the controller dies mid-stage
        process.communicate(timeout=30)
    finally:
        process.kill()
    (tmp_path / "deploy" / "flags.json").chmod(0o444)
    resumed = brahma("run", str(plan), "--headless", "--fast", "--state-dir", "state", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming rollout checkout-2.4.1" in resumed.stderr
    assert json.loads(journal.read_text().splitlines()[-1])["event"] == "completed"
