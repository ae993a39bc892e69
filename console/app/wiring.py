"""Assembles a rollout from a plan and the command line: target, metric source, clock, controller."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.app.problems import UsageError, say
from console.atomic import write_refusal
from console.controller.release_flags import ReleaseFlags
from console.flags.backends import FileBackend
from console.flags.store import FlagStore
from console.journal.state import read_state
from console.journal.state_dir import RolloutFiles
from console.plan.defaults import kubernetes_weight_problem
from console.plan.model import RolloutPlan
from console.rollout import Rollout

if TYPE_CHECKING:  # the controller's parts are imported where a rollout is built: a console (plan_flags) needs none
    from console.controller.clock import Clock
    from console.metrics.base import MetricSource
    from console.preflight import PreflightContext
    from console.sim.scenario import Scenario
    from console.targets.base import Target
    from console.targets.kube_lease import RolloutLease


@dataclass
class RunOptions:
    """How and where a rollout runs, as its command line asked: target, metrics, pace, state dir, Prometheus, cluster."""

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
    stay: bool = False
    """Keep serving once the rollout has finished (a controller a Deployment runs, which must not exit)."""


def rollout_files(plan: RolloutPlan, options: RunOptions) -> RolloutFiles:
    return RolloutFiles(options.state_dir, plan.name)


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
    from console.controller.clock import PacedClock, RealClock, VirtualClock

    if options.fast:
        return VirtualClock()
    if options.speed:
        return PacedClock(options.speed)
    return RealClock()


def simulator_scenario(plan: RolloutPlan, options: RunOptions) -> Scenario | None:
    """The scenario the simulated metrics play (PlanError for a bad one); None when the metrics are not simulated."""
    if choose_kinds(plan, options)[1] != "sim":
        return None
    from console.sim.scenario import load_scenario

    return load_scenario(options.scenario or plan.metrics.scenario)


def build_target_and_metrics(
    plan: RolloutPlan,
    options: RunOptions,
    files: RolloutFiles,
    scenario: Scenario | None,
    clock_to_wall: Callable[[float], float] | None = None,
) -> tuple[Target, MetricSource]:
    """The target, and the metric source: the simulator playing `scenario`, or Prometheus when there is none."""
    target_kind, metrics_kind = choose_kinds(plan, options)
    if target_kind == "sim":
        from console.sim.target import SimTarget, previous_image

        target: Target = SimTarget(plan.strategy, plan.image, previous_image(plan.image), plan.target.replicas or 10, files.sim_state)
    else:
        from console.targets.kubernetes import KubernetesTarget

        target = KubernetesTarget.from_plan(plan, context=options.context)
    if scenario is not None:
        from console.sim.metrics import SimMetricSource

        simulated = SimMetricSource(scenario, target)  # type: ignore[arg-type]
        if unnamed := simulated.unknown(plan.metric_names):
            say(
                f"warning: the scenario {scenario.name} gives no values for {', '.join(unnamed)}: its samples are "
                "inconclusive, never a pass (give them under metrics: in its stable and canary)"
            )
        metrics: MetricSource = simulated
    else:
        from console.metrics.prometheus import PrometheusConfigError, PrometheusSource

        try:
            metrics = PrometheusSource(
                plan.app,
                plan.metrics.prometheus,
                plan.metrics.queries,
                url_override=options.prometheus_url,
                clock_to_wall=clock_to_wall,
                counts=plan.metrics.counts,
            )
        except PrometheusConfigError as error:  # a credential this shell does not give: the operator's to fix
            raise UsageError(f"{plan.source}: {error}") from None
    if target_kind == "kubernetes" and metrics_kind == "prometheus":
        from console.metrics.pod_health import WithPodHealth

        metrics = WithPodHealth(metrics, target.pod_health)  # type: ignore[attr-defined]
    return target, metrics


def flags_path(plan: RolloutPlan, files: RolloutFiles) -> Path | None:
    """The plan's flag file; on the simulator, one beside the journal stands in for the flag service."""
    if plan.flags_file:
        return Path(plan.flags_file)
    if plan.flags and plan.target.kind == "sim":
        return files.sim_flags
    return None


