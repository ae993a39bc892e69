"""The journals of the sample plans, recorded and compared: a refactoring changes no rollout.

    python bench/sample_journals.py record DIR     every sample plan that runs on the simulator, under
                                                  every built-in scenario and its own default, headless
                                                  in virtual time (--fast), each in DIR/PLAN/SCENARIO
    python bench/sample_journals.py compare A B    the two recordings event by event; exit 1 when they differ

Times are left out of the comparison (`ts`, and the durations Brahma measures on the wall clock), and
so is what differs from run to run by nature: the recording's own folder and the repository's path.
Everything else, the order of the events, their names, stages, metric values, verdicts and reasons,
and each run's exit code, must be the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("healthy", "error-spike", "latency-creep", "no-data", "flapping")
"""The simulator's built-in scenarios (DESIGN: `--scenario NAME`)."""
DEFAULT = "default"
"""The run with no --scenario: the plan's own (metrics.scenario), or healthy."""
WALL_CLOCK_FIELDS = frozenset({"ts", "duration_s", "since_s", "retry_in_s"})
"""Measured on the wall clock (a check's or a rollback's own time, an ISO stamp): never the same twice."""
RUN_TIMEOUT_S = 300
MANIFEST = "recording.json"


def simulator_plans() -> list[Path]:
    """The sample plans whose target and metrics are both the simulator's (the others need a cluster or Prometheus)."""
    from console.plan import load_plan
    from console.plan.problems import PlanError

    plans = []
    for path in sorted((ROOT / "sample_configs").glob("*")):
        if path.suffix not in (".yaml", ".yml", ".hcl"):
            continue
        try:
            plan = load_plan(path)
        except PlanError:
            continue  # not a plan
        if plan.target.kind == "sim" and (plan.metrics.provider or "sim") == "sim":
            plans.append(path)
    return plans


def record(directory: Path) -> int:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=False)
    runs = []
    for plan in simulator_plans():
        for scenario in (DEFAULT, *SCENARIOS):
            state_dir = directory / plan.name / scenario
            argv = [sys.executable, "-m", "console.app", "run", str(plan), "--headless", "--fast", "--state-dir", str(state_dir)]
            if scenario != DEFAULT:
                argv += ["--scenario", scenario]
            result = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S)
            runs.append({"plan": plan.name, "scenario": scenario, "exit_code": result.returncode})
            print(f"{plan.name} {scenario}: exit {result.returncode}", flush=True)
            if result.returncode not in (0, 3, 4):
                print(result.stderr, file=sys.stderr, end="")
    manifest = {"repository": str(ROOT), "directory": str(directory), "runs": runs}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


def normalized(value: Any, places: dict[str, str]) -> Any:
    """`value` with wall-clock fields dropped and this recording's paths replaced by their names."""
    if isinstance(value, dict):
        return {key: normalized(item, places) for key, item in value.items() if key not in WALL_CLOCK_FIELDS}
    if isinstance(value, list):
        return [normalized(item, places) for item in value]
    if isinstance(value, str):
        for path, name in places.items():
            value = value.replace(path, name)
    return value


def journals(recording: Path, run: dict[str, Any]) -> dict[str, Path]:
    return {path.name: path for path in sorted((recording / run["plan"] / run["scenario"]).glob("*.jsonl"))}


def read_journal(path: Path, places: dict[str, str]) -> list[Any]:
    return [normalized(json.loads(line), places) for line in path.read_text().splitlines() if line.strip()]


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where `a` and `b` first differ, as `key.key[index]: a != b`; None when they are the same."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}{key}: {'missing' if key not in a else json.dumps(a[key])} != {'missing' if key not in b else json.dumps(b[key])}"
            if (difference := first_difference(a[key], b[key], f"{where}{key}.")) is not None:
                return difference
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (left, right) in enumerate(zip(a, b)):
            if (difference := first_difference(left, right, f"{where.rstrip('.')}[{index}].")) is not None:
                return difference
        return None
    return None if a == b else f"{where.rstrip('.')}: {json.dumps(a)} != {json.dumps(b)}"


def compare_run(a: Path, b: Path, run_a: dict[str, Any], run_b: dict[str, Any], places_a: dict, places_b: dict) -> list[str]:
    name = f"{run_a['plan']} {run_a['scenario']}"
    differences = []
    if run_a["exit_code"] != run_b["exit_code"]:
        differences.append(f"{name}: exit code {run_a['exit_code']} != {run_b['exit_code']}")
    files_a, files_b = journals(a, run_a), journals(b, run_b)
    for missing in sorted(set(files_a) ^ set(files_b)):
        differences.append(f"{name}: {missing} only in {a if missing in files_a else b}")
    for journal in sorted(set(files_a) & set(files_b)):
        events_a, events_b = read_journal(files_a[journal], places_a), read_journal(files_b[journal], places_b)
        for index, (left, right) in enumerate(zip(events_a, events_b), start=1):
            if (difference := first_difference(left, right)) is not None:
                differences.append(f"{name}: {journal}:{index} ({left.get('event')}): {difference}")
        if len(events_a) != len(events_b):
            differences.append(f"{name}: {journal}: {len(events_a)} events != {len(events_b)}")
    return differences


def compare(a: Path, b: Path) -> int:
    manifests = [json.loads((recording / MANIFEST).read_text()) for recording in (a, b)]
    places = [{manifest["directory"]: "<recording>", manifest["repository"]: "<repository>"} for manifest in manifests]
    runs = [{(run["plan"], run["scenario"]): run for run in manifest["runs"]} for manifest in manifests]
    differences = [
        f"{plan} {scenario}: recorded only in {(a, b)[0 if key in runs[0] else 1]}" for key in sorted(set(runs[0]) ^ set(runs[1])) for plan, scenario in [key]
    ]
    for key in sorted(set(runs[0]) & set(runs[1])):
        differences += compare_run(a, b, runs[0][key], runs[1][key], *places)
    for line in differences:
        print(line)
    print(f"{len(runs[0])} runs in {a}, {len(runs[1])} in {b}: " + (f"{len(differences)} differences" if differences else "the same journals"))
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("record", help="run every sample plan on the simulator into DIR").add_argument("directory", type=Path)
    comparison = verbs.add_parser("compare", help="two recordings event by event, times aside")
    comparison.add_argument("a", type=Path)
    comparison.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.verb == "record":
        return record(args.directory)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
