"""The detached controller with real processes: it outlives its console, survives kill -9, and is alone.

"Another user is refused" is shown by a process of user nobody trying to connect: it needs root to
start one (CI runs as root); elsewhere that test is skipped and the socket's 0600 mode is still checked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from console.app.supervision import PROMETHEUS_USERINFO
from console.journal import events as ev
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from console.supervisor.client import SupervisorClient, answers
from console.supervisor.files import lock_holder
from console.supervisor.remote import RemoteController
from testbed.socket_flood import FLOOD_ACTOR
from testbed.supervisor_support import (
    FLOOD_INTERVAL_S,
    ROLLOUT,
    brahma,
    console_in_tmux,
    flood_during_fault,
    journal_events,
    ssh_drop_then_fault,
    stop_controller,
    supervise_detached,
    wait_for_event,
    wait_until_gone,
)
from tests.conftest import ROOT
from tests.served_controller import until
from tests.test_prometheus_parsing import CannedPrometheus, ok

FAST_SPEED = "120"
"""Stage 1 (10 minutes) lasts 5 s of wall time."""


@pytest.fixture(autouse=True)
def no_controller_outlives_its_test(tmp_path):
    yield
    stop_controller(RolloutFiles(tmp_path, ROLLOUT))


def stop(state_dir, pid: int) -> None:
    """Roll back through the socket (an operator's command) and wait for the controller to finish."""
    with SupervisorClient(RolloutFiles(state_dir, ROLLOUT).socket) as client:
        assert client.command("rollback", "tester@host")["ok"]
    assert wait_until_gone(pid)


def roll_back_and_quit(console) -> None:
    """The rollback key, confirmed, seen through on the console's screen; then q."""
    console.press("C-r")
    console.wait_for("Roll back (Enter / y)")
    console.press("y")
    console.wait_for("ROLLED BACK", timeout_s=20)
    console.press("q")
    assert console.wait_closed()


@pytest.mark.parametrize("drop", ["kill-session", "sighup"])
def test_the_controller_rolls_back_on_its_own_after_the_console_is_dropped(tmp_path, drop):
    fault_to_rollback_s = ssh_drop_then_fault(tmp_path, drop)
    assert 0 <= fault_to_rollback_s < 2.0
    events = journal_events(tmp_path)
    assert [e.name for e in events[-3:]] == ["rollback_started", "rollback_verified", "rolled_back"]
    assert not any(isinstance(e, ev.CommandIssued) for e in events), "nobody was attached to act"


@pytest.mark.parametrize("descriptors", [None, 40], ids=["flood", "flood-out-of-descriptors"])
def test_a_flood_on_the_socket_during_a_fault_still_rolls_back_within_two_intervals(tmp_path, descriptors):
    delay_s, flood = flood_during_fault(tmp_path, descriptors)
    assert flood.get("connected", 0) > 100 and flood.get("junk sent", 0) > 0, flood
    assert 0 <= delay_s <= 2 * FLOOD_INTERVAL_S, f"the rollback started {delay_s:.2f}s after the fault"
    events = journal_events(tmp_path)
    assert [e.name for e in events[-3:]] == ["rollback_started", "rollback_verified", "rolled_back"]
    assert not [e for e in events if isinstance(e, ev.FlagChanged) and e.actor == FLOOD_ACTOR], "no flag file ever had those changes"
    assert not [e for e in events if isinstance(e, ev.CommandIssued) and e.actor == FLOOD_ACTOR], "its only command had a NaN: not JSON"
    assert not [e for e in events if isinstance(e, ev.ErrorRaised)], "the flood left the rollback its descriptors"
    log = RolloutFiles(tmp_path, ROLLOUT).log.read_text()
    assert "Traceback" not in log and len(log) < 10_000, log[-2000:]


def test_a_password_in_the_prometheus_url_reaches_neither_ps_nor_a_file_yet_the_controller_uses_it(tmp_path):
    password = "hunter2-s3cret"
    files = RolloutFiles(tmp_path, ROLLOUT)
    with CannedPrometheus(200, ok([])).running() as prometheus:
        url = prometheus.url.replace("http://", f"http://release:{password}@")
        pid = supervise_detached(tmp_path, "--speed", FAST_SPEED, "--metrics", "prometheus", "--prometheus", url)
        wait_for_event(tmp_path, lambda e: isinstance(e, ev.SampleTaken))
        basic = "Basic " + base64.b64encode(f"release:{password}".encode()).decode()
        assert basic in prometheus.authorizations, "the detached controller queried with the URL's credentials"
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        launch = json.loads(files.launch.read_text())
        assert f"--prometheus\0{prometheus.url}" in "\0".join(launch["argv"])
        assert launch["needs"] == {PROMETHEUS_USERINFO: f"the user:password of --prometheus {prometheus.url}"}
        os.kill(pid, signal.SIGKILL)
        assert wait_until_gone(pid)

        lacking = brahma("attach", ROLLOUT, "--headless", "--state-dir", str(tmp_path))  # another shell: no credential there
        assert lacking.returncode == 2, lacking.stderr
        assert f"it needs {PROMETHEUS_USERINFO} (the user:password of --prometheus {prometheus.url})" in lacking.stderr
        assert not answers(files), "no controller was started without it"

        prometheus.authorizations.clear()
        restarted = attach_until(tmp_path, lambda e: isinstance(e, ev.SupervisionResumed), env={PROMETHEUS_USERINFO: f"release:{password}"})
        resumed = next(e for e in journal_events(tmp_path) if isinstance(e, ev.SupervisionResumed))
        wait_for_event(tmp_path, lambda e: isinstance(e, ev.SampleTaken) and e.t > resumed.t)
        assert basic in prometheus.authorizations, "restarted with the credential the shell gave"
        assert password.encode() not in Path(f"/proc/{restarted}/cmdline").read_bytes()
        stop(tmp_path, restarted)
    for path in tmp_path.iterdir():
        assert path.is_socket() or password.encode() not in path.read_bytes(), f"{path.name} holds the password"


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_the_state_dir_and_what_the_controller_keeps_there_are_the_operators_alone_whatever_the_umask(tmp_path, umask):
    state_dir = tmp_path / "state"
    pid = supervise_detached(state_dir, "--speed", FAST_SPEED, umask=umask)
    files = RolloutFiles(state_dir, ROLLOUT)
    try:
        assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
        for path in (files.journal, files.log, files.launch, files.lock, files.socket):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name
    finally:
        stop(state_dir, pid)


def test_the_controller_brahma_run_forks_is_in_a_session_of_its_own_and_not_the_consoles_child(tmp_path):
    with console_in_tmux(tmp_path, "--speed", FAST_SPEED) as console:
        console.wait_for("stage 1 started", timeout_s=15)
        pid = lock_holder(RolloutFiles(tmp_path, ROLLOUT))
        assert pid is not None and pid != console.pid()
        assert os.getsid(pid) != os.getsid(console.pid()), "in a session of its own: the terminal's hang-up never reaches it"
        assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != console.pid(), "nothing in the console need reap it"
        assert os.readlink(f"/proc/{pid}/fd/1") == str(RolloutFiles(tmp_path, ROLLOUT).log), "it writes to the rollout's log"
        roll_back_and_quit(console)
    assert wait_until_gone(pid)


def test_two_consoles_of_the_same_release_share_one_controller_and_both_act(tmp_path):
    with console_in_tmux(tmp_path, "--speed", FAST_SPEED) as first:
        first.wait_for("stage 1 started", timeout_s=15)
        pid = lock_holder(RolloutFiles(tmp_path, ROLLOUT))
        with console_in_tmux(tmp_path, "--speed", FAST_SPEED) as second:
            second.wait_for(f"attached to the controller (pid {pid})", timeout_s=15)
            second.press("space")
            first.wait_for("PAUSED", timeout_s=10)  # the command of one console, seen on the other
            second.press("q")
            assert second.wait_closed()
        roll_back_and_quit(first)
    assert wait_until_gone(pid), "finished, and its last console gone: the controller leaves"
    events = journal_events(tmp_path)
    assert sum(isinstance(e, ev.RolloutStarted) for e in events) == 1
    assert [e.command for e in events if isinstance(e, ev.CommandIssued)] == ["pause", "rollback"]


def test_a_controller_killed_under_its_console_is_started_again_by_the_console(tmp_path):
    with console_in_tmux(tmp_path, "--speed", FAST_SPEED) as terminal:
        terminal.wait_for("stage 1 started", timeout_s=15)
        pid = lock_holder(RolloutFiles(tmp_path, ROLLOUT))
        os.kill(pid, signal.SIGKILL)
        assert wait_until_gone(pid)
        terminal.wait_for("controller restarted", timeout_s=20)
        restarted = lock_holder(RolloutFiles(tmp_path, ROLLOUT))
        assert restarted != pid
        wait_for_event(tmp_path, lambda e: isinstance(e, ev.SupervisionResumed))
        terminal.press("q")
        assert terminal.wait_closed()
    events = journal_events(tmp_path)
    assert [e.stage for e in events if isinstance(e, ev.StageStarted)] == [0], "the stage resumed, not restarted"
    stop(tmp_path, restarted)
    changes = json.loads(RolloutFiles(tmp_path, ROLLOUT).sim_state.read_text())["changes"]
    assert [c["weight"] for c in changes if c["op"] == "set_weight"] == [5], "the traffic shift happened once"


def test_attach_replays_then_streams_and_takes_commands(tmp_path):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    files = RolloutFiles(tmp_path, ROLLOUT)
    assert stat.S_IMODE(os.stat(files.socket).st_mode) == 0o600
    with SupervisorClient(files.socket, timeout=10) as client:
        assert next(client.attach(0))["event"] == "rollout_started"
    written = journal_events(tmp_path)
    with SupervisorClient(files.socket, timeout=10) as client:
        live = next(client.attach(len(written)))  # nothing to replay from the journal's end: the next event is live
    journaled_next = json.loads(files.journal.read_text().splitlines()[len(written)])
    assert (live["event"], live["t"]) == (journaled_next["event"], journaled_next["t"])
    with SupervisorClient(files.socket, timeout=10) as client:
        assert client.command("pause", "alice@host")["ok"]
    wait_for_event(tmp_path, lambda e: isinstance(e, ev.Paused) and "alice@host" in e.reason)
    listing = brahma("ls", "--state-dir", str(tmp_path))
    assert ROLLOUT in listing.stdout and f"running (pid {pid})" in listing.stdout and "paused" in listing.stdout
    stop(tmp_path, pid)
    assert not files.socket.exists()
    assert "none" in brahma("ls", "--state-dir", str(tmp_path)).stdout


def test_a_second_controller_of_the_same_rollout_is_refused(tmp_path):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    refused = brahma("supervise", "sample_configs/canary.yaml", "--state-dir", str(tmp_path), "--speed", FAST_SPEED)
    assert refused.returncode == 1 and f"already supervised (pid {pid})" in refused.stderr
    found = brahma("supervise", "sample_configs/canary.yaml", "--state-dir", str(tmp_path), "--speed", FAST_SPEED, "--detach")
    assert found.returncode == 0 and f"supervised by pid {pid}" in found.stdout
    stop(tmp_path, pid)


def test_a_second_brahma_run_of_the_same_release_follows_the_running_controller(tmp_path):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    command = [sys.executable, "-m", "console.app", "run", "sample_configs/canary.yaml", "--headless", "--state-dir", str(tmp_path)]
    second = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        notice = second.stderr.readline()  # the first thing it says; it then follows the stream
    finally:
        second.terminate()
        second.wait(timeout=10)
        second.stdout.close()
        second.stderr.close()
    assert f"already supervised (pid {pid}): following it" in notice
    starts = [e for e in journal_events(tmp_path) if isinstance(e, ev.RolloutStarted)]
    assert len(starts) == 1, "no second controller started the release again"
    stop(tmp_path, pid)


def test_a_killed_controller_is_restarted_by_attach_and_resumes_without_repeating_a_shift(tmp_path):
    # Started from a shell whose KUBECONFIG is relative; the restart comes from a shell with none.
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED, env={**os.environ, "KUBECONFIG": "kube/config"})
    wait_for_event(tmp_path, lambda e: isinstance(e, ev.SampleTaken) and e.stage == 0, timeout_s=10)
    os.kill(pid, signal.SIGKILL)
    assert wait_until_gone(pid)
    killed_at = journal_events(tmp_path)[-1].t
    listing = brahma("ls", "--state-dir", str(tmp_path)).stdout
    assert "running" in listing and "none" in listing  # the rollout is unfinished and nobody supervises it
    restarted = attach_until(tmp_path, lambda e: isinstance(e, ev.SampleTaken) and e.t > killed_at)
    assert restarted != pid
    environment = Path(f"/proc/{restarted}/environ").read_bytes().split(b"\0")
    assert f"KUBECONFIG={ROOT / 'kube' / 'config'}".encode() in environment, "the restart found the same cluster"
    events = journal_events(tmp_path)
    assert sum(isinstance(e, ev.RolloutStarted) for e in events) == 1
    assert [e.stage for e in events if isinstance(e, ev.StageStarted)] == [0], "the stage resumed, not restarted"
    stop(tmp_path, restarted)
    changes = json.loads(RolloutFiles(tmp_path, ROLLOUT).sim_state.read_text())["changes"]
    assert [c["weight"] for c in changes if c["op"] == "set_weight"] == [5], "the traffic shift happened once"


