"""The Rollback Plan: how the release rolls back by itself, what to run now for how it ran
(simulator or cluster, headless or at a console, finished or not), and on a cluster the kubectl
commands that do what Brahma's rollback does, with the objects' names from the journal."""

from __future__ import annotations

from typing import Any

from console import strict_json
from console.journal.state import Phase
from console.report.facts import ReportData
from console.report.markdown import bullet, code_block, paragraph, plain, table

ROLLBACK_METHODS = {
    "canary": "traffic back to stable (canary weight 0, stable image restored)",
    "blue-green": "active selector switched back to blue",
    "rolling": "undo to the previous revision",
}


def rollback_plan(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    lines = ["## Rollback Plan", ""]
    if started is None:
        return lines
    lines += bullet(
        f"Automatic: {ROLLBACK_METHODS.get(started.strategy, 'traffic back to stable')}, then flags marked disable_on_rollback switched off, then stable verified."
    )
    lines.append("")
    lines += _what_to_do_now(data)
    if data.on_cluster and state.phase != Phase.GATE_FAILED:
        lines += _by_hand_on_the_cluster(data)
    elif data.prepared is not None:
        lines += paragraph("On the simulator there is nothing to change by hand: Brahma's own commands above are the whole way back.") + [""]
    if started.rollback_plan:
        lines += bullet(f"From the plan: {' '.join(started.rollback_plan.split())}") + [""]
    if data.prepared is not None:
        lines += _before_lines(data.prepared.before)
    return lines


def _before_lines(before: dict[str, Any]) -> list[str]:
    """The state the rollback goes back to, as the target recorded it before the first change."""
    if "stable_image" in before:
        said = f"stable image {before['stable_image']}, canary weight {before.get('weight', 0)}%, {before.get('replicas', '?')} replicas"
        return bullet(f"State before the release: {said}") + [""]
    rows = [[key.replace("_", " "), plain(value)] for key, value in before.items()]
    return ["State before the release, as the target recorded it:", ""] + table(["what", "before the release"], rows) + [""]


def _what_to_do_now(data: ReportData) -> list[str]:
    started, state = data.started, data.state
    name, state_dir = started.rollout, data.journal.parent
    attach = f"brahma attach {name} --state-dir {state_dir}"
    run = f"brahma run {started.plan} --state-dir {state_dir}"
    if state.phase == Phase.COMPLETED:
        return (
            paragraph("To undo this release, open the console on it and press ctrl+r, then Enter: a controller takes the journal up and rolls it back.")
            + [""]
            + code_block([attach])
            + [""]
        )
    if state.phase == Phase.ROLLED_BACK:
        return (
            paragraph("Nothing to undo: stable serves 100%. To release again once fixed (this journal is kept beside the new one):")
            + [""]
            + code_block([run + (" --headless" if started.headless else "")])
            + [""]
        )
    if state.phase == Phase.GATE_FAILED:
        return (
            paragraph("Nothing was changed, so nothing to roll back. Make the failed items pass, then run the release again:") + [""] + code_block([run]) + [""]
        )
    if state.phase == Phase.ROLLING_BACK:
        said = paragraph(
            "The rollback is NOT verified: the new version may still serve traffic. Check the target by hand now, "
            "and take the rollback up again (it retries from the journal until the target reads back stable serving all):"
        )
        return said + [""] + code_block([attach if started.headless is False else run + (" --headless" if started.headless else "")]) + [""]
    if started.headless:
        said = paragraph(
            "It ran headless and is unfinished. The same command takes it up where the journal ends; to decide by hand instead (resume, promote, or ctrl+r then Enter to roll back), open the console on it:"
        )
        return said + [""] + code_block([run + " --headless", run]) + [""]
    if started.headless is False:
        said = paragraph(
            "It ran at a console and is unfinished. Attach to it (this restarts its controller if it died); ctrl+r then Enter rolls back, space resumes, p promotes:"
        )
        return said + [""] + code_block([attach]) + [""]
    said = paragraph("It is unfinished. Running the release again takes it up where the journal ends (and attaches if a controller still supervises it):")
    return said + [""] + code_block([run]) + [""]


def _by_hand_on_the_cluster(data: ReportData) -> list[str]:
    """The kubectl commands that do what Brahma's rollback does, with the objects' names from the journal."""
    before = data.prepared.before
    kubectl = f"kubectl -n {before.get('namespace') or 'NAMESPACE'}"
    strategy = before.get("strategy")
    images = " ".join(f"{c}={i}" for c, i in (before.get("images") or {}).items())
    if strategy == "canary":
        commands = ["# traffic back to stable: this is the rollback"]
        if before.get("httproute"):
            patch = [{"op": "replace", "path": f"/spec/rules/{i}/backendRefs", "value": refs} for i, refs in enumerate(before.get("route_backends") or [])]
            commands.append(f"{kubectl} patch httproute/{before['httproute']} --type=json -p '{strict_json.dumps(patch)}'")
        commands.append(f"{kubectl} delete deployment/{before['canary_deployment']} --ignore-not-found")
        commands += [
            "# stable's image as it was (it changed only if the release was promoted)",
            f"{kubectl} set image deployment/{before['deployment']} {images}",
        ]
        if before.get("canary_service") and not before.get("canary_service_existed"):
            commands.append(f"{kubectl} delete service/{before['canary_service']} --ignore-not-found")
        commands.append(f"{kubectl} rollout status deployment/{before['deployment']}")
    elif strategy == "blue-green":
        selector = strict_json.dumps([{"op": "replace", "path": "/spec/selector", "value": before.get("selector") or {}}])
        commands = [
            "# the active Service selects the old colour again: this is the rollback",
            f"{kubectl} patch service/{before['service']} --type=json -p '{selector}'",
        ]
        tidy = []
        if before.get("preview_selector") is None:
            tidy.append(f"{kubectl} delete service/{before['preview_service']} --ignore-not-found")
        if not before.get("new_existed"):
            tidy.append(f"{kubectl} delete deployment/{before['new_deployment']} --ignore-not-found")
        commands += ["# then what the release added goes, as Brahma's rollback does", *tidy] if tidy else []
        commands.append(f"{kubectl} get service/{before['service']} -o wide")
    elif strategy == "rolling":
        commands = [
            f"{kubectl} rollout undo deployment/{before['deployment']} --to-revision={before.get('revision')}",
            f"# if that revision has left the history: {kubectl} set image deployment/{before['deployment']} {images}",
            f"{kubectl} rollout status deployment/{before['deployment']}",
        ]
    else:
        return []
    done = data.state.phase == Phase.ROLLED_BACK
    said = (
        "Brahma's rollback did this on the cluster; by hand (if Brahma cannot), in the cluster the release ran on:"
        if done
        else "By hand, without Brahma, in the cluster the release ran on (what its rollback does):"
    )
    return paragraph(said) + [""] + code_block(commands) + [""]
