"""`brahma supervise`, `brahma attach` and `brahma ls`: the command-line side of the detached controller."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from console.controller.controller import EXIT_CODES, EXIT_ERROR, EXIT_INVALID
from console.controller.events import event_from_dict
from console.controller.journal import read_events
from console.controller.state import fold
from console.headless import printer
from console.plan.model import RolloutPlan
from console.runner import RunOptions, UsageError
from console.supervisor.client import (
    SupervisorClient, SupervisorUnavailable, answers, ensure_running, list_rollouts, start_detached,
)
from console.supervisor.files import RolloutFiles, lock_holder, take_lock


def supervise_args(plan_path: Path, options: RunOptions) -> list[str]:
    """The `brahma supervise` arguments that run this plan again with these options (absolute paths)."""
    # A scenario file is kept by absolute path: the restart may run from another directory.
    scenario = str(Path(options.scenario).resolve()) if options.scenario and Path(options.scenario).exists() else options.scenario
    argv = [str(plan_path.resolve()), "--state-dir", str(options.state_dir.resolve())]
    for flag, value in (("--target", options.target), ("--metrics", options.metrics), ("--scenario", scenario),
                        ("--speed", options.speed), ("--prometheus", options.prometheus_url), ("--context", options.context)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + (["--fast"] if options.fast else [])


def supervise(plan: RolloutPlan, plan_path: Path, options: RunOptions, detach: bool) -> int:
    files = RolloutFiles(options.state_dir, plan.name)
    if detach:
        try:
            pid = lock_holder(files) if answers(files) else start_detached(files, supervise_args(plan_path, options))
        except SupervisorUnavailable as error:
            print(f"brahma: {error}", file=sys.stderr)
            return EXIT_ERROR
        print(f"{plan.name}: supervised by pid {pid}; follow it with: brahma attach {plan.name} --state-dir {options.state_dir}")
        return 0
    lock = take_lock(files)
    if lock is None:
        print(f"brahma: {plan.name} is already supervised (pid {lock_holder(files)}); attach with: brahma attach {plan.name}", file=sys.stderr)
        return EXIT_ERROR
    from console.actor import current_actor
    from console.runner import build_rollout
    from console.supervisor.server import SupervisorServer

    with lock:
        files.write_launch(supervise_args(plan_path, options))
        try:
            rollout = build_rollout(plan, options, current_actor())
        except UsageError as error:
            print(f"brahma: {error}", file=sys.stderr)
            return EXIT_INVALID
        if rollout.controller.resumed:
            print(f"brahma: resuming rollout {plan.name} from {files.journal}", file=sys.stderr)
        return asyncio.run(SupervisorServer(rollout, files).run())


def attach(state_dir: Path, name: str | None) -> int:
    """Print the rollout's story so far, then follow it live until it ends (ctrl+c detaches)."""
    if name is None:
        candidates = [r.name for r in list_rollouts(state_dir) if r.running or not r.state.finished]
        if len(candidates) != 1:
            print(f"brahma: name the rollout to attach to ({', '.join(candidates) or f'none in {state_dir}'})", file=sys.stderr)
            return EXIT_INVALID
        name = candidates[0]
    files = RolloutFiles(state_dir, name)
    print_event = printer(sys.stdout, json_lines=False)
    try:
        pid = ensure_running(files)
        if pid is None:  # finished: the journal tells the whole story
            for event in read_events(files.journal):
                print_event(event)
        else:
            print(f"brahma: attached to {name} (controller pid {pid}); ctrl+c detaches, the controller keeps supervising", file=sys.stderr)
            with SupervisorClient(files.socket) as client:
                client.settimeout(None)  # a person follows the stream: quiet stretches (a long pause) are normal
                for message in client.attach(0):
                    print_event(event_from_dict(message))
    except SupervisorUnavailable as error:
        print(f"brahma: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"\nbrahma: detached; {name} is still supervised", file=sys.stderr)
        return 0
    return EXIT_CODES.get(fold(read_events(files.journal)).phase, EXIT_ERROR)


def list_state_dir(state_dir: Path) -> int:
    listings = list_rollouts(state_dir) if state_dir.is_dir() else []
    if not listings:
        print(f"no rollouts in {state_dir}")
        return 0
    print(f"{'ROLLOUT':<28} {'PHASE':<16} {'STAGE':<14} CONTROLLER")
    for listing in listings:
        state = listing.state
        stage = f"{state.stage + 1} ({state.weight}%)" if state.stage >= 0 else "-"
        controller = f"running (pid {listing.pid})" if listing.running else "none"
        print(f"{listing.name:<28} {state.phase:<16} {stage:<14} {controller}")
    return 0
