"""Assembles a rollout from a plan and the command line: target, metric source, clock, controller."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from console.atomic import write_refusal
from console.controller.clock import Clock, PacedClock, RealClock, VirtualClock
from console.controller.controller import EXIT_ERROR, EXIT_INVALID, Controller, ControllerOptions
from console.controller.events import ErrorRaised
from console.controller.identity import ResumeRefused
from console.controller.journal import JournalError, read_events
from console.controller.state import fold
from console.flags.backends import FileBackend
from console.flags.release import ReleaseFlags
from console.flags.store import FlagStore
from console.metrics.base import MetricSource
from console.plan.defaults import kubernetes_weight_problem
from console.plan.loader import PlanError
from console.plan.model import RolloutPlan
from console.preflight import Gate, PreflightContext
from console.targets.base import Target, TargetError

if TYPE_CHECKING:
    from console.notify import Notifier
    from console.targets.kube_lease import RolloutLease
    from console.supervisor.remote import RemoteController


@dataclass
class RunOptions:
    target: str | None = None
    metrics: str | None = None
    scenario: str | None = None
    speed: float | None = None
    fast: bool = False
    manual: bool = False
    headless: bool = True
    state_dir: Path = Path(".brahma")
    prometheus_url: str | None = None
    context: str | None = None
    undo: bool = False
    """Take up a finished release to roll it back, instead of moving its journal aside for a new run."""


class UsageError(Exception):
    """Arguments that do not fit together (exit 2)."""


REFUSALS = (PlanError, UsageError, ResumeRefused, JournalError, TargetError)
"""Why a rollout may not be built: bad input (a plan, a scenario, arguments, a journal that is another
plan's or is corrupt) or a cluster that says no."""


def report_refusal(error: Exception) -> int:
    """Say why the rollout was not built, on stderr; its exit code (2 for input, 1 for the cluster)."""
    if isinstance(error, PlanError):
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    print(f"brahma: {error}", file=sys.stderr)
    return EXIT_ERROR if isinstance(error, TargetError) else EXIT_INVALID


def journal_path(plan: RolloutPlan, state_dir: Path) -> Path:
    return state_dir / f"{plan.name}.jsonl"


def archive_finished(journal: Path) -> Path | None:
    """A finished rollout's journal (and simulator state) moved aside, so the same release can run again."""
    if not journal.exists() or not fold(read_events(journal)).finished:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    archived = journal.with_name(f"{journal.stem}.{stamp}.jsonl")
    shutil.move(journal, archived)
    sim_state = sim_state_path(journal)
    if sim_state.exists():
        shutil.move(sim_state, sim_state.with_name(f"{journal.stem}.{stamp}.sim.json"))
    return archived


def sim_state_path(journal: Path) -> Path:
    return journal.with_name(f"{journal.stem}.sim.json")


def choose_kinds(plan: RolloutPlan, options: RunOptions) -> tuple[str, str]:
    target = options.target or plan.target.kind
    metrics = options.metrics or plan.metrics.provider or ("sim" if target == "sim" else "prometheus")
    if metrics == "sim" and target != "sim":
        raise UsageError("simulated metrics need the sim target (--target sim)")
    if (options.speed or options.fast) and target != "sim":
        raise UsageError("--speed and --fast are for the simulator only")
    if options.scenario and metrics != "sim":
        raise UsageError("--scenario drives the simulator's metrics only")
    if target == "kubernetes":
        problem = kubernetes_weight_problem(plan.strategy, *(stage.weight for stage in plan.stages))
        if problem:
            raise UsageError(f"--target kubernetes: {problem}")
    return target, metrics


def build_clock(options: RunOptions) -> Clock:
    if options.fast:
        return VirtualClock()
    if options.speed:
        return PacedClock(options.speed)
    return RealClock()


def previous_image(image: str) -> str:
    """What the simulator runs as stable before the release: the same repository, tag `previous`."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:previous"


def build_target_and_metrics(
    plan: RolloutPlan, options: RunOptions, journal: Path, clock_to_wall: Callable[[float], float] | None = None
) -> tuple[Target, MetricSource]:
    target_kind, metrics_kind = choose_kinds(plan, options)
    scenario = None
    if metrics_kind == "sim":
        from console.sim.scenario import load_scenario

        scenario = load_scenario(options.scenario or plan.metrics.scenario)  # bad input fails before anything moves
    if not options.undo:
        archive_finished(journal)
    if target_kind == "sim":
        from console.sim.target import SimTarget

        target: Target = SimTarget(plan.strategy, plan.image, previous_image(plan.image), plan.target.replicas or 10, sim_state_path(journal))
    else:
        from console.targets.kubernetes import KubernetesTarget

        target = KubernetesTarget.from_plan(plan, context=options.context)
    if scenario is not None:
        from console.sim.metrics import SimMetricSource

        simulated = SimMetricSource(scenario, target)  # type: ignore[arg-type]
        if unnamed := simulated.unknown(plan.metric_names):
            print(f"brahma: warning: the scenario {scenario.name} gives no values for {', '.join(unnamed)}: its samples are "
                  "inconclusive, never a pass (give them under metrics: in its stable and canary)", file=sys.stderr)
        metrics: MetricSource = simulated
    else:
        from console.metrics.prometheus import PrometheusConfigError, PrometheusSource

        try:
            metrics = PrometheusSource(plan.app, plan.metrics.prometheus, plan.metrics.queries, url_override=options.prometheus_url, clock_to_wall=clock_to_wall)
        except PrometheusConfigError as error:  # a credential this shell does not give: the operator's to fix
            raise UsageError(f"{plan.source}: {error}") from None
    if target_kind == "kubernetes" and metrics_kind == "prometheus":
        from console.metrics.pod_health import WithPodHealth

        metrics = WithPodHealth(metrics, target.pod_health)  # type: ignore[attr-defined]
    return target, metrics


@dataclass
class Rollout:
    """Everything one run is made of, for the headless runner and the console alike."""

    controller: Controller | RemoteController
    """In this process, or a detached one followed over its socket."""
    flags: ReleaseFlags | None = None
    """The plan's flags in their store (None when the plan has none)."""
    notifier: Notifier | None = None
    """The plan's webhooks (None when it has none)."""
    lease: RolloutLease | None = None
    """On a cluster: the Lease that makes this the rollout's only controller."""
    detached: bool = False
    """The controller runs in a process of its own and is followed over its socket (a RemoteController)."""


def flags_path(plan: RolloutPlan, journal: Path) -> Path | None:
    """The plan's flag file; on the simulator, one beside the journal stands in for the flag service."""
    if plan.flags_file:
        return Path(plan.flags_file)
    if plan.flags and plan.target.kind == "sim":
        return journal.with_name(f"{journal.stem}.flags.json")
    return None


def plan_flags(plan: RolloutPlan, journal: Path) -> ReleaseFlags | None:
    """The plan's flags in their store: the controller's and every attached console's, one file."""
    path = flags_path(plan, journal)
    return ReleaseFlags(FlagStore(FileBackend(path)), plan.flags) if path is not None else None


def preflight_context(plan: RolloutPlan, options: RunOptions, journal: Path) -> PreflightContext:
    """What this run's checks read: its flag file, its state dir (Terraform backups), its cluster and Prometheus."""
    return PreflightContext(
        plan,
        flags_path=flags_path(plan, journal),
        state_dir=options.state_dir,
        kube_context=options.context,
        prometheus_url=options.prometheus_url,
    )


def take_lease(plan: RolloutPlan, options: RunOptions, actor: str) -> RolloutLease | None:
    """On a cluster, the rollout's Lease (LeaseHeld when another machine's controller supervises it)."""
    if choose_kinds(plan, options)[0] != "kubernetes":
        return None  # the state dir's lock is enough: the simulator lives beside it
    from console.targets.kube_lease import RolloutLease

    lease = RolloutLease.from_plan(plan, options.context, f"{actor} pid {os.getpid()}")
    lease.acquire()
    return lease


def build_rollout(plan: RolloutPlan, options: RunOptions, actor: str) -> Rollout:
    journal = journal_path(plan, options.state_dir)
    refuse_unwritable_flags(plan, journal, options.undo)
    lease = take_lease(plan, options, actor)  # before anything is read or moved for the run
    try:
        return _build_rollout(plan, options, actor, journal, lease)
    except BaseException:
        if lease is not None:
            lease.release()  # this run never started: the next need not wait for the lease to expire
        raise


def refuse_unwritable_flags(plan: RolloutPlan, journal: Path, undo: bool = False) -> None:
    """UsageError when a new run's flag file could not be written: its flags are created before the deploy and
    switched off by a rollback, so a run that could do neither must not start. A rollout under way (resumed)
    or an undo is never refused for it: supervising it matters more, and its rollback says why the flags stayed."""
    path = flags_path(plan, journal)
    if plan.flags_file is None or path is None or undo:
        return  # beside the journal, in the state dir Brahma made
    if journal.exists() and not fold(read_events(journal)).finished:
        return
    if refusal := write_refusal(Path(os.path.realpath(path))):
        raise UsageError(f"{plan.source}: flags_file {plan.flags_file}: {refusal}; the plan's flags are created there before the "
                         "deploy and switched off there by a rollback, so nothing was started")


def _build_rollout(plan: RolloutPlan, options: RunOptions, actor: str, journal: Path, lease: RolloutLease | None) -> Rollout:
    def clock_to_wall(t: float) -> float:
        """Wall time of the rollout clock's `t` (for history queries): that far from now."""
        return time.time() - (controller.now() - t) / (controller.clock.speed or 1.0)

    target, metrics = build_target_and_metrics(plan, options, journal, clock_to_wall)
    controller_options = ControllerOptions(headless=options.headless, manual=options.manual, exit_when_finished=options.headless,
                                           target_kind=choose_kinds(plan, options)[0])
    context = preflight_context(plan, options, journal)
    controller_options.gate = Gate(plan.preflight, context)
    release_flags = plan_flags(plan, journal)
    if release_flags is not None:
        controller_options.flag_hooks.append(release_flags.on_rollback)
        controller_options.flag_setup = release_flags.create_missing
        controller_options.flag_step = release_flags.apply_step
    controller = Controller(plan, target, metrics, journal, build_clock(options), controller_options, actor=actor)
    if controller.plan_changed:
        print(f"brahma: {controller.plan_changed}", file=sys.stderr)
    notifier = None
    if plan.notify:
        from console.notify import Notifier  # its HTTP client loads only for a plan with webhooks

        # Deliveries journal through the controller; the controller never waits for them.
        notifier = Notifier(plan, controller.emit, controller.now)
        controller.subscribe(notifier)
    return Rollout(controller, release_flags, notifier, lease)


async def close_rollout(rollout: Rollout) -> Path:
    """Send the notifications still under way, close the journal and the clients, then write the report."""
    from console.report import write_report

    controller = rollout.controller
    if rollout.notifier is not None:
        await rollout.notifier.drain()
    controller.journal.close()
    await controller.target.close()
    await controller.metrics.close()
    return write_report(controller.journal.path)


def say_rollback_unverified(controller: Controller | RemoteController) -> None:
    """On stderr: the controller stopped with the rollback still open, so the target may serve the new version."""
    state = controller.state
    failure = f" ({state.rollback_failure.detail})" if state.rollback_failure else ""
    print(f"brahma: stopped with the rollback of {state.rollout} not verified on the target{failure}; the new version "
          "may still serve traffic: run the same command again to go on with the rollback", file=sys.stderr)


async def run_controller(rollout: Rollout) -> int:
    """The controller's loop, keeping the rollout's Lease meanwhile when it has one.

    A controller whose lease another took stops, and says so in the journal: two controllers acting
    on one release would fight over its traffic.
    """
    controller, lease = rollout.controller, rollout.lease
    if lease is None:
        return await controller.run()

    def lost(message: str) -> None:
        controller.emit(ErrorRaised(controller.now(), where="lease", message=f"{message}; this controller stops supervising"))
        controller.stop()

    keeper = asyncio.create_task(lease.keep(lost))
    try:
        return await controller.run()
    finally:
        keeper.cancel()
        await asyncio.to_thread(lease.release)