def plan_flags(plan: RolloutPlan, files: RolloutFiles) -> ReleaseFlags | None:
    """The plan's flags in their store: the controller's and every attached console's, one file."""
    path = flags_path(plan, files)
    return ReleaseFlags(FlagStore(FileBackend(path)), plan.flags) if path is not None else None


def preflight_context(plan: RolloutPlan, options: RunOptions) -> PreflightContext:
    """What this run's checks read: its flag file, its state dir (Terraform backups), its cluster and Prometheus."""
    from console.preflight import PreflightContext

    return PreflightContext(
        plan,
        flags_path=flags_path(plan, rollout_files(plan, options)),
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
    files = rollout_files(plan, options)
    refuse_unwritable_flags(plan, files, options.undo)
    lease = take_lease(plan, options, actor)  # before anything is read or moved for the run
    try:
        return _build_rollout(plan, options, actor, files, lease)
    except BaseException:
        if lease is not None:
            lease.release()  # this run never started: the next need not wait for the lease to expire
        raise


def refuse_unwritable_flags(plan: RolloutPlan, files: RolloutFiles, undo: bool = False) -> None:
    """UsageError when a new run's flag file could not be written: its flags are created before the deploy and
    switched off by a rollback, so a run that could do neither must not start. A rollout under way (resumed)
    or an undo is never refused for it: supervising it matters more, and its rollback says why the flags stayed."""
    path = flags_path(plan, files)
    if plan.flags_file is None or path is None or undo:
        return  # beside the journal, in the state dir Brahma made
    if files.journal.exists() and not read_state(files.journal).finished:
        return
    if refusal := write_refusal(Path(os.path.realpath(path))):
        raise UsageError(
            f"{plan.source}: flags_file {plan.flags_file}: {refusal}; the plan's flags are created there before the "
            "deploy and switched off there by a rollback, so nothing was started"
        )


def _build_rollout(plan: RolloutPlan, options: RunOptions, actor: str, files: RolloutFiles, lease: RolloutLease | None) -> Rollout:
    from console.controller.controller import Controller, ControllerOptions
    from console.preflight import Gate

    def clock_to_wall(t: float) -> float:
        """Wall time of the rollout clock's `t` (for history queries): that far from now."""
        return time.time() - (controller.now() - t) / (controller.clock.speed or 1.0)

    scenario = simulator_scenario(plan, options)  # bad input fails before anything moves
    if not options.undo:
        files.archive_finished()  # a new run of the release: the finished one's journal is kept aside
    target, metrics = build_target_and_metrics(plan, options, files, scenario, clock_to_wall)
    controller_options = ControllerOptions(
        headless=options.headless, manual=options.manual, exit_when_finished=options.headless and not options.stay, target_kind=choose_kinds(plan, options)[0]
    )
    controller_options.gate = Gate(plan.preflight, preflight_context(plan, options))
    release_flags = plan_flags(plan, files)
    if release_flags is not None:
        controller_options.flag_hooks.append(release_flags.on_rollback)
        controller_options.flag_setup = release_flags.create_missing
        controller_options.flag_step = release_flags.apply_step
    controller = Controller(plan, target, metrics, files.journal, build_clock(options), controller_options, actor=actor)
    if controller.plan_changed:
        say(controller.plan_changed)
    notifier = None
    if plan.notify:
        from console.notify import Notifier  # its HTTP client loads only for a plan with webhooks

        # Deliveries journal through the controller; the controller never waits for them.
        notifier = Notifier(plan, controller.emit, controller.now)
        controller.subscribe(notifier)
    return Rollout(controller, release_flags, notifier, lease)
