"""Simulator scenarios: how the stable and canary tracks behave over the rollout's clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from console.metric_catalogue import BUILTIN_METRICS
from console.plan.document import Document, read_document
from console.plan.loader import checked_document
from console.plan.model import Bounds, Duration, Parsed, as_written
from console.plan.problems import PlanError, Problem
from console.sim.traffic import LatencyShape

BUILTIN_SCENARIOS = ("healthy", "error-spike", "latency-creep", "no-data", "flapping")

Fraction = Annotated[float, Bounds(ge=0, le=1)]
Amount = Annotated[float, Bounds(ge=0)]


def _business_metrics(metrics: object) -> object:
    """A track's business metrics: none of them built in, each a finite number (the rest is the type's to check)."""
    for name, value in metrics.items() if isinstance(metrics, dict) else ():
        if name in BUILTIN_METRICS:
            raise ValueError(f"{name} is built in: set it beside metrics, not in them")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value}")
    return metrics


@as_written
class TrackSpec:
    """One track's behaviour; anything left out follows the stable track's baseline."""

    error_rate: Fraction | None = None
    success_rate: Fraction | None = None
    """Follows 1 - error_rate unless set."""
    latency_p50_ms: Amount | None = None
    latency_p95_ms: Amount | None = None
    latency_p99_ms: Amount | None = None
    """The latency quantiles of the requests outside the slow share, which the fitted shape passes through."""
    slow_share: Fraction | None = None
    """A share of requests that take about slow_latency_ms instead (a slow dependency: a tail; or, for a
    large share, a second mode): 0.02 at 2000 ms shows in p99 and not in p50."""
    slow_latency_ms: Annotated[float, Bounds(gt=0)] | None = None
    """The slow requests' median latency (spread lognormally, sigma 0.2 of the log)."""
    rps: Amount | None = None
    """Requests per second the whole service takes (stable's), split by the traffic weight."""
    cpu: Fraction | None = None
    memory: Fraction | None = None
    health_check_failures: Amount | None = None
    memory_oom_kills: Amount | None = None
    no_data: bool | None = None
    """True: the source returns nothing for this track."""
    metrics: Annotated[dict[str, float] | None, Parsed(_business_metrics)] = None
    """A plan's business metrics by name, as their source gives them (a percentage as a fraction, 0.995);
    a metric the scenario leaves out has no data (inconclusive)."""

    def values_set(self) -> dict[str, object]:
        """What this track's behaviour sets (the fields not left out)."""
        return {name: dict(value) if isinstance(value, dict) else value for name, value in vars(self).items() if value is not None}


@as_written
class ScenarioEventSpec:
    """A change of one track's behaviour at a time of the rollout."""

    at: Duration
    """On the events' clock t (since the first stage started)."""
    track: Literal["canary", "stable"] = "canary"
    set: TrackSpec
    over: Duration = 0.0
    """Reach the set values gradually, linearly over this long (a creep), instead of at once."""


@as_written
class ScenarioSpec:
    """A scenario file as written."""

    name: str
    seed: int = 1
    stable: TrackSpec = field(default_factory=TrackSpec)
    canary: TrackSpec = field(default_factory=TrackSpec)
    events: list[ScenarioEventSpec] = field(default_factory=list)


BASELINE = {
    "error_rate": 0.0001,
    "latency_p50_ms": 40.0,
    "latency_p95_ms": 120.0,
    "latency_p99_ms": 240.0,
    "slow_share": 0.0,
    "rps": 2000.0,
    "cpu": 0.35,
    "memory": 0.5,
    "health_check_failures": 0.0,
    "memory_oom_kills": 0.0,
    "no_data": False,
    "metrics": {},
}


@dataclass(frozen=True)
class Scenario:
    """The simulator's behaviour: stable's and the canary's baselines and the events that change them."""

    name: str
    seed: int
    stable: dict[str, object]
    canary: dict[str, object]
    events: tuple[ScenarioEventSpec, ...]

    def track_at(self, track: str, t: float) -> dict[str, object]:
        """The track's behaviour at `t`: its baseline with every event up to `t` applied."""
        values = dict(self.stable if track == "stable" else self.canary)
        values["metrics"] = dict(values["metrics"])  # type: ignore[call-overload]
        for event in self.events:
            if event.track != track or event.at > t:
                continue
            progress = 1.0 if event.over <= 0 else min(1.0, (t - event.at) / event.over)
            changes = event.set.values_set()
            _move(values["metrics"], changes.pop("metrics", {}), progress)  # type: ignore[arg-type]
            _move(values, changes, progress)
        return values


