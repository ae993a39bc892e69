"""Assembles a rollout from a plan and the command line: target, metric source, clock, controller."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from console.controller.clock import Clock, RealClock, VirtualClock
from console.controller.controller import Controller, ControllerOptions
from console.controller.journal import read_events
from console.controller.state import fold
from console.flags.backends import FileBackend
from console.flags.release import ReleaseFlags
from console.flags.store import FlagStore
from console.metrics.base import MetricSource
from console.plan.model import RolloutPlan
from console.targets.base import Target


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
    extra: dict[str, object] = field(default_factory=dict)


class UsageError(Exception):
    """Arguments that do not fit together (exit 2)."""


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
    return target, metrics


def build_clock(options: RunOptions) -> Clock:
    if options.fast:
        return VirtualClock()
    return RealClock(options.speed or 1.0)


def previous_image(image: str) -> str:
    """What the simulator runs as stable before the release: the same repository, tag `previous`."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:previous"


def build_target_and_metrics(plan: RolloutPlan, options: RunOptions, journal: Path) -> tuple[Target, MetricSource]:
    target_kind, metrics_kind = choose_kinds(plan, options)
    scenario = None
    if metrics_kind == "sim":
        from console.sim.scenario import load_scenario

        scenario = load_scenario(options.scenario or plan.metrics.scenario)  # bad input fails before anything moves
    archive_finished(journal)
    if target_kind == "sim":
        from console.sim.target import SimTarget

        target: Target = SimTarget(plan.strategy, plan.image, previous_image(plan.image), plan.target.replicas or 10, sim_state_path(journal))
    else:
        from console.targets.kubernetes import KubernetesTarget

        target = KubernetesTarget.from_plan(plan, context=options.context)
    if scenario is not None:
        from console.sim.metrics import SimMetricSource

        metrics: MetricSource = SimMetricSource(scenario, target)  # type: ignore[arg-type]
    else:
        from console.metrics.prometheus import PrometheusSource

        metrics = PrometheusSource(plan.app, plan.metrics.prometheus, plan.metrics.queries, url_override=options.prometheus_url)
    return target, metrics


@dataclass
class Rollout:
    """Everything one run is made of, for the headless runner and the console alike."""

    controller: Controller
    flags: ReleaseFlags | None = None
    """The plan's flags in their store (None when the plan has none)."""


def flags_path(plan: RolloutPlan, journal: Path) -> Path | None:
    """The plan's flag file; on the simulator, one beside the journal stands in for the flag service."""
    if plan.flags_file:
        return Path(plan.flags_file)
    if plan.flags and plan.target.kind == "sim":
        return journal.with_name(f"{journal.stem}.flags.json")
    return None


def build_rollout(plan: RolloutPlan, options: RunOptions, actor: str) -> Rollout:
    journal = journal_path(plan, options.state_dir)
    target, metrics = build_target_and_metrics(plan, options, journal)
    controller_options = ControllerOptions(headless=options.headless, manual=options.manual, exit_when_finished=options.headless)
    release_flags = None
    path = flags_path(plan, journal)
    if path is not None:
        release_flags = ReleaseFlags(FlagStore(FileBackend(path)), plan.flags)
        controller_options.flag_hooks.append(release_flags.on_rollback)
        controller_options.flag_setup = release_flags.create_missing
    controller = Controller(plan, target, metrics, journal, build_clock(options), controller_options, actor=actor)
    if hasattr(metrics, "clock_to_wall"):
        # History queries need wall time: t on the rollout clock is that far from now.
        metrics.clock_to_wall = lambda t: time.time() - (controller.now() - t) / (controller.clock.speed or 1.0)
    return Rollout(controller, release_flags)


async def close_rollout(controller: Controller) -> Path:
    """Close the journal and the clients, then write the report from the journal."""
    from console.report import write_report

    controller.journal.close()
    await controller.target.close()
    await controller.metrics.close()
    return write_report(controller.journal.path)