def attach_until(state_dir, found, env: dict[str, str] | None = None) -> int:
    """`brahma attach` from a shell with no KUBECONFIG (and `env`) restarts the dead controller; the new
    controller's pid once the journal shows `found`."""
    shell = {name: value for name, value in os.environ.items() if name != "KUBECONFIG"} | (env or {})
    attach = subprocess.Popen(
        [sys.executable, "-m", "console.app", "attach", ROLLOUT, "--headless", "--state-dir", str(state_dir)],
        cwd=ROOT,
        env=shell,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_event(state_dir, found, timeout_s=20)
    finally:
        attach.terminate()
        attach.wait(timeout=10)
    pid = lock_holder(RolloutFiles(state_dir, ROLLOUT))
    assert pid is not None
    return pid


CONNECT_AS_ANOTHER_USER = """
import socket, sys
client = socket.socket(socket.AF_UNIX)
try:
    client.connect(sys.argv[1])
except PermissionError:
    print("refused")
else:
    print("connected")
"""


SYSTEM_PYTHON = Path("/usr/bin/python3")
"""One that user nobody may run (ours may live under root's home)."""


@pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_PYTHON.exists(), reason="starting a process as another user needs root")
def test_the_socket_refuses_another_user():
    with tempfile.TemporaryDirectory(prefix="brahma-perm-") as directory:  # not under pytest's 0700 tmp dir
        state_dir = Path(directory)
        state_dir.chmod(0o755)  # another user may reach the socket: only its own mode keeps them out
        pid = supervise_detached(state_dir, "--speed", FAST_SPEED)
        try:
            socket_path = str(RolloutFiles(state_dir, ROLLOUT).socket)

            def connect_as_nobody() -> str:
                return subprocess.run(
                    [str(SYSTEM_PYTHON), "-c", CONNECT_AS_ANOTHER_USER, socket_path], user="nobody", capture_output=True, text=True, timeout=30
                ).stdout.strip()

            assert connect_as_nobody() == "refused"
            os.chmod(socket_path, 0o666)
            assert connect_as_nobody() == "connected", "the control: with the mode opened, the same user gets in"
        finally:
            stop(state_dir, pid)


