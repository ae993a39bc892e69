"""What is not needed yet is not imported: a headless run on the simulator, and the console's first frame,
leave the chart, the cluster and Prometheus clients and the controller's own parts for when they are used.

Each runs in a process of its own, as `brahma` does, and reports the modules it had loaded."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from console.journal import events as ev
from console.journal.journal import read_events
from console.journal.state_dir import RolloutFiles
from console.supervisor.client import SupervisorClient, answers
from console.supervisor.files import lock_held, lock_holder
from tests.conftest import ROOT, SAMPLES

CANARY = str(SAMPLES / "canary.yaml")
ROLLOUT = "checkout-2.4.1"
CLIENTS = ["plotext", "textual_plotext", "kubernetes", "prometheus_api_client", "urllib3", "requests"]
"""Third-party modules neither path needs on the simulator: the chart's, the cluster's and Prometheus's."""
ELSEWHERE = [
    "console.metrics.prometheus",
    "console.metrics.pod_health",
    "console.targets.kubernetes",
    "console.targets.kube_api",
    "console.preflight.checks",
    "console.notify",
]
"""Brahma's own parts for a cluster, Prometheus, pre-flight checks and webhooks, none of which the sample canary has."""
HEADLESS_DEFERRED = [*CLIENTS, *ELSEWHERE, "textual", "rich", "widgets", "console.tui"]
PLAN_READING = ["pydantic", "pydantic_core", "yaml", "hcl2", "console.plan.loader", "console.plan.document"]
"""What reads and checks a plan file: the controller does, and gives the console the plan it runs."""
PANES = ["widgets.metric_table", "widgets.checklist", "widgets.flag_panel", "widgets.keyed_table", "widgets.chart_screen", "textual.widgets._data_table"]
"""The panes under the track, mounted once the first frame shows (and the DataTable they are built on)."""
CONSOLE_DEFERRED = [
    *CLIENTS,
    *ELSEWHERE,
    *PLAN_READING,
    *PANES,
    "console.sim",
    "console.report",
    "console.supervisor.server",
    "console.controller.controller",
]
"""The console's process draws what its controller (another process) journals: it runs no controller and no
simulator, writes no report, and reads no plan file (a fork of it does for `brahma run`, before the controller starts);
its first frame is the track and the state."""

FIRST_FRAME = """
import json, sys
import console.tui.rollout_screen as rollout_screen

mounted = rollout_screen.RolloutScreen.on_mount

def on_mount(self):
    mounted(self)

    def first_frame():
        with open(sys.argv[1], "w") as report:
            json.dump(sorted(sys.modules), report)
        self.app.exit(0)

    self.call_after_refresh(first_frame)

rollout_screen.RolloutScreen.on_mount = on_mount
from console.app.cli import main
sys.exit(main(sys.argv[2:]))
"""
"""Runs `brahma ARGS` with the console's first frame of the rollout (`brahma run` shows a starting screen before
it) reporting the modules loaded, then leaving."""


def loaded(modules: list[str], names: list[str]) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in names)]


def test_a_headless_run_on_the_simulator_imports_no_console_chart_cluster_or_prometheus_client(tmp_path):
    code = (
        "import json, sys\nfrom console.app.cli import main\n"
        f"code = main(['run', {CANARY!r}, '--headless', '--fast', '--state-dir', {str(tmp_path)!r}])\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["code"] == 0
    assert loaded(report["modules"], HEADLESS_DEFERRED) == []


@pytest.fixture
def controller_stopped_after(tmp_path):
    """The rollout's detached controller is rolled back and gone at the end, whatever the test did."""
    files = RolloutFiles(tmp_path, ROLLOUT)
    yield files
    if not answers(files):
        return
    pid = lock_holder(files)
    with SupervisorClient(files.socket) as client:
        client.command("rollback", "tester@host")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and lock_held(files):
        time.sleep(0.05)
    if lock_held(files) and pid is not None:
        os.kill(pid, signal.SIGTERM)


def first_frame_modules(tmp_path, *args: str) -> list[str]:
    report = tmp_path / "first-frame.json"
    env = {**os.environ, "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver"}
    result = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(report), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(report.read_text())


def test_the_console_first_frame_of_brahma_run_imports_neither_the_chart_nor_the_clients_nor_the_controller_parts(tmp_path, controller_stopped_after):
    modules = first_frame_modules(tmp_path, "run", CANARY, "--target", "sim", "--speed", "60", "--state-dir", str(tmp_path))
    assert "textual" in modules and "console.tui.app" in modules, "the report was made by the console"
    assert loaded(modules, CONSOLE_DEFERRED) == []
    assert undocumented_dataclasses(loaded(modules, ["console", "widgets"])) == []


def undocumented_dataclasses(modules: list[str]) -> list[str]:
    """The dataclasses of these modules with no docstring of their own: @dataclass makes theirs from inspect.signature,
    at import, which the first frame waits for."""
    found = []
    for name in modules:
        for kind in vars(importlib.import_module(name)).values():
            if isinstance(kind, type) and dataclasses.is_dataclass(kind) and kind.__module__ == name and kind.__doc__.startswith(f"{kind.__name__}("):
                found.append(f"{name}.{kind.__name__}")
    return found


def test_the_console_first_frame_of_brahma_attach_imports_neither_the_chart_nor_the_clients_nor_the_controller_parts(tmp_path, controller_stopped_after):
    started = subprocess.run(
        [sys.executable, "-m", "console.app", "supervise", CANARY, "--speed", "60", "--state-dir", str(tmp_path), "--detach"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while not any(isinstance(e, ev.StageStarted) for e in read_events(controller_stopped_after.journal)):
        assert time.monotonic() < deadline, "the controller never started its first stage"
        time.sleep(0.05)
    modules = first_frame_modules(tmp_path, "attach", "--state-dir", str(tmp_path))
    assert "textual" in modules and "console.tui.app" in modules, "the report was made by the console"
    assert loaded(modules, CONSOLE_DEFERRED) == []


def test_every_event_class_has_a_docstring_of_its_own_which_dataclass_would_make_at_import_otherwise():
    assert undocumented_dataclasses([ev.__name__]) == []
