"""The runbook from a journal alone: the gate's results, flag changes, notifications, the time to
rollback and the follow-up actions."""

from __future__ import annotations

from pathlib import Path

from console.controller import events as ev
from console.controller.journal import Journal
from console.cli import main
from console.report import write_report

STARTED = ev.RolloutStarted(
    0.0, rollout="checkout-2.4.1", app="checkout", image="r/checkout:2.4.1", strategy="canary", plan="plan.yaml",
    stages=[{"name": "stage 1", "weight": 5, "observe_s": 600}], planned_s=600, actor="captain@laptop",
    rollback_plan="weight 0, flags off",
)


def write_journal(path: Path, events: list[ev.Event]) -> Path:
    journal = Journal(path)
    for event in events:
        journal.append(event)
    journal.close()
    return path


def rolled_back_release(path: Path) -> Path:
    return write_journal(path, [
        STARTED,
        ev.FlagChanged(0.0, flag="new-flow", old={}, new={"enabled": False, "percentage": 0}, actor="brahma", reason="created disabled before the deploy"),
        ev.PreflightResult(0.0, item="unit tests", kind="command", status="pass", required=True, output="exit 0\n42 passed", duration_s=1.5, by="brahma"),
        ev.PreflightResult(0.0, item="code review", kind="manual", status="waiting", required=True, output="waiting for a sign-off"),
        ev.PreflightResult(0.0, item="code review", kind="manual", status="pass", required=True, output="signed off by reviewer@desk", by="reviewer@desk"),
        ev.PreflightResult(0.0, item="benchmarks", kind="command", status="fail", required=False, output="exit 1\np99 +18% over budget\nsee bench.txt", duration_s=3.0, by="brahma"),
        ev.PreflightResult(0.0, item="infrastructure", kind="terraform", status="pass", required=True, output="terraform plan: no changes (exit 0)\nstate backed up to .brahma/x.json", by="brahma"),
        ev.PreflightPassed(0.0),
        ev.TargetPrepared(0.0, before={"stable_image": "r/checkout:2.4.0"}, changes=["create canary"]),
        ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
        ev.RollbackStarted(170.0, reason="error_rate 3% > 1%", trigger="error_rate"),
        ev.NotificationSent(170.2, webhook="slack hooks.slack.com", about="rollback_started", status="sent", attempts=3, detail="HTTP 200 after HTTP 500, HTTP 500"),
        ev.FlagChanged(170.0, flag="new-flow", old={"enabled": True, "percentage": 5}, new={"enabled": False, "percentage": 5}, actor="brahma", reason="rollback: error_rate 3% > 1%"),
        ev.RolledBack(170.0, duration_s=0.012),
        ev.NotificationSent(171.0, webhook="json deploys.example.com", about="rolled_back", status="failed", attempts=4, detail="HTTP 503"),
        ev.ErrorRaised(171.0, where="notify json deploys.example.com", message="rolled_back not delivered after 4 attempts: HTTP 503"),
    ])


def test_the_runbook_of_a_rolled_back_release(tmp_path):
    report = write_report(rolled_back_release(tmp_path / "checkout-2.4.1.jsonl")).read_text()
    assert report.startswith("# Release checkout-2.4.1: rolled back")
    assert "- Time to rollback: 0.012s of Brahma's own time from the decision to stable serving 100%" in report
    # The gate: each item once, with its last result and who signed it off.
    assert "| code review | manual | yes | pass | reviewer@desk | 0.00s | signed off by reviewer@desk |" in report
    assert report.count("| code review |") == 1
    assert "| benchmarks | command | advisory | fail | brahma | 3.00s | see bench.txt |" in report
    assert "### benchmarks: fail (advisory)\n\n~~~\nexit 1\np99 +18% over budget\nsee bench.txt\n~~~" in report
    assert "### unit tests" not in report, "the whole output only for items that did not pass"
    # Flag changes, the notifications and what failed among them.
    assert "- `0:00` new-flow: created (off, 0%) by brahma (created disabled before the deploy)" in report
    assert "- `2:50` new-flow: on, 5% → off, 5% by brahma (rollback: error_rate 3% > 1%)" in report
    assert "| `2:50` | slack hooks.slack.com | rollback_started | sent | 3 | HTTP 200 after HTTP 500, HTTP 500 |" in report
    assert "| `2:51` | json deploys.example.com | rolled_back | failed | 4 | HTTP 503 |" in report
    assert "- `2:51` Error in notify json deploys.example.com: rolled_back not delivered after 4 attempts: HTTP 503" in report
    follow_ups = report.split("## Follow-up actions\n\n", 1)[1].splitlines()
    assert follow_ups[:2] == [
        "- [ ] Find the cause of the rollback (error_rate): error_rate 3% > 1%",
        "- [ ] Fix, then run the release again; the journal of this attempt is kept beside the new one.",
    ]
    assert "- [ ] Look into the advisory pre-flight items that did not pass: benchmarks." in follow_ups
    assert "- [ ] Fix the webhooks that could not be notified (json deploys.example.com) and tell their people by hand." in follow_ups


