"""How `brahma run` starts its console in a real terminal (tmux): what goes wrong before the console shows a
rollout is said on the terminal itself, once the console (if it opened) has given the terminal back."""

from __future__ import annotations

import shlex
import sys

import pytest

from console.journal.state_dir import RolloutFiles
from console.supervisor.client import answers
from testbed.supervisor_support import ROLLOUT, stop_controller
from testbed.tmux_terminal import TmuxTerminal
from tests.conftest import ROOT, SAMPLES

EXITED = "EXIT="


@pytest.fixture(autouse=True)
def no_controller_outlives_its_test(tmp_path):
    yield
    stop_controller(RolloutFiles(tmp_path, ROLLOUT))


def run_in_a_shell(tmp_path, *args: str, environment: str = "") -> TmuxTerminal:
    """`brahma run ARGS` from a shell in tmux, which then says the exit code and stays, so its screen can be read."""
    command = shlex.join([sys.executable, "-m", "console.app", "run", *args, "--state-dir", str(tmp_path)])
    # Wide enough that no message is wrapped.
    return TmuxTerminal(["sh", "-c", f"{environment} {command}; echo {EXITED}$?; sleep 60"], 240, 24, cwd=ROOT, env={"TERM": "xterm-256color"})


def test_a_plan_error_on_run_exits_2_with_its_file_line_and_field_on_the_terminal(tmp_path):
    plan = tmp_path / "bad.yaml"
    plan.write_text("name: checkout-2.4.1\napp: checkout\nimage: r/checkout:2.4.1\ninterval: 10 parsecs\n")
    with run_in_a_shell(tmp_path, str(plan), "--target", "sim") as terminal:
        screen = terminal.wait_for(f"{EXITED}2", timeout_s=30)
    assert f"{plan}:4: interval: expected a duration like 10m, 1h30m or 500ms, got '10 parsecs'" in screen
    assert "Traceback" not in screen and "STARTING" not in screen
    files = RolloutFiles(tmp_path, ROLLOUT)
    assert not answers(files) and not files.journal.exists(), "nothing was started from a plan that does not load"


def test_a_controller_that_fails_to_start_is_said_plainly_on_the_terminal_and_exits_1(tmp_path):
    # The plan is good; its controller cannot reach a cluster, which only the controller tries.
    plan = SAMPLES / "kubernetes-canary.yaml"
    missing = tmp_path / "no-kubeconfig"
    with run_in_a_shell(tmp_path, str(plan), environment=f"KUBECONFIG={missing}") as terminal:
        screen = terminal.wait_for(f"{EXITED}1", timeout_s=30)
    assert f"brahma: no kubeconfig found ({missing}) and not running inside a cluster" in screen
    assert "Traceback" not in screen and "STARTING" not in screen, "said once the console has given the terminal back"
