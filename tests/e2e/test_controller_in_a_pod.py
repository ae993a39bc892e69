"""`brahma relay` and `brahma attach --pod`, end to end on this machine against a real detached controller.

The relay runs as `brahma relay` does in a pod: a process of its own, its stdin and stdout bridged to the
controller's socket. A console's side (PodLink, RemoteController) runs the command line that would be
`kubectl exec -i --namespace NS POD -- brahma relay ...`; with no cluster here, a stand-in for kubectl runs
what follows `--` on this machine (and nothing else: it checks the exec arguments it is given). What is not
run here: kubectl exec through a real API server into a real pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.journal import events as ev
from console.journal.state_dir import RolloutFiles
from console.plan import load_plan
from console.supervisor.client import SupervisorUnavailable, answers
from console.supervisor.relay import KUBECTL_ENV, PodLink
from console.supervisor.remote import RemoteController
from testbed.supervisor_support import CANARY, ROLLOUT, brahma, journal_events, stop_controller, supervise_detached, wait_for_event, wait_until_gone
from testbed.tmux_terminal import TmuxTerminal
from tests.conftest import ROOT

FAST_SPEED = "120"
RELAY_TIMEOUT_S = 30

KUBECTL_EXEC = f"""#!{sys.executable}
# kubectl exec -i --namespace NS POD -- brahma ARGS: brahma ARGS on this machine, as the pod would run them.
import os, sys
assert sys.argv[1:5] == ["exec", "-i", "--namespace", "shop"] and sys.argv[6:8] == ["--", "brahma"], sys.argv
os.chdir({str(ROOT)!r})
os.execv(sys.executable, [sys.executable, "-m", "console.app", *sys.argv[8:]])
"""


@pytest.fixture(autouse=True)
def no_controller_outlives_its_test(tmp_path):
    yield
    stop_controller(RolloutFiles(tmp_path, ROLLOUT))


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "kubectl"
    path.write_text(KUBECTL_EXEC)
    path.chmod(0o700)
    monkeypatch.setenv(KUBECTL_ENV, str(path))
    return path


def relay(state_dir: Path, *names: str, ask: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "console.app", "relay", *names, "--state-dir", str(state_dir)],
        cwd=ROOT,
        input=ask.encode(),
        capture_output=True,
        timeout=RELAY_TIMEOUT_S,
    )


@pytest.mark.parametrize("names", [[ROLLOUT], []], ids=["named", "the only one"])
def test_the_relay_says_which_controller_then_carries_the_socket_both_ways(tmp_path, names):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    done = relay(tmp_path, *names, ask='{"op": "plan", "id": 1}\n{"op": "command", "name": "pause", "actor": "alice@laptop", "id": 2}\n')
    assert done.returncode == 0, done.stderr
    said, plan, paused = map(json.loads, done.stdout.splitlines())
    assert said == {"relay": {"rollout": ROLLOUT, "pid": pid}}
    assert (plan["reply"], plan["ok"], plan["plan"]["name"]) == ("plan", True, ROLLOUT)
    assert (paused["reply"], paused["ok"], paused["id"]) == ("command", True, 2)
    wait_for_event(tmp_path, lambda e: isinstance(e, ev.Paused) and "alice@laptop" in e.reason)


def test_a_relay_with_no_controller_to_reach_says_so(tmp_path):
    done = relay(tmp_path, ROLLOUT, ask="")
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().startswith(f"brahma: no controller answers on {RolloutFiles(tmp_path, ROLLOUT).socket}")
    assert relay(tmp_path, ask="").stderr.decode() == f"brahma: no rollout is supervised in {tmp_path}: name the one to relay\n"


async def test_a_console_through_the_pod_link_follows_acts_and_waits_for_a_controller_the_cluster_restarts(tmp_path, kubectl):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    assert (await asyncio.to_thread(PodLink("shop", "deployment/brahma", str(tmp_path)).plan)).name == ROLLOUT, "the only one there"
    link = PodLink("shop", "deployment/brahma", str(tmp_path), ROLLOUT)
    remote = RemoteController(load_plan(CANARY), RolloutFiles(tmp_path, ROLLOUT), actor="alice@laptop", pod=link)
    notices: list[str] = []
    remote.on_notice(notices.append)
    following = asyncio.create_task(remote.run())
    try:
        await until(lambda: remote.pid == pid and remote.state.stage >= 0)
        assert remote.state.rollout == ROLLOUT
        remote.submit("pause", "alice@laptop")
        await until(lambda: remote.state.phase == "paused")
        # The controller dies (a node lost): the console says so and waits; the Deployment would start another.
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.to_thread(wait_until_gone, pid)
        await until(lambda: any(notice.startswith("no controller: pod shop/deployment/brahma: no controller answers") for notice in notices))
        restarted = await asyncio.to_thread(supervise_detached, tmp_path, "--speed", FAST_SPEED)
        await until(lambda: remote.pid == restarted)
        assert f"controller restarted (pid {restarted}); it resumes from the journal" in notices
    finally:
        remote.stop()
        await asyncio.wait_for(following, RELAY_TIMEOUT_S)
    assert "alice@laptop" in {
        actor for event in map(json.loads, RolloutFiles(tmp_path, ROLLOUT).journal.read_text().splitlines()) for actor in [event.get("actor")]
    }


def test_attach_pod_refuses_what_it_cannot_reach_plainly(tmp_path, kubectl):
    refused = brahma("attach", "--pod", "shop", "--state-dir", str(tmp_path))
    assert (refused.returncode, refused.stderr) == (2, "brahma: --pod shop: expected NAMESPACE/POD (or NAMESPACE/deployment/NAME)\n")
    unreachable = brahma("attach", "--pod", "shop/brahma-7d9f", ROLLOUT, "--state-dir", str(tmp_path), env={**os.environ, KUBECTL_ENV: str(kubectl)})
    assert unreachable.returncode == 1 and "brahma: pod shop/brahma-7d9f: no controller answers on" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    with pytest.raises(SupervisorUnavailable, match="pod shop/brahma: no controller answers"):
        PodLink("shop", "brahma", str(tmp_path), ROLLOUT).ensure_running()


async def until(condition, timeout_s: float = RELAY_TIMEOUT_S) -> None:
    """Wait, yielding to the event loop, until the console's state shows it (the controller runs in real time)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def supervise_staying(state_dir: Path) -> subprocess.Popen[str]:
    """`brahma supervise --stay` in the foreground, as a Deployment's container runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "console.app", "supervise", str(CANARY), "--state-dir", str(state_dir), "--fast", "--stay"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped_like_a_pod(controller: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as the kubelet sends; the exit code and what it said on stderr."""
    controller.send_signal(signal.SIGTERM)
    _, said = controller.communicate(timeout=RELAY_TIMEOUT_S)
    return controller.returncode, said


