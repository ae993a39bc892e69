"""`brahma run` stopped by the gate, and `brahma preflight`: exit codes, JSON lines, what is said."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from console import strict_json
from console.app.preflight import ProgressLine, progress_text, run_preflight
from tests.conftest import ROOT, plan_from
from tests.test_preflight import running_commands, unique_sleep

GATED = """\
name: checkout-2.4.1
app: checkout
image: registry.example.com/checkout:2.4.1
flags:
  - name: new-checkout-flow
preflight:
  - {name: unit tests, kind: command, argv: ["%(python)s", "-c", "print('42 passed')"]}
  - {name: security scan, kind: command, argv: ["%(python)s", "-c", "import sys; print('CVE-2024-0001 critical'); sys.exit(1)"]}
  - {name: benchmarks, kind: file, path: /nonexistent/bench.json, required: false}
""".replace("%(python)s", sys.executable)


def brahma(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.app", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def write_plan(tmp_path: Path, text: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    return plan


def test_a_failed_required_check_stops_the_run_before_any_target_call(tmp_path):
    state_dir = tmp_path / "state"
    result = brahma("run", str(write_plan(tmp_path, GATED)), "--headless", "--fast", "--json", "--state-dir", str(state_dir))
    assert result.returncode == 4, result.stderr
    printed = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    journal = [json.loads(line) for line in (state_dir / "checkout-2.4.1.jsonl").read_text().splitlines()]
    assert [e["event"] for e in journal] == printed
    names = [e["event"] for e in journal]
    # The flags are created disabled before the gate (deploy dark); nothing touches the target.
    assert names[:2] == ["rollout_started", "flag_changed"]
    assert [e["status"] for e in journal[2:5]] == ["running"] * 3, "each check journaled as it starts"
    assert set(names[5:-1]) == {"preflight_result"} and names[-1] == "preflight_failed"
    assert journal[-1]["failed"] == ["security scan"]
    # The unit tests either finished before the scan failed or were cancelled by it: none is left running.
    last = {e["item"]: e["status"] for e in journal if e["event"] == "preflight_result"}
    assert last["security scan"] == "fail" and last["benchmarks"] == "fail" and last["unit tests"] in ("pass", "cancelled")
    assert all(e["t"] <= 0 for e in journal)
    assert not (state_dir / "checkout-2.4.1.sim.json").exists(), "the simulated cluster was never touched"
    scan = next(e for e in journal if e.get("item") == "security scan" and e["status"] == "fail")
    assert scan["output"] == "exit 1\nCVE-2024-0001 critical"


def test_the_report_of_a_stopped_run_shows_why(tmp_path):
    state_dir = tmp_path / "state"
    brahma("run", str(write_plan(tmp_path, GATED)), "--headless", "--fast", "--state-dir", str(state_dir))
    report = (state_dir / "checkout-2.4.1.md").read_text()
    assert report.startswith("# Release checkout-2.4.1: stopped at the pre-flight gate")
    assert "### security scan: fail (required)\n\n~~~\nexit 1\nCVE-2024-0001 critical\n~~~" in report
    assert "### benchmarks: fail (advisory)" in report
    assert "- [ ] Make the failed pre-flight items pass (security scan), then run the release again." in report
    assert "- [ ] Look into the advisory pre-flight items that did not pass: benchmarks." in report


def test_preflight_alone_passes_with_exit_0_and_changes_nothing(tmp_path):
    plan = write_plan(tmp_path, GATED.replace("sys.exit(1)", "sys.exit(0)"))
    result = subprocess.run([sys.executable, "-m", "console.app", "preflight", str(plan)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pre-flight of checkout-2.4.1: 3 items"
    assert lines[-1] == "gate passed"
    assert any(line.startswith("  FAIL  benchmarks (file, advisory, ") for line in lines)
    assert list(tmp_path.iterdir()) == [plan], "no journal, no state dir, no flag file"


def test_preflight_alone_fails_with_exit_4_and_json_lines_for_ci(tmp_path):
    plan = write_plan(tmp_path, GATED + "  - {name: code review, kind: manual}\n  - {name: notes, kind: manual, required: false}\n")
    result = brahma("preflight", str(plan), "--json")
    assert result.returncode == 4
    events = [strict_json.loads(line) for line in result.stdout.splitlines()]
    results = {e["item"]: e for e in events[:-1]}
    assert all(e["event"] == "preflight_result" and {"t", "ts", "status", "required", "output", "duration_s"} <= e.keys() for e in events[:-1])
    assert results["code review"]["status"] == "waiting"
    assert events[-1]["event"] == "preflight_failed"
    assert events[-1]["failed"] == ["security scan", "code review"]
    assert events[-1]["waiting_for_sign_off"] == ["code review"]


def test_preflight_alone_says_manual_items_cannot_be_signed_off_headless(tmp_path):
    plan = write_plan(tmp_path, "app: checkout\nimage: r/checkout:2\npreflight:\n  - {name: code review, kind: manual}\n")
    result = brahma("preflight", str(plan))
    assert result.returncode == 4
    assert "  WAIT  code review (manual)" in result.stdout
    assert "gate FAILED: code review" in result.stdout
    assert "manual items cannot be signed off here" in result.stdout


def test_preflight_of_an_invalid_plan_is_exit_2(tmp_path):
    plan = write_plan(tmp_path, "app: checkout\nimage: r/checkout:2\npreflight:\n  - {name: p, kind: prometheus, query: up, condition: soon}\n")
    result = brahma("preflight", str(plan))
    assert result.returncode == 2
    assert f"{plan}:4: preflight[0].condition: expected something like" in result.stderr


def test_a_timed_out_check_leaves_no_process_behind_and_no_traceback(tmp_path):
    background, foreground = unique_sleep(787), unique_sleep(788)
    argv = ["sh", "-c", f"sleep {background} & exec sleep {foreground}"]
    plan = write_plan(
        tmp_path, f"app: checkout\nimage: r/checkout:2\npreflight:\n  - {{name: slow, kind: command, argv: {json.dumps(argv)}, timeout: 500ms}}\n"
    )
    result = brahma("preflight", str(plan))
    assert result.returncode == 4
    assert "  FAIL  slow (command, " in result.stdout and "        timed out after 0.5s" in result.stdout
    assert result.stderr == "", "no 'Event loop is closed' from a pipe collected after the loop"
    running = running_commands()
    assert f"sleep {background}" not in running and f"sleep {foreground}" not in running


CONTROLLING = """\
name: checkout-2.4.1
app: checkout
image: registry.example.com/checkout:2.4.1
preflight:
  - {name: lint, kind: command, argv: ["printf", "%s", "\\x1b[31mFAIL\\x1b[0m\\x1b]0;owned\\x07\\rPASS\\x1b[2J\\n"]}
