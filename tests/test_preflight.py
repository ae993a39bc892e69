"""The gate and its check kinds against real things on this machine: programs, a loopback HTTP
server, flag files; and the pure judges of the Prometheus and Kubernetes checks, table-tested.
(The checks against a real Prometheus and the Kubernetes API emulator are in tests/e2e.)"""

from __future__ import annotations

import asyncio
import asyncio.base_subprocess
import http.server
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from console.flags import FileBackend, FlagStore
from console.plan import PlanError
from console.plan.model import PreflightSpec, RolloutPlan
from console.preflight import CheckResult, Gate, PreflightContext
from console.preflight.kubernetes_check import (
    Resources,
    deployment_readiness,
    extra_replicas,
    pod_requests,
    room_in_quotas,
    room_on_nodes,
    service_endpoints,
)
from console.preflight.prometheus_check import judge_result
from tests.conftest import plan_from


def item(**fields) -> PreflightSpec:
    return PreflightSpec(**{"name": "check", **fields})


async def run_gate(plan: RolloutPlan, **context) -> dict[str, CheckResult]:
    results = await Gate(plan.preflight, PreflightContext(plan, **context)).run_checks(lambda result: None)
    return {result.item: result for result in results}


async def run_one(spec: PreflightSpec, plan: RolloutPlan | None = None, **context) -> CheckResult:
    plan = plan or plan_from("app: checkout\nimage: r/checkout:2\n")
    [result] = await Gate((spec,), PreflightContext(plan, **context)).run_checks(lambda result: None)
    return result


# --- the gate -----------------------------------------------------------------------------------


async def test_items_run_at_once_and_each_keeps_its_own_timeout():
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    plan = plan_from(
        "app: a\nimage: r/a:2\npreflight:\n"
        f"  - {{name: slow one, kind: command, argv: {slow!r}, timeout: 500ms}}\n"
        f"  - {{name: another slow one, kind: command, argv: {slow!r}, timeout: 500ms}}\n"
        "  - {name: quick, kind: command, argv: ['true']}\n"
    )
    started = time.monotonic()
    results = await run_gate(plan)
    assert time.monotonic() - started < 5, "two 0.5s timeouts run side by side, not one after the other"
    assert results["slow one"].status == "fail" and results["slow one"].output == "timed out after 0.5s"
    assert results["quick"].status == "pass" and results["quick"].by == "brahma"


def running_commands() -> set[str]:
    commands = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            commands.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except OSError:
            pass  # the process ended while we looked
    return commands


async def test_a_timed_out_program_is_killed_not_left_running():
    argv = ["sleep", f"{50 + os.getpid() % 1000 / 1000:.3f}"]  # an argument no other process has
    result = await run_one(item(kind="command", argv=argv, timeout=0.5))
    assert result.output == "timed out after 0.5s"
    assert " ".join(argv) not in running_commands()


def unique_sleep(seconds: int) -> str:
    """A `sleep` argument no other process on the machine has, to find it in /proc."""
    return f"{seconds}.{os.getpid() % 1000:03d}"


async def test_a_timed_out_program_is_stopped_with_everything_it_started():
    background, foreground = unique_sleep(777), unique_sleep(778)
    argv = ["sh", "-c", f"sleep {background} & exec sleep {foreground}"]
    result = await run_one(item(kind="command", argv=argv, timeout=0.5))
    assert result.output == "timed out after 0.5s"
    running = running_commands()
    assert f"sleep {background}" not in running, "the shell's background child is stopped too"
    assert f"sleep {foreground}" not in running


async def test_a_program_that_ignores_sigterm_is_killed_after_a_grace():
    stubborn = unique_sleep(779)
    argv = ["sh", "-c", f"trap '' TERM; sleep {stubborn}; echo still here"]
    result = await run_one(item(kind="command", argv=argv, timeout=0.5))
    assert result.output == "timed out after 0.5s"
    assert f"sleep {stubborn}" not in running_commands()