def test_a_staying_controller_serves_its_finished_release_and_a_restart_never_releases_it_again(tmp_path):
    files = RolloutFiles(tmp_path, ROLLOUT)
    first = supervise_staying(tmp_path)
    try:
        wait_for_event(tmp_path, lambda e: isinstance(e, ev.Completed))
        assert answers(files), "still serving once the release has finished"
    finally:
        code, _ = stopped_like_a_pod(first)
    assert code == 0
    journaled = files.journal.read_text()
    restarted = supervise_staying(tmp_path)
    try:
        deadline = time.monotonic() + RELAY_TIMEOUT_S
        while not answers(files) and restarted.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # a process starting up: its socket is the only sign
        done = relay(tmp_path, ROLLOUT, ask='{"op": "plan"}\n')
        assert json.loads(done.stdout.splitlines()[0])["relay"]["pid"] == restarted.pid
    finally:
        code, said = stopped_like_a_pod(restarted)
    assert code == 0
    assert f"brahma: {ROLLOUT} finished under this plan ({files.journal}): not run again, served for consoles; change the plan to release anew" in said
    assert files.journal.read_text() == journaled, "nothing released again, nothing moved aside"
    assert sorted(path.name for path in tmp_path.glob("*.jsonl")) == [f"{ROLLOUT}.jsonl"]


def test_the_console_attached_with_pod_acts_and_leaves_the_pod_s_controller_supervising(tmp_path, kubectl):
    pid = supervise_detached(tmp_path, "--speed", FAST_SPEED)
    argv = [sys.executable, "-m", "console.app", "attach", "--pod", "shop/deployment/brahma", "--state-dir", str(tmp_path)]
    with TmuxTerminal(argv, 100, 24, cwd=ROOT, env={**os.environ, KUBECTL_ENV: str(kubectl)}) as console:
        console.wait_for(f"attached to the controller (pid {pid})", timeout_s=20)
        console.press("space")
        console.wait_for("PAUSED", timeout_s=10)
        console.press("q")
        assert console.wait_closed()
    wait_for_event(tmp_path, lambda e: isinstance(e, ev.Paused))
    assert answers(RolloutFiles(tmp_path, ROLLOUT)), "the console left; the controller goes on"
    commands = [e for e in journal_events(tmp_path) if isinstance(e, ev.CommandIssued)]
    assert [c.command for c in commands] == ["pause"]