def test_a_console_run_with_bad_input_says_why_and_leaves_no_controller(tmp_path):
    refused = brahma("run", "sample_configs/canary.yaml", "--scenario", "nope", "--state-dir", str(tmp_path))
    assert refused.returncode == 2, refused.stderr
    assert "nope:1: scenario: no such scenario" in refused.stderr and "Traceback" not in refused.stderr
    files = RolloutFiles(tmp_path, ROLLOUT)
    assert not answers(files) and not files.journal.exists() and not files.launch.exists()


async def test_a_finished_release_is_undone_from_a_console_after_its_controller_has_left(tmp_path):
    done = brahma("supervise", "sample_configs/canary.yaml", "--state-dir", str(tmp_path), "--fast", "--attended")
    assert done.returncode == 0, done.stderr  # completed with no console attached: its controller left
    files = RolloutFiles(tmp_path, ROLLOUT)
    console = RemoteController(load_plan(ROOT / "sample_configs" / "canary.yaml"), files)
    following = asyncio.create_task(console.run())
    await until(lambda: console.state.phase == "completed")
    console.submit("rollback", "oncall@laptop")  # an hour later, say: the release has to go
    await until(lambda: console.state.phase == "rolled_back", rounds=20_000)
    console.stop()
    await asyncio.wait_for(following, 10)
    # It left with its console (its socket gone: it is this process's child, so its pid lingers unreaped).
    await until(lambda: not files.socket.exists(), rounds=10_000)
    events = journal_events(tmp_path)
    assert sum(isinstance(e, ev.RolloutStarted) for e in events) == 1, "the same release, not a new run"
    rollback = next(e for e in events if isinstance(e, ev.RollbackStarted))
    assert rollback.trigger == "operator" and "oncall@laptop" in rollback.reason
    changes = json.loads(files.sim_state.read_text())["changes"]
    assert changes[-1]["op"] == "rollback", "the simulated cluster is back on stable"