async def cancel_once_running(background: str, foreground: str) -> set[str]:
    """Run a gate whose program leaves a child in the background, cancel it once both run (a rollback
    during the gate, the console quitting) and return the commands still running."""
    argv = ["sh", "-c", f"sleep {background} & exec sleep {foreground}"]
    plan = plan_from("app: checkout\nimage: r/checkout:2\n")
    gate = asyncio.create_task(Gate((item(kind="command", argv=argv, timeout=60),), PreflightContext(plan)).run_checks(lambda result: None))
    deadline = time.monotonic() + 10
    while not {f"sleep {background}", f"sleep {foreground}"} <= running_commands():
        assert time.monotonic() < deadline, "the program never started"
        await asyncio.sleep(0.02)
    gate.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gate
    return running_commands()


async def test_a_cancelled_check_stops_its_program_and_everything_it_started():
    background, foreground = unique_sleep(780), unique_sleep(781)
    running = await cancel_once_running(background, foreground)
    assert f"sleep {background}" not in running and f"sleep {foreground}" not in running


async def test_a_check_cancelled_while_its_program_starts_stops_it_and_everything_it_started(monkeypatch):
    # On a loaded machine the program runs a while before the event loop has connected its pipes.
    connect_pipes = asyncio.base_subprocess.BaseSubprocessTransport._connect_pipes

    async def slowly(transport, waiter):
        await asyncio.sleep(1)
        await connect_pipes(transport, waiter)

    monkeypatch.setattr(asyncio.base_subprocess.BaseSubprocessTransport, "_connect_pipes", slowly)
    background, foreground = unique_sleep(782), unique_sleep(783)
    running = await cancel_once_running(background, foreground)
    assert f"sleep {background}" not in running and f"sleep {foreground}" not in running


async def test_a_long_output_keeps_its_head_and_tail_and_counts_what_was_left_out():
    lines = 200_000  # 6.9 MB: "line 000000\n" ... "line 199999\n", 12 bytes each
    script = f"import sys\nfor n in range({lines}): sys.stdout.write(f'line {{n:06d}}\\n')\nsys.exit(3)"
    result = await run_one(item(kind="command", argv=[sys.executable, "-c", script], timeout=30))
    assert result.status == "fail"
    match = re.fullmatch(r"exit 3\n(.*)\n… (\d+) bytes left out …\n(.*)", result.output, re.DOTALL)
    assert match, result.output[:200]
    head, left_out, tail = match.group(1), int(match.group(2)), match.group(3)
    assert len(head) + left_out + len(tail) + len("\n") == lines * 12, "every byte counted (the last newline is trimmed)"
    assert head.startswith("line 000000\nline 000001\n") and 500 <= len(head) <= 1000
    assert tail.endswith("line 199998\nline 199999") and 2000 <= len(tail) <= 3000


async def test_an_output_cut_in_a_character_keeps_whole_characters():
    script = "import sys; sys.stdout.write('é' * 100_000)"
    result = await run_one(item(kind="command", argv=[sys.executable, "-c", script], timeout=30))
    match = re.fullmatch(r"exit 0\n(é+)\n… (\d+) bytes left out …\n(é+)", result.output)
    assert match, result.output[:200]
    assert len(match.group(1).encode()) + int(match.group(2)) + len(match.group(3).encode()) == 200_000


