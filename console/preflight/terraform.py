"""The `terraform` check: what a Terraform/OpenTofu directory declares, whether it matches the plan,
and whether the live infrastructure has drifted from it.

1. Inventory, always: every `*.tf` file is read with python-hcl2 (never executed). The check lists
   the resources, the Kubernetes Deployments (with replicas and image) and Services, and fails on
   a mismatch with the plan: its Deployment or Service not declared, another namespace, other
   replicas. Names written as `var.x` take the variable's default; other expressions are shown as
   written and not compared. Modules are listed, not followed; `*.tf.json` files are not read.
   Malformed HCL fails the item with FILE:LINE:COLUMN and what was unexpected.
2. Drift, when a `terraform` (or else `tofu`) binary is on PATH: `plan -detailed-exitcode` runs in
   the directory, without a shell and with the item's timeout. Exit 0 (no changes) passes, 2
   (changes pending) fails with the pending changes listed, 1 is an error (an uninitialised
   directory among them: Brahma never runs `init`, which downloads providers).
3. Backup, on `brahma run` only, when the directory is initialised (`.terraform/`) or keeps a
   local `terraform.tfstate`: `state pull` is written to the state dir (mode 0600: state holds
   secrets) before anything changes, as `RELEASE.tfstate.STAMP.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.plan.model import PreflightSpec, RolloutPlan
from console.preflight.context import PreflightContext
from console.preflight.process import run_program, tail
from console.private_files import make_state_dir

KUBERNETES_KINDS = {
    "kubernetes_deployment": "deployment",
    "kubernetes_deployment_v1": "deployment",
    "kubernetes_service": "service",
    "kubernetes_service_v1": "service",
}
TERRAFORM_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
_VARIABLE = re.compile(r"^\$\{var\.([A-Za-z_][A-Za-z0-9_-]*)\}$")
_PLAN_SUMMARY = re.compile(r"^(No changes\.|Plan: .*|Error: .*|[ \t]+# .*)$", re.MULTILINE)
_NEEDS_INIT = re.compile(r"\b(terraform|tofu) init\b")


class HclError(Exception):
    """A Terraform file that is not valid HCL, with where and what."""

    def __init__(self, path: Path, line: int, column: int | None, message: str):
        self.path, self.line, self.column, self.message = path, line, column, message
        where = f"{path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: not valid HCL: {message}")


@dataclass(frozen=True)
class Declared:
    """One resource block: `type.name`, and for a Deployment or Service what it names."""

    type: str
    name: str
    file: str
    kind: str | None = None
    """deployment or service (Kubernetes resources), None for anything else."""
    object_name: str | None = None
    namespace: str | None = None
    replicas: int | str | None = None
    image: str | None = None

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def describe(self) -> str:
        if self.kind is None:
            return self.address
        parts = [f'{self.kind} "{self.object_name}" in {self.namespace or "default"}']
        if self.replicas is not None:
            parts.append(f"{self.replicas} replicas")
        if self.image:
            parts.append(f"image {self.image}")
        return f"{self.address}: {', '.join(parts)}"


@dataclass
class Inventory:
    directory: Path
    files: list[str] = field(default_factory=list)
    resources: list[Declared] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    def objects(self, kind: str) -> dict[str, Declared]:
        return {r.object_name: r for r in self.resources if r.kind == kind and r.object_name}

    def describe(self) -> list[str]:
        count = f"{len(self.resources)} resource{'s' if len(self.resources) != 1 else ''}"
        lines = [f"{self.directory}: {count} in {', '.join(self.files)}"]
        lines += [f"  {resource.describe()}" for resource in self.resources]
        lines += [f"  module {module} (not followed)" for module in self.modules]
        return lines


# --- reading HCL --------------------------------------------------------------------------------


def _syntax_error(path: Path, text: str, error: Exception) -> HclError:
    """lark's exception as FILE:LINE:COLUMN and what was unexpected, in a line a person reads."""
    line, column = getattr(error, "line", None), getattr(error, "column", None)
    token = getattr(error, "token", None)
    at_end = token is not None and token.type == "$END"
    if at_end:
        message = "unexpected end of file (a block, bracket or string left open?)"
    elif token is not None:
        message = f"unexpected {(str(token).strip().splitlines() or [''])[0][:40]!r}"
    elif getattr(error, "char", None):
        message = f"unexpected character {error.char!r}"  # type: ignore[attr-defined]
    else:
        message = (str(error).splitlines() or [type(error).__name__])[0]
    if at_end or not isinstance(line, int) or line < 1:
        # The end of the file: point at its last line, where the missing closer belongs.
        return HclError(path, text.rstrip().count("\n") + 1, None, message)
    return HclError(path, line, column if isinstance(column, int) and column > 0 else None, message)


