"""brahma history and brahma assess: over journals made by running the sample canary headless in virtual
time into a state dir (each finished run archived beside the next), and on the Kubernetes emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from console.app.cli import main
from console.history.assess import PreflightOutcome, TargetEvidence, assess
from console.history.records import ROLLBACK_LIMIT_S, read_history
from testbed.release_history import record_releases
from tests.conftest import SAMPLES, plan_from

RUNS = ("healthy", "error-spike", "healthy")


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """Three releases of the sample canary: completed, rolled back by a critical error rate, completed."""
    state_dir = tmp_path_factory.mktemp("history")
    assert record_releases(state_dir, RUNS) == [0, 3, 0]
    return state_dir


def test_every_run_is_a_release_the_archived_ones_too(released):
    releases = read_history([released]).of("checkout")
    assert [r.outcome for r in releases] == ["completed", "rolled back", "completed"]
    assert len({r.journal for r in releases}) == 3  # two are archived: NAME.STAMP.jsonl
    completed, rolled_back = releases[0], releases[1]
    assert completed.planned_s == completed.actual_s == 105 * 60
    assert rolled_back.actual_s is not None and 0 < rolled_back.actual_s < rolled_back.planned_s
    (rollback,) = rolled_back.rollbacks
    assert (rollback.trigger, rollback.stage, rollback.weight) == ("error_rate", "stage 2", 25)
    assert rollback.verified and 0 <= rollback.seconds < ROLLBACK_LIMIT_S
    assert "error_rate" in rollback.reason


def test_history_prints_each_release_and_the_measured_rollbacks(released, capsys):
    assert main(["history", "checkout", "--state-dir", str(released)]) == 0
    out = capsys.readouterr().out
    assert "checkout: 3 releases (2 completed, 1 rolled back)" in out
    assert "rolled back: planned 1h45m, actual 17m" in out
    assert "time to rollback: 1 measured" in out


def test_history_json(released, capsys):
    assert main(["history", "--state-dir", str(released), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    checkout = document["apps"]["checkout"]
    assert [r["outcome"] for r in checkout["releases"]] == ["completed", "rolled back", "completed"]
    assert checkout["releases"][1]["rollbacks"][0]["trigger"] == "error_rate"
    assert len(checkout["rollbacks"]["measured_s"]) == 1 and checkout["rollbacks"]["not_verified"] == 0


def test_history_of_an_app_never_released_says_so(released, capsys):
    assert main(["history", "billing", "--state-dir", str(released)]) == 0
    assert "no past release of billing" in capsys.readouterr().out


def test_a_rollback_never_verified_is_told_and_counts_against_the_estimate(tmp_path):
    journal = tmp_path / "checkout-1.jsonl"
    lines = [
        {"event": "rollout_started", "t": 0, "ts": "2026-12-01T10:00:00+00:00", "rollout": "checkout-1", "app": "checkout", "image": "r/checkout:1.0.0",
         "strategy": "canary", "plan": "p.yaml", "stages": [{"name": "stage 1", "weight": 5, "observe_s": 600}], "planned_s": 600, "actor": "a"},
        {"event": "stage_started", "t": 0, "ts": "2026-12-01T10:00:00+00:00", "stage": 0, "stage_name": "stage 1", "weight": 5, "observe_s": 600},
        {"event": "rollback_started", "t": 60, "ts": "2026-12-01T10:01:00+00:00", "reason": "error_rate 3% > 1%", "trigger": "error_rate"},
        {"event": "rollback_failed", "t": 70, "ts": "2026-12-01T10:08:00+00:00", "reason": "not_verified", "detail": "canary still serves",
         "attempts": 3, "since_s": 420, "retry_in_s": 30},
    ]  # fmt: skip
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (release,) = read_history([tmp_path]).releases
    assert release.outcome == "rollback not verified"
    assert release.rollbacks[0].open_for_s == 420
    assert "ROLLBACK NOT VERIFIED" in release.went_wrong[0]
    assessment = assess(plan_from("app: checkout\nimage: r/checkout:1.0.1\n"), [release])
    assert "1 never verified" in assessment.rollback and assessment.rollback_within_limit is None
    assert assessment.risk == "high"


def test_assess_the_sample_canary_over_its_history(released, capsys):
    assert main(["assess", str(SAMPLES / "canary.yaml"), "--state-dir", str(released)]) == 0
    out = capsys.readouterr().out
    assert "Rollback: this app's rollbacks: 1 measured" in out and "under the 5m limit" in out
    assert "rollback at stage 2 (25%) by error_rate" in out
    assert "Validated by: error_rate < 0.1%, latency_p50 < 100ms" in out
    assert "Staging: no pre-flight item validates staging: not validated" in out


def test_assess_with_no_history_says_the_estimate_is_unknown(tmp_path, capsys):
    assert main(["assess", str(SAMPLES / "rolling.yaml"), "--state-dir", str(tmp_path / "none"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["rollback"] == "this app's rollbacks: no past rollbacks measured: estimate unknown"
    assert document["rollback_within_limit"] is None
    assert document["went_wrong"] == ["no past release of this app: nothing to learn from"]
    assert document["risk"] in ("medium", "high")
    assert any("code: registry.example.com/search:1.8.3, against a running version nobody measured" in c for c in document["changes"])


@pytest.mark.parametrize(
    ("running", "image", "suggested"),
    [
        ("r/app:1.4.2", "r/app:2.0.0", "blue-green"),
        ("r/app:1.4.2", "r/app:1.5.0", "canary"),
        ("r/app:1.4.2", "r/app:1.4.3", "rolling"),
        (None, "r/app:1.4.3", "canary"),
    ],
    ids=["major", "minor", "patch", "unknown"],
)
def test_the_version_change_suggests_a_strategy(running, image, suggested):
    target = TargetEvidence(running, "the test") if running else TargetEvidence()
    assert assess(plan_from(f"app: app\nimage: {image}\n"), [], target).suggested == suggested


def test_a_config_change_alone_suggests_rolling():
    plan = plan_from("app: app\nimage: r/app:1.4.2\nflags: [{name: dark-mode}]\n")
    assessment = assess(plan, [], TargetEvidence("r/app:1.4.2", "the test"))
    assert assessment.suggested == "rolling" and "config: 1 flag, new: dark-mode" in assessment.changes


def test_a_migration_item_and_pending_infrastructure_make_it_high_risk():
    plan = plan_from(
        "app: app\nimage: r/app:1.4.3\npreflight:\n"
        "  - {name: migrations tested on a copy of production, kind: manual}\n"
        "  - {name: infra, kind: terraform, dir: tf}\n"
        "  - {name: staging validated, kind: manual}\n"
    )
    results = {
        "infra": PreflightOutcome(
            "fail", "terraform plan: CHANGES PENDING (exit 2): the infrastructure differs\n  # kubernetes_deployment.app will be updated in-place"
        ),
        "staging validated": PreflightOutcome("pass", by="qa@host"),
    }
    assessment = assess(plan, [], TargetEvidence("r/app:1.4.2", "the test"), results)
    assert assessment.suggested == "blue-green" and assessment.risk == "high"
    assert any(c.startswith("infra: terraform plan: CHANGES PENDING") and "kubernetes_deployment.app" in c for c in assessment.changes)
    assert assessment.staging == ['"staging validated" (manual): passed (signed off by qa@host)'] and assessment.staging_validated
    unrun = assess(plan, [], TargetEvidence("r/app:1.4.2", "the test"))
    assert 'infra: unknown until the Terraform check "infra" has run' in unrun.changes and not unrun.staging_validated


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "--state-dir", "{tmp}/missing"], "missing: no such state dir"),
        (["history", "--state-dir", "{tmp}/file"], "file: not a directory"),
        (["assess", "{tmp}/missing.yaml"], "missing.yaml"),
        (["assess", str(SAMPLES / "canary.yaml"), "--state-dir", "{tmp}/file"], "file: not a directory"),
    ],
    ids=["history-no-state-dir", "history-state-dir-a-file", "assess-no-plan", "assess-state-dir-a-file"],
)
def test_bad_input_is_exit_2_with_a_message(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("")
    assert main([arg.replace("{tmp}", str(tmp_path)) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_corrupt_journal_is_left_out_and_named(released, tmp_path, capsys):
    (tmp_path / "broken.jsonl").write_text('{"event": "rollout_started"\n{}\n')
    assert main(["history", "--state-dir", str(released), "--state-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "left out:" in captured.err and "broken.jsonl:1" in captured.err
    assert "checkout: 3 releases" in captured.out


def test_the_runbook_opens_with_the_think_step_of_its_release(released):
    from console.report import write_report

    journal = max(read_history([released]).releases, key=lambda r: r.started_ts).journal
    text = write_report(journal, released / "again.md").read_text()
    assert text.index("## Think step") < text.index("## Changes")
    assert "- Rollback: this app's rollbacks: 1 measured" in text  # the releases before it, not itself


def test_on_a_cluster_the_deployment_says_what_runs_and_how_long_it_rolled_out(kube_emulator, tmp_path):
    from console.history.cluster import deployment_evidence
    from console.plan import load_plan
    from testbed.kubernetes_support import apply_sample

    apply_sample(kube_emulator, "canary.yaml")
    plan = load_plan(SAMPLES / "kubernetes-canary.yaml")
    evidence = asyncio.run(deployment_evidence(plan, kubeconfig=str(kube_emulator.kubeconfig_path)))
    assert evidence.running_image and evidence.running_image != plan.image
    assert evidence.running_from == "the cluster's deployment/checkout in default"
    (seconds,) = evidence.rollout_times_s
    assert 0 <= seconds < 60
    assessment = assess(plan, [], evidence)
    assert "the Deployment's recent rollouts: worst" in assessment.rollback and assessment.rollback_within_limit