def latency_shape(behaviour: dict[str, object]) -> LatencyShape:
    """The spread of a track's latencies as its behaviour gives it: its quantiles, and a slow mode if any.
    ValueError when they cannot be one spread (quantiles that decrease, a slow share with no latency)."""
    return LatencyShape(
        float(behaviour["latency_p50_ms"]),  # type: ignore[arg-type]
        float(behaviour["latency_p95_ms"]),  # type: ignore[arg-type]
        float(behaviour["latency_p99_ms"]),  # type: ignore[arg-type]
        float(behaviour["slow_share"]),  # type: ignore[arg-type]
        float(behaviour.get("slow_latency_ms") or 0.0),  # type: ignore[arg-type]
    )


def _move(values: dict[str, object], targets: dict[str, object], progress: float) -> None:
    """Each value `progress` of the way to its target (at once for a switch, or a value that had none)."""
    for key, target in targets.items():
        start = values.get(key)
        if isinstance(target, bool) or not isinstance(start, (int, float)) or isinstance(start, bool):
            values[key] = target
        else:
            values[key] = start + (target - start) * progress  # type: ignore[operator]


def _scenario_file(name_or_path: str) -> Path:
    if name_or_path in BUILTIN_SCENARIOS:
        return Path(str(resources.files("console.sim") / "scenarios" / f"{name_or_path}.yaml"))
    return Path(name_or_path)


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name or a scenario file; PlanError with PATH:LINE problems otherwise."""
    path = _scenario_file(name_or_path)
    if not path.exists() and "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        known = ", ".join(BUILTIN_SCENARIOS)
        raise PlanError([Problem(name_or_path, 1, "scenario", f"no such scenario file or built-in scenario (built-ins: {known})")])
    document = read_document(path)
    spec = checked_document(ScenarioSpec, document)
    stable = {**BASELINE, **spec.stable.values_set()}
    canary = {**stable, **spec.canary.values_set()}
    canary["metrics"] = {**stable["metrics"], **canary["metrics"]}  # type: ignore[dict-item]  # what canary leaves out follows stable
    scenario = Scenario(spec.name, spec.seed, stable, canary, tuple(sorted(spec.events, key=lambda e: e.at)))
    problems = _latency_problems(document, spec, scenario)
    if problems:
        raise PlanError(problems)
    return scenario


LATENCY_FIELDS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "slow_share", "slow_latency_ms")


def _latency_problems(document: Document, spec: ScenarioSpec, scenario: Scenario) -> list[Problem]:
    """Each track's latencies checked where they change: at its start, and where each event starts and ends
    (between two of those times every value moves linearly, so quantiles in order at both stay in order).
    A problem names the last latency field set before it: the track's, or the event's that started last."""
    problems: list[Problem] = []
    for track in ("stable", "canary"):
        own = getattr(spec, track)
        blamed: tuple[str | int, ...] = (track, *_latency_field(own))
        if track == "canary" and not _latency_field(own):
            blamed = ("stable", *_latency_field(spec.stable))
        times = sorted({0.0, *(t for event in spec.events if event.track == track for t in (event.at, event.at + event.over))})
        for t in times:
            for index, event in enumerate(spec.events):
                if event.track == track and event.at <= t and _latency_field(event.set):
                    blamed = ("events", index, "set", *_latency_field(event.set))
            try:
                latency_shape(scenario.track_at(track, t))
            except ValueError as error:
                if document.line(blamed) not in {problem.line for problem in problems}:  # canary's baseline is stable's: said once
                    problems.append(document.problem(blamed, f"{track} at {t:g}s: {error}" if t else f"{track}: {error}"))
                break
    return problems


def _latency_field(spec: TrackSpec) -> tuple[str, ...]:
    """The first latency field `spec` sets, if any."""
    return tuple(name for name in LATENCY_FIELDS if getattr(spec, name) is not None)[:1]