def parse_file(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2 import SerializationOptions

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return hcl2.loads(text, serialization_options=SerializationOptions(strip_string_quotes=True, with_comments=False))
    except Exception as error:  # lark raises many kinds; each is a syntax error here
        raise _syntax_error(path, text, error) from None


def _first(block: Any) -> dict[str, Any]:
    """A nested block (a list of one mapping in python-hcl2's form) as its mapping."""
    if isinstance(block, list):
        block = block[0] if block else {}
    return block if isinstance(block, dict) else {}


def _resolve(value: Any, variables: dict[str, Any]) -> Any:
    """`${var.x}` as the variable's default when it has one; anything else as written."""
    if isinstance(value, str):
        match = _VARIABLE.match(value)
        if match and variables.get(match.group(1)) is not None:
            return variables[match.group(1)]
    return value


def _declared(type_: str, name: str, body: dict[str, Any], file: str, variables: dict[str, Any]) -> Declared:
    kind = KUBERNETES_KINDS.get(type_)
    if kind is None:
        return Declared(type_, name, file)
    metadata, spec = _first(body.get("metadata")), _first(body.get("spec"))
    replicas = image = None
    if kind == "deployment":
        replicas = _resolve(spec.get("replicas", 1), variables)
        container = _first(_first(_first(spec.get("template")).get("spec")).get("container"))
        image = _resolve(container.get("image"), variables)
    return Declared(
        type_,
        name,
        file,
        kind,
        object_name=_resolve(metadata.get("name"), variables),
        namespace=_resolve(metadata.get("namespace"), variables),
        replicas=replicas,
        image=image,
    )


def read_directory(directory: str | Path) -> Inventory:
    """What the directory's `*.tf` files declare; HclError on the first malformed file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"{directory}: no *.tf files")
    documents = [(path.name, parse_file(path)) for path in files]
    variables = {name: _first(body).get("default") for _, document in documents for block in document.get("variable", []) for name, body in block.items()}
    inventory = Inventory(directory, [name for name, _ in documents])
    for file, document in documents:
        for block in document.get("resource", []):
            for type_, named in block.items():
                for name, body in named.items():
                    inventory.resources.append(_declared(type_, name, _first(body), file, variables))
        inventory.modules += [name for block in document.get("module", []) for name in block]
    return inventory


def mismatches(inventory: Inventory, plan: RolloutPlan) -> list[str]:
    """Where the plan and the declared objects disagree; empty when they agree."""
    target = plan.target
    wanted = [("deployment", target.deployment or plan.app), ("service", target.service or plan.app)]
    if target.preview_service:
        wanted.append(("service", target.preview_service))
    found = []
    for kind, name in wanted:
        declared = inventory.objects(kind)
        resource = declared.get(name)
        if resource is None:
            others = ", ".join(sorted(declared)) or "none"
            found.append(f'the plan\'s {kind} "{name}" is not declared (declared {kind}s: {others})')
            continue
        if isinstance(resource.namespace, str) and resource.namespace != target.namespace and "${" not in resource.namespace:
            found.append(f'{resource.address} is in namespace "{resource.namespace}", the plan uses "{target.namespace}"')
        if kind == "deployment" and target.replicas and isinstance(resource.replicas, int) and resource.replicas != target.replicas:
            found.append(f"{resource.address} declares {resource.replicas} replicas, the plan {target.replicas}")
    return found


# --- running the binary -------------------------------------------------------------------------


def find_binary() -> str | None:
    return shutil.which("terraform") or shutil.which("tofu")


async def run_plan(binary: str, directory: Path, timeout: float) -> tuple[bool, list[str]]:
    argv = [binary, "plan", "-detailed-exitcode", "-input=false", "-no-color", "-lock-timeout=0s"]
    finished = await run_program(argv, timeout, cwd=directory, env=TERRAFORM_ENV)
    name = Path(binary).name
    summary = [line.rstrip() for line in _PLAN_SUMMARY.findall(finished.output)]
    if finished.returncode == 0:
        return True, [f"{name} plan: no changes (exit 0)"]
    if finished.returncode == 2:
        return False, [f"{name} plan: CHANGES PENDING (exit 2): the infrastructure differs from the code", *summary]
    if finished.returncode is None:
        return False, [f"{name} plan: {finished.output}"]
    hint = [f"  the directory is not initialised: run `{name} init` where providers can be downloaded"] if _NEEDS_INIT.search(finished.output) else []
    return False, [f"{name} plan: ERROR (exit {finished.returncode})", *(summary or [tail(finished.output)]), *hint]


def is_initialised(directory: Path) -> bool:
    return (directory / ".terraform").is_dir() or (directory / "terraform.tfstate").is_file()


async def back_up_state(binary: str, directory: Path, state_dir: Path, release: str, timeout: float) -> tuple[bool, str]:
    """`state pull` straight into a file only its owner reads (state holds secrets), renamed in place
    once whole: the state is never held in the output a check keeps, which is bounded."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    backup = state_dir / f"{release}.tfstate.{stamp}.json"
    make_state_dir(state_dir)
    temporary = backup.with_name(f".{backup.name}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600), "w+b") as file:
            finished = await run_program([binary, "state", "pull"], timeout, cwd=directory, env=TERRAFORM_ENV, stdout=file)
            if finished.returncode != 0:
                return False, f"state backup FAILED: {tail(finished.output.strip())}"
            file.seek(0)
            state = file.read()
            if not state.strip():
                return True, "state: none yet, nothing to back up"
            try:
                json.loads(state)
            except ValueError:
                return False, "state backup FAILED: `state pull` printed something that is not state JSON"
            os.fsync(file.fileno())
        os.replace(temporary, backup)
    finally:
        temporary.unlink(missing_ok=True)
    return True, f"state backed up to {backup}"


async def check_directory(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    plan = context.plan
    directory = Path(item.dir or "")
    deadline = time.monotonic() + item.timeout
    try:
        inventory = await asyncio.to_thread(read_directory, directory)
    except (HclError, FileNotFoundError) as error:
        return False, str(error)
    lines = inventory.describe()
    problems = mismatches(inventory, plan)
    lines += [f"MISMATCH: {problem}" for problem in problems] or ["the plan's Deployment and Service are declared as the plan names them"]
    passed = not problems
    binary = find_binary()
    if binary is None:
        return passed, "\n".join([*lines, "plan not run: neither terraform nor tofu is installed"])
    planned, plan_lines = await run_plan(binary, directory, item.timeout)
    passed, lines = passed and planned, lines + plan_lines
    if context.state_dir is not None and is_initialised(directory):
        backed_up, line = await back_up_state(binary, directory, context.state_dir, plan.name, max(1.0, deadline - time.monotonic()))
        passed, lines = passed and backed_up, lines + [line]
    return passed, tail("\n".join(lines))  # a large plan's changes: the verdict and the backup are at the end
