"""The terraform check on the sample Terraform files: the inventory, mismatches with the plan,
malformed HCL, and (where terraform is installed) `plan -detailed-exitcode` and the state backup.

`terraform init` downloads providers, and this machine has no network: the binary tests use a
configuration of `terraform_data` only, which is built into Terraform and works offline.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console.plan.model import PreflightSpec
from console.preflight import Gate, PreflightContext
from console.preflight.process import CAPTURE_BYTES
from console.preflight.terraform import HclError, find_binary, mismatches, read_directory, run_plan
from tests.conftest import ROOT, SAMPLES, plan_from

SAMPLE_TERRAFORM = SAMPLES / "terraform"
BROKEN = SAMPLES / "terraform-broken"
OFFLINE = ROOT / "tests" / "data" / "terraform-offline"
BINARY = find_binary()
needs_terraform = pytest.mark.skipif(BINARY is None, reason="neither terraform nor tofu is installed")
CHECKOUT = "app: checkout\nimage: r/checkout:2.4.1\ntarget: {kind: kubernetes, namespace: shop}\n"


def terraform_item(directory: Path, **fields) -> PreflightSpec:
    return PreflightSpec(name="infrastructure", kind="terraform", dir=str(directory), **{"timeout": 120, **fields})


async def check(directory: Path, plan_text: str = CHECKOUT, **context):
    plan = plan_from(plan_text)
    [result] = await Gate((terraform_item(directory),), PreflightContext(plan, **context)).run_checks(lambda result: None)
    return result


@pytest.fixture
def terraform_env(monkeypatch):
    """Terraform with no user configuration (a missing CLI config file only adds warnings)."""
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")


def test_the_inventory_shows_what_the_sample_declares():
    inventory = read_directory(SAMPLE_TERRAFORM)
    assert inventory.files == ["main.tf", "variables.tf", "versions.tf"]
    assert [resource.describe() for resource in inventory.resources] == [
        'kubernetes_deployment_v1.checkout: deployment "checkout" in shop, 10 replicas, image registry.example.com/checkout:2.4.0',
        'kubernetes_service_v1.checkout: service "checkout" in shop',
    ]


def test_the_sample_matches_the_gated_sample_plan():
    from console.plan import load_plan

    assert mismatches(read_directory(SAMPLE_TERRAFORM), load_plan(SAMPLES / "canary-gated.yaml")) == []


@pytest.mark.parametrize(
    "target, expected",
    [
        ("{kind: kubernetes, namespace: shop, deployment: web}", ['the plan\'s deployment "web" is not declared (declared deployments: checkout)']),
        (
            "{kind: kubernetes, namespace: payments}",
            [
                'kubernetes_deployment_v1.checkout is in namespace "shop", the plan uses "payments"',
                'kubernetes_service_v1.checkout is in namespace "shop", the plan uses "payments"',
            ],
        ),
        ("{kind: kubernetes, namespace: shop, replicas: 4}", ["kubernetes_deployment_v1.checkout declares 10 replicas, the plan 4"]),
        (
            "{kind: kubernetes, namespace: shop, preview_service: checkout-preview}",
            ['the plan\'s service "checkout-preview" is not declared (declared services: checkout)'],
        ),
    ],
)
def test_mismatches_between_the_plan_and_the_code(target, expected):
    plan = plan_from(f"app: checkout\nimage: r/checkout:2.4.1\ntarget: {target}\n")
    assert mismatches(read_directory(SAMPLE_TERRAFORM), plan) == expected


@pytest.mark.parametrize(
    "directory, message",
    [
        ("unclosed-block", "unclosed-block/main.tf:9: not valid HCL: unexpected end of file (a block, bracket or string left open?)"),
        ("stray-equals", "stray-equals/service.tf:4:12: not valid HCL: unexpected '='"),
    ],
)
def test_malformed_hcl_names_file_and_line(directory, message):
    with pytest.raises(HclError) as caught:
        read_directory(BROKEN / directory)
    assert str(caught.value) == f"{BROKEN}/{message}"


async def test_a_malformed_directory_fails_the_item_with_its_error(terraform_env):
    result = await check(BROKEN / "unclosed-block")
    assert result.status == "fail"
    assert result.output == f"{BROKEN}/unclosed-block/main.tf:9: not valid HCL: unexpected end of file (a block, bracket or string left open?)"


async def test_a_missing_directory_fails_clearly(tmp_path):
    result = await check(tmp_path / "nowhere")
    assert result.output == f"{tmp_path / 'nowhere'}: no such directory"


def test_brahma_preflight_reports_malformed_hcl_without_a_traceback(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(CHECKOUT + f"preflight:\n  - {{name: infrastructure, kind: terraform, dir: {BROKEN / 'stray-equals'}}}\n")
    result = subprocess.run([sys.executable, "-m", "console.app", "preflight", str(plan)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 4
    assert f"{BROKEN}/stray-equals/service.tf:4:12: not valid HCL: unexpected '='" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


async def test_without_a_binary_the_inventory_alone_decides(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = await check(SAMPLE_TERRAFORM)
    assert result.status == "pass", result.output
    assert result.output.splitlines()[-2:] == [
        "the plan's Deployment and Service are declared as the plan names them",
        "plan not run: neither terraform nor tofu is installed",
    ]


# --- the binary (offline) -----------------------------------------------------------------------


@pytest.fixture
def offline_copy(tmp_path, terraform_env) -> Path:
    directory = tmp_path / "infra"
    shutil.copytree(OFFLINE, directory)
    return directory


def terraform(directory: Path, *args: str) -> None:
    subprocess.run([BINARY, *args, "-input=false", "-no-color"], cwd=directory, check=True, capture_output=True, timeout=120)


@needs_terraform
async def test_plan_pending_changes_is_exit_2_and_lists_them(offline_copy):
    passed, lines = await run_plan(BINARY, offline_copy, timeout=120)
    name = Path(BINARY).name
    assert not passed
    assert lines == [
        f"{name} plan: CHANGES PENDING (exit 2): the infrastructure differs from the code",
        "  # terraform_data.release_marker will be created",
        "Plan: 1 to add, 0 to change, 0 to destroy.",
    ]


@needs_terraform
async def test_plan_with_no_changes_is_exit_0_and_the_state_is_backed_up_before_the_run(offline_copy, tmp_path):
    terraform(offline_copy, "apply", "-auto-approve")
    state_dir = tmp_path / "state"
    result = await check(offline_copy, state_dir=state_dir)
    name = Path(BINARY).name
    lines = result.output.splitlines()
    assert f"{name} plan: no changes (exit 0)" in lines
    # The offline configuration declares no Deployment: the inventory says so, and that fails the item.
    assert result.status == "fail"
    assert any(line.startswith('MISMATCH: the plan\'s deployment "checkout" is not declared') for line in lines)
    [backup] = state_dir.glob("checkout-2.4.1.tfstate.*.json")
    assert lines[-1] == f"state backed up to {backup}"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600, "state holds secrets"
    state = json.loads(backup.read_text())
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]


@needs_terraform
async def test_a_state_larger_than_the_output_kept_in_memory_is_backed_up_whole(offline_copy, tmp_path):
    (offline_copy / "inventory.tf").write_text(
        # 1000 hosts of 10 racks each: about 270 KB of state (range() gives at most 1024 values).
        'resource "terraform_data" "inventory" {\n  input = [for n in range(1000) : "host-${n}: ${join(" ", [for m in range(10) : "rack-${m}"])}"]\n}\n'
    )
    terraform(offline_copy, "apply", "-auto-approve")
    result = await check(offline_copy, state_dir=tmp_path / "state")
    [backup] = (tmp_path / "state").glob("checkout-2.4.1.tfstate.*.json")
    assert result.output.splitlines()[-1] == f"state backed up to {backup}"
    assert backup.stat().st_size > CAPTURE_BYTES
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    [inventory] = [r for r in json.loads(backup.read_text())["resources"] if r["name"] == "inventory"]
    assert inventory["instances"][0]["attributes"]["input"]["value"][-1] == "host-999: " + " ".join(f"rack-{m}" for m in range(10))
    assert sorted(path.name for path in backup.parent.iterdir()) == [backup.name], "no temporary file left"


@needs_terraform
async def test_the_gate_alone_backs_nothing_up(offline_copy):
    terraform(offline_copy, "apply", "-auto-approve")
    result = await check(offline_copy)
    assert "state backed up" not in result.output


@needs_terraform
async def test_an_uninitialised_directory_is_an_error_that_says_to_init(tmp_path, terraform_env):
    directory = tmp_path / "infra"
    shutil.copytree(SAMPLE_TERRAFORM, directory)
    result = await check(directory, state_dir=tmp_path / "state")
    name = Path(BINARY).name
    assert result.status == "fail"
    assert f"{name} plan: ERROR (exit 1)" in result.output
    assert f"the directory is not initialised: run `{name} init` where providers can be downloaded" in result.output
    assert not (tmp_path / "state").exists(), "nothing to back up before init"