def test_a_pause_its_last_console_left_rolls_back_after_pause_timeout_and_the_journal_says_who_left(tmp_path):
    """A controller started by a console stayed paused 40+ minutes once its console had left (pause_timeout 15m)."""
    from testbed.tmux_terminal import TmuxTerminal
    from tests.conftest import SAMPLES

    plan = tmp_path / "canary.yaml"
    plan.write_text((SAMPLES / "canary.yaml").read_text().replace("pause_timeout: 15m", "pause_timeout: 2m", 1))
    console = TmuxTerminal([sys.executable, "-m", "console.app", "run", str(plan), "--state-dir", str(tmp_path), "--speed", FAST_SPEED], 100, 24, cwd=ROOT)
    try:
        console.wait_for("stage 1 started", timeout_s=15)
        console.press("space")
        console.wait_for("PAUSED", timeout_s=10)
        console.press("q")
        assert console.wait_closed()
    finally:
        console.close()
    rollback = wait_for_event(tmp_path, lambda e: isinstance(e, ev.RollbackStarted), timeout_s=20)  # 2m at 120x: 1 s
    events = journal_events(tmp_path)
    [left] = [e for e in events if isinstance(e, ev.ConsoleDetached)]
    assert [e.actor for e in events if isinstance(e, ev.ConsoleAttached)] == [left.actor] and left.consoles == 0
    assert rollback.reason.startswith("paused 2m with no decision and nobody attached to decide: paused by ")
    assert left.t + 120 - 1e-6 <= rollback.t < left.t + 150, "counted from when the console left, not from the pause"