"""


def test_terminal_control_in_a_checks_output_reaches_neither_screen_nor_journal_nor_report(tmp_path):
    state_dir = tmp_path / "state"
    plan = write_plan(tmp_path, CONTROLLING)
    shown = brahma("preflight", str(plan))
    run = brahma("run", str(plan), "--headless", "--fast", "--json", "--state-dir", str(state_dir))
    journal = [json.loads(line) for line in (state_dir / "checkout-2.4.1.jsonl").read_text().splitlines()]
    lint = [event for event in journal if event.get("item") == "lint"]
    assert [e["status"] for e in lint] == ["running", "pass"] and lint[-1]["output"] == "exit 0\nFAIL␍PASS"
    assert "        FAIL␍PASS" in shown.stdout.splitlines()
    for text in (shown.stdout, run.stdout, (state_dir / "checkout-2.4.1.md").read_text()):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text


def test_preflight_alone_exits_4_as_soon_as_a_required_check_fails_and_kills_the_rest(tmp_path):
    sleeper = ["sleep", f"{600 + os.getpid() % 1000 / 1000:.3f}"]  # an argument no other process has
    plan = write_plan(
        tmp_path,
        "app: checkout\nimage: r/checkout:2\npreflight:\n"
        f"  - {{name: all tests pass, kind: command, argv: {sleeper!r}, timeout: 15m}}\n"
        "  - {name: code review, kind: manual}\n"
        f"  - {{name: security scan, kind: command, argv: ['{sys.executable}', '-c', 'import time; time.sleep(0.5); exit(1)']}}\n",
    )
    started = time.monotonic()
    result = brahma("preflight", str(plan))
    assert result.returncode == 4, result.stdout + result.stderr
    assert time.monotonic() - started < 60, "not after the 600 s check"
    lines = result.stdout.splitlines()
    assert any(line.startswith("  FAIL  security scan (command, ") for line in lines)
    assert any(line.startswith("  CANCEL all tests pass (command, ") for line in lines)
    assert "        cancelled: the gate cannot open: security scan failed" in lines
    assert "gate FAILED: security scan, code review" in lines
    assert "cancelled, as the gate could not open any more: all tests pass" in lines
    assert " ".join(sleeper) not in running_commands(), "the cancelled check's program is gone"


def test_preflight_alone_tells_the_checks_still_running(held_checks):
    plan = plan_from(
        "app: checkout\nimage: r/checkout:2\npreflight:\n"
        "  - {name: all tests pass, kind: command, argv: [make, test]}\n"
        "  - {name: security scan, kind: command, argv: [make, scan]}\n"
    )

    class Log(io.StringIO):
        """A log that lets the scan finish once the progress line told of both checks, then the tests."""

        def write(self, text: str) -> int:
            if "… 2 checks running (" in text:
                held_checks.finish("security scan", True)
            elif "… 1 check running (" in text:
                held_checks.finish("all tests pass", True)
            return super().write(text)

    out = Log()
    assert asyncio.run(run_preflight(plan, json_lines=False, out=out, progress=ProgressLine(out, every_s=0.01))) == 0
    lines = out.getvalue().splitlines()
    both = next(i for i, line in enumerate(lines) if line.startswith("… 2 checks running ("))
    assert lines[both].endswith("): all tests pass, security scan")
    scan = next(i for i, line in enumerate(lines) if line.startswith("  PASS  security scan"))
    alone = next(i for i, line in enumerate(lines) if line.startswith("… 1 check running ("))
    assert both < scan < alone and lines[alone].endswith("): all tests pass")
    assert lines[-1] == "gate passed"


def test_the_progress_line_reads_as_a_person_would_say_it():
    assert progress_text(["all tests pass", "security scan"], 72.4) == "… 2 checks running (1m12s): all tests pass, security scan"
    assert progress_text(["security scan"], 40) == "… 1 check running (40s): security scan"


def test_the_progress_line_is_rare_in_a_log_and_rewritten_in_place_on_a_terminal():
    log = ProgressLine(io.StringIO())
    assert log.every_s == 30.0
    log.show("… 1 check running (30s): scan")
    assert log.stream.getvalue() == "… 1 check running (30s): scan\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = ProgressLine(Terminal())
    assert terminal.every_s <= 5
    terminal.show("… 1 check running (2s): scan")
    terminal.clear()
    assert terminal.stream.getvalue() == "\r\x1b[K… 1 check running (2s): scan\r\x1b[K"


def test_preflight_alone_stopped_by_sigterm_leaves_no_check_running(tmp_path):
    sleeper = ["sleep", f"{700 + os.getpid() % 1000 / 1000:.3f}"]
    plan = write_plan(tmp_path, f"app: checkout\nimage: r/checkout:2\npreflight:\n  - {{name: soak, kind: command, argv: {sleeper!r}, timeout: 15m}}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "console.app", "preflight", str(plan)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while " ".join(sleeper) not in running_commands() and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the check's program to exist, not for the controller
        assert " ".join(sleeper) in running_commands()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "        cancelled: interrupted" in out.splitlines()
    assert "brahma: interrupted; the checks still running were stopped" in err
    assert " ".join(sleeper) not in running_commands()