async def test_control_sequences_in_the_output_are_neutralised():
    printed = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\r\nbell\x07 \x1b(B erase\x1b[2J back\x08 done\rFAKE PASS\n"
    result = await run_one(item(kind="command", argv=["printf", "%s", printed]))
    assert result.output == "exit 0\nred ok\nbell␇  erase back␈ done␍FAKE PASS"


async def test_advisory_failures_are_recorded_but_do_not_block():
    plan = plan_from(
        "app: a\nimage: r/a:2\npreflight:\n"
        "  - {name: must, kind: command, argv: ['true']}\n"
        "  - {name: nice to have, kind: command, argv: ['false'], required: false}\n"
    )
    results = await run_gate(plan)
    assert results["nice to have"].status == "fail" and not results["nice to have"].blocks
    assert not results["must"].blocks


async def test_a_command_runs_without_a_shell():
    result = await run_one(item(kind="command", argv=["echo", "a; exit 3", "$HOME"]))
    assert result.status == "pass"
    assert result.output == "exit 0\na; exit 3 $HOME"


async def test_a_command_that_cannot_start_says_why():
    result = await run_one(item(kind="command", argv=["no-such-program-here"]))
    assert result.status == "fail"
    assert result.output == "cannot run 'no-such-program-here': No such file or directory"


# --- http ---------------------------------------------------------------------------------------


class _Staging(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {"/healthz": (200, b'{"status":"ok","version":"2.4.1"}'), "/broken": (503, b"down")}.get(self.path, (404, b"?"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def staging() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Staging)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "path, fields, status, first_line",
    [
        ("/healthz", {}, "pass", "HTTP 200 (expected 200)"),
        ("/healthz", {"body_contains": '"version":"2.4.1"'}, "pass", 'HTTP 200 (expected 200 and a body with \'"version":"2.4.1"\')'),
        ("/healthz", {"body_contains": '"version":"2.5.0"'}, "fail", 'HTTP 200 (expected 200 and a body with \'"version":"2.5.0"\')'),
        ("/broken", {}, "fail", "HTTP 503 (expected 200)"),
        ("/broken", {"status": 503}, "pass", "HTTP 503 (expected 503)"),
    ],
)
async def test_http_checks_status_and_body(staging, path, fields, status, first_line):
    result = await run_one(item(kind="http", url=staging + path, **fields))
    assert result.status == status
    assert result.output.splitlines()[0] == first_line


async def test_http_never_shows_credentials_in_the_address(staging):
    port = staging.rsplit(":", 1)[1]
    closed = f"http://deployer:s3cret@127.0.0.1:{int(port) + 1 if int(port) < 65535 else 1}/healthz?token=abc"
    result = await run_one(item(kind="http", url=closed, timeout=2))
    assert result.status == "fail"
    assert "s3cret" not in result.output and "abc" not in result.output


# --- file ---------------------------------------------------------------------------------------


async def test_file_exists_and_is_not_empty(tmp_path):
    document = tmp_path / "rollback.md"
    assert (await run_one(item(kind="file", path=str(document)))).output == f"{document}: no such file"
    document.write_text("  \n")
    assert (await run_one(item(kind="file", path=str(document)))).status == "fail"
    document.write_text("# Rollback\nweight 0, flags off\n")
    assert (await run_one(item(kind="file", path=str(document)))).status == "pass"


# --- flags --------------------------------------------------------------------------------------


FLAGGED = "app: checkout\nimage: r/checkout:2\nflags:\n  - {name: new-flow}\n  - {name: old-banner, new: false}\n"


async def test_flags_exist_and_are_disabled(tmp_path):
    path = tmp_path / "flags.json"
    store = FlagStore(FileBackend(path))
    store.create("new-flow", actor="t")
    plan = plan_from(FLAGGED)
    result = await run_one(item(kind="flags"), plan, flags_path=path)
    assert result.status == "pass"
    assert result.output == f"{path}:\nnew-flow: disabled"

    store.enable("new-flow", actor="t")
    store.set_percentage("new-flow", 5, actor="t")
    result = await run_one(item(kind="flags"), plan, flags_path=path)
    assert result.status == "fail"
    assert "new-flow: ENABLED at 5%: switch it off until the release is out" in result.output


async def test_flags_missing_from_the_file_say_who_creates_them(tmp_path):
    path = tmp_path / "flags.json"
    plan = plan_from(FLAGGED)
    result = await run_one(item(kind="flags", flags=["new-flow", "typo-flag"]), plan, flags_path=path)
    assert result.status == "fail"
    assert result.output.splitlines() == [
        f"{path}: no such flag file yet",
        "new-flow: missing (brahma run creates it disabled before the gate)",
        "typo-flag: missing",
    ]


async def test_a_broken_flag_file_fails_with_its_line(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {\n  "new-flow": ,\n}}\n')
    result = await run_one(item(kind="flags"), plan_from(FLAGGED), flags_path=path)
    assert result.status == "fail"
    assert result.output.startswith(f"{path}:2")


async def test_on_a_run_the_flags_check_sees_the_flags_created_before_the_gate(tmp_path):
    from console.app.wiring import RunOptions, build_rollout

    plan = plan_from(FLAGGED + "preflight:\n  - {name: flags created disabled, kind: flags}\n")
    rollout = build_rollout(plan, RunOptions(fast=True, state_dir=tmp_path), "tester")
    assert await rollout.controller.run() == "completed"
    gate_result = rollout.controller.state.preflight["flags created disabled"]
    assert gate_result.status == "pass", gate_result.output
    await rollout.controller.target.close()


# --- the plan's fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "{name: p, kind: prometheus, query: up, condition: about 3}",
            'test.yaml:4: preflight[0].condition: expected something like "< 0.001", "> 0" or "== 1", got \'about 3\'',
        ),
        ("{name: p, kind: prometheus, query: up}", 'test.yaml:4: preflight[0]: a prometheus check needs a condition, like "< 0.001" or "> 0"'),
        (
            "{name: k, kind: kubernetes, objects: [pod/x]}",
            'test.yaml:4: preflight[0].objects[0]: expected something like "deployment/checkout" or "service/checkout", got \'pod/x\'',
        ),
        ("{name: t, kind: terraform}", "test.yaml:4: preflight[0].dir: a terraform check needs dir"),
    ],
)
def test_bad_items_are_caught_when_the_plan_is_read(line, message):
    with pytest.raises(PlanError) as caught:
        plan_from(f"app: a\nimage: r/a:2\npreflight:\n  - {line}\n")
    assert [str(problem) for problem in caught.value.problems] == [message]