def test_a_release_with_no_notifications_says_so(tmp_path):
    journal = write_journal(tmp_path / "r.jsonl", [STARTED, ev.PreflightPassed(0.0), ev.Completed(600.0)])
    report = write_report(journal).read_text()
    assert "## Notifications\n\nNone sent.\n" in report


def test_secrets_in_outputs_are_masked_in_the_runbook(tmp_path):
    output = "GET https://deployer:hunter2@staging.example.com/healthz?token=abc123\nAuthorization: Bearer eyJhbGciOi.secret"
    journal = write_journal(tmp_path / "r.jsonl", [
        STARTED,
        ev.PreflightResult(0.0, item="staging", kind="http", status="fail", required=True, output=output, by="brahma"),
        ev.PreflightFailed(0.0, failed=["staging"]),
    ])
    report = write_report(journal).read_text()
    for secret in ("hunter2", "abc123", "eyJhbGciOi"):
        assert secret not in report
    assert "- [ ] Make the failed pre-flight items pass (staging), then run the release again." in report


def test_brahma_report_writes_it_again_from_any_journal(tmp_path, capsys):
    journal = rolled_back_release(tmp_path / "old.jsonl")
    assert main(["report", str(journal), "--output", str(tmp_path / "again.md")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == write_report(journal, tmp_path / "first.md").read_text()


def open_rollback(path: Path, verified: bool) -> Path:
    """A rollback whose target failed twice (the second journaled a minute on), then read back stable alone, or not yet."""
    failure = dict(reason="rollback", detail="the Kubernetes API at https://k8s:6443 is unreachable: Connection refused")
    return write_journal(path, [
        STARTED,
        ev.PreflightPassed(0.0),
        ev.TargetPrepared(0.0, before={"stable_image": "r/checkout:2.4.0"}, changes=["create canary"]),
        ev.StageStarted(0.0, stage=0, stage_name="stage 1", weight=5, observe_s=600),
        ev.RollbackStarted(170.0, reason="error_rate 3% > 1%", trigger="error_rate"),
        ev.RollbackFailed(173.0, **failure, attempts=1, since_s=0.0, retry_in_s=1.0),
        ev.RollbackFailed(234.0, **failure, attempts=7, since_s=61.0, retry_in_s=30.0),
        *([ev.RolledBack(266.0, duration_s=96.0, read_back="deployment/checkout runs checkout=r/checkout:2.4.0; no deployment/checkout-canary")] if verified else []),
    ])


def test_an_unverified_rollback_heads_the_runbook_and_its_issues(tmp_path):
    report = write_report(open_rollback(tmp_path / "r.jsonl", verified=False)).read_text()
    assert report.startswith("# Release checkout-2.4.1: rollback NOT verified")
    issues = report.split("## Issues\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert issues == [
        "- `2:50` Rollback started (error_rate): error_rate 3% > 1%",
        "- `2:53` Rollback NOT verified: the target failed to roll back (1 attempt): the Kubernetes API at https://k8s:6443 is unreachable: Connection refused",
        "- `3:54` Rollback NOT verified: the target failed to roll back (7 attempts, 1m1s): the Kubernetes API at https://k8s:6443 is unreachable: Connection refused",
    ]
    follow_ups = report.split("## Follow-up actions\n\n", 1)[1]
    assert "The rollback is not verified: the target may still serve the new version." in follow_ups
    assert "The rollout is unfinished" not in follow_ups


def test_a_rollback_verified_after_failures_keeps_them_and_what_was_read_back(tmp_path):
    report = write_report(open_rollback(tmp_path / "r.jsonl", verified=True)).read_text()
    assert report.startswith("# Release checkout-2.4.1: rolled back")
    assert report.count("Rollback NOT verified") == 2
    assert "- `4:26` rolled back in 96.000s (read back: deployment/checkout runs checkout=r/checkout:2.4.0; no deployment/checkout-canary)" in report


def test_a_gate_closed_at_once_asks_to_fix_what_failed_not_what_it_cancelled(tmp_path):
    report = write_report(write_journal(tmp_path / "checkout-2.4.1.jsonl", [
        STARTED,
        ev.PreflightResult(0.0, item="all tests pass", kind="command", status="running", required=True, by="brahma"),
        ev.PreflightResult(0.0, item="security scan", kind="command", status="running", required=True, by="brahma"),
        ev.PreflightResult(0.0, item="security scan", kind="command", status="fail", required=True, output="exit 1\nCVE-2024-0001", duration_s=2.0, by="brahma"),
        ev.PreflightResult(0.0, item="all tests pass", kind="command", status="cancelled", required=True,
                           output="cancelled: the gate cannot open: security scan failed", duration_s=2.0, by="brahma"),
        ev.PreflightFailed(0.0, failed=["security scan"]),
    ])).read_text()
    assert "| all tests pass | command | yes | cancelled | brahma | 2.00s | cancelled: the gate cannot open: security scan failed |" in report
    assert "- [ ] Make the failed pre-flight items pass (security scan), then run the release again." in report