def test_a_finished_headless_run_is_opened_by_attach_and_its_rollback_key_undoes_it(tmp_path):
    """`brahma attach RELEASE` of a headless run refused: it had no launch record."""
    from testbed.tmux_terminal import TmuxTerminal

    done = brahma("run", "sample_configs/canary.yaml", "--headless", "--fast", "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    attach = [sys.executable, "-m", "console.app", "attach", "--state-dir", str(tmp_path)]  # no name: the only rollout there
    with TmuxTerminal(attach, 80, 24, cwd=ROOT) as console:
        console.wait_for("COMPLETE", timeout_s=15)
        roll_back_and_quit(console)
    events = journal_events(tmp_path)
    assert [e.name for e in events if isinstance(e, (ev.Completed, ev.RollbackStarted, ev.RolledBack))] == ["completed", "rollback_started", "rolled_back"]
    assert next(e for e in events if isinstance(e, ev.RollbackStarted)).trigger == "operator"
    changes = json.loads(RolloutFiles(tmp_path, ROLLOUT).sim_state.read_text())["changes"]
    assert changes[-1]["op"] == "rollback", "the simulated cluster is back on stable"


def test_attach_says_plainly_why_it_cannot_open_a_console_and_what_to_run(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "console.app", "run", "sample_configs/canary.yaml", "--headless", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "stage 1 started" in run.stdout.readline() + run.stdout.readline() + run.stdout.readline() + run.stdout.readline()
        live = brahma("attach", ROLLOUT, "--state-dir", str(tmp_path))
        assert live.returncode == 2 and live.stderr.startswith(f"brahma: {ROLLOUT} is supervised by pid {run.pid}, which serves no console (a --headless run")
        assert "once it has ended, brahma attach opens the console on it and can undo it" in live.stderr
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
    RolloutFiles(tmp_path, ROLLOUT).launch.unlink()  # as a journal from before runs recorded their launch
    old = brahma("attach", ROLLOUT, "--state-dir", str(tmp_path))
    assert old.returncode == 2 and f"read it with brahma attach {ROLLOUT} --headless" in old.stderr and "Traceback" not in old.stderr


def test_attach_with_no_name_lists_the_rollouts_when_there_is_not_exactly_one(tmp_path):
    nothing = brahma("attach", "--state-dir", str(tmp_path / "empty"))
    assert nothing.returncode == 2 and "no rollout to attach to in" in nothing.stderr
    for plan in ("canary.yaml", "blue-green.yaml"):
        assert brahma("run", f"sample_configs/{plan}", "--headless", "--fast", "--state-dir", str(tmp_path)).returncode == 0
    several = brahma("attach", "--state-dir", str(tmp_path))
    assert several.returncode == 2
    assert several.stdout.splitlines()[0].startswith("ROLLOUT") and len(several.stdout.splitlines()) == 3, several.stdout
    assert f"name the rollout to attach to in {tmp_path}: brahma attach NAME --state-dir {tmp_path}" in several.stderr