# --- prometheus: judging an answer --------------------------------------------------------------


NOW = time.time()


def vector(*values: tuple[dict, str]) -> list[dict]:
    return [{"metric": metric, "value": [NOW, value]} for metric, value in values]


@pytest.mark.parametrize(
    "result, condition, passed, lines",
    [
        (vector(({}, "0")), "== 0", True, ["{} = 0: holds == 0"]),
        (vector(({}, "0.0004")), "< 0.001", True, ["{} = 0.0004: holds < 0.001"]),
        (vector(({}, "0.02")), "< 0.001", False, ["{} = 0.02: FAILS < 0.001"]),
        ([NOW, "3"], "> 0", True, ["scalar = 3: holds > 0"]),
        (
            vector(({"__name__": "ALERTS", "alertname": "HighErrors"}, "1"), ({"__name__": "ALERTS", "alertname": "SlowCheckout"}, "0")),
            "== 0",
            False,
            ['ALERTS{alertname="HighErrors"} = 1: FAILS == 0', 'ALERTS{alertname="SlowCheckout"} = 0: holds == 0'],
        ),
        (vector(({}, "NaN")), "< 0.001", False, ["{} = no value (NaN (0/0: no requests in the window?)): FAILS < 0.001"]),
    ],
)
def test_every_series_must_satisfy_the_condition(result, condition, passed, lines):
    assert judge_result(result, condition) == (passed, lines)


def test_a_query_with_no_result_fails_and_says_how_to_count_zero():
    passed, lines = judge_result([], "== 0")
    assert not passed
    assert lines[0] == "the query returned no data: nothing to compare with '== 0'"
    assert "or vector(0)" in lines[1]


# --- kubernetes: judging the API's objects ------------------------------------------------------


def deployment(replicas=4, available=4, updated=4, total=4, generation=2, observed=2, available_condition="True", **spec) -> dict:
    return {
        "metadata": {"name": "checkout", "generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                        {"name": "sidecar", "resources": {"requests": {"cpu": "50m"}}},
                    ]
                }
            },
            **spec,
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "availableReplicas": available,
            "updatedReplicas": updated,
            "conditions": [
                {
                    "type": "Available",
                    "status": available_condition,
                    "reason": "MinimumReplicasAvailable" if available_condition == "True" else "MinimumReplicasUnavailable",
                }
            ],
        },
    }


@pytest.mark.parametrize(
    "obj, ready, line",
    [
        (deployment(), True, "ready, 4/4 available"),
        (deployment(available=2, available_condition="False"), False, "NOT READY: 2/4 available (MinimumReplicasUnavailable)"),
        (deployment(updated=2, total=6), False, "NOT READY: a rollout is under way (2/4 updated, 6 pods)"),
        (deployment(observed=1), False, "NOT READY: the controller has not seen the latest spec yet"),
        (deployment(paused=True), False, "NOT READY: its rollout is paused"),
    ],
)
def test_deployment_readiness(obj, ready, line):
    assert deployment_readiness(obj) == (ready, line)


def pod(ready: bool, node: str = "n1", cpu: str = "500m", memory: str = "1Gi") -> dict:
    return {
        "metadata": {"name": "p"},
        "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_a_service_needs_ready_pods_behind_its_selector():
    service = {"spec": {"selector": {"app": "checkout"}}}
    assert service_endpoints(service, [pod(True), pod(False), pod(True)]) == (True, "2 ready endpoints")
    assert service_endpoints(service, [pod(False)]) == (False, "NO ENDPOINTS: none of the 1 pods its selector matches is ready")
    assert service_endpoints({"spec": {}}, [])[0], "no selector: endpoints are managed elsewhere"


def test_the_release_needs_room_for_its_extra_pods():
    assert pod_requests(deployment()["spec"]["template"]["spec"]) == Resources(Decimal("0.3"), Decimal(256 * 2**20))
    canary_weights = [5, 25, 50, 100]
    assert extra_replicas("canary", canary_weights, deployment(replicas=10)) == 5
    assert extra_replicas("blue-green", [0, 100], deployment(replicas=10)) == 10
    assert extra_replicas("rolling", [100], deployment(replicas=10)) == 3, "maxSurge 25% of 10, rounded up"
    assert extra_replicas("rolling", [100], deployment(replicas=10, strategy={"type": "Recreate"})) == 0


def test_room_is_counted_node_by_node():
    need = Resources(Decimal("0.5"), Decimal(2**30))
    nodes = [
        {
            "metadata": {"name": "n1"},
            "spec": {},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]},
        },
        {
            "metadata": {"name": "n2"},
            "spec": {"unschedulable": True},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi"}, "conditions": [{"type": "Ready", "status": "True"}]},
        },
        {
            "metadata": {"name": "n3"},
            "spec": {},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi"}, "conditions": [{"type": "Ready", "status": "False"}]},
        },
    ]
    # n1: 2 CPU - 1 CPU used leaves 2 pods of 0.5; 4Gi - 2Gi leaves 2 pods of 1Gi. n2 and n3 take none.
    assert room_on_nodes(nodes, [pod(True, "n1"), pod(True, "n1"), pod(True, "n2")], need) == 2


def test_the_tightest_quota_limits_the_room():
    need = Resources(Decimal("0.25"), Decimal(256 * 2**20))
    quotas = [
        {
            "metadata": {"name": "compute"},
            "status": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi"}, "used": {"requests.cpu": "3500m", "requests.memory": "2Gi"}},
        },
        {"metadata": {"name": "objects"}, "status": {"hard": {"pods": "20"}, "used": {"pods": "19"}}},
    ]
    assert room_in_quotas(quotas, need) == (1, "objects (pods)")
    assert room_in_quotas([], need) == (None, "")


def test_an_hcl_plan_takes_the_same_items():
    from console.plan import load_plan_text

    text = """
app   = "checkout"
image = "r/checkout:2"
preflight {
  name    = "cluster ready"
  kind    = "kubernetes"
  objects = ["deployment/checkout", "service/checkout"]
}
preflight {
  name      = "no alerts firing"
  kind      = "prometheus"
  query     = "count(ALERTS{app=\\"checkout\\"}) or vector(0)"
  condition = "== 0"
  required  = false
}
"""
    plan = load_plan_text(text, "plan.hcl", hcl=True)
    assert [(spec.kind, spec.objects or spec.condition, spec.required) for spec in plan.preflight] == [
        ("kubernetes", ["deployment/checkout", "service/checkout"], True),
        ("prometheus", "== 0", False),
    ]
    assert plan.preflight[1].query == 'count(ALERTS{app="checkout"}) or vector(0)'
