"""Simulated metrics: a scenario's values with seeded noise, canary traffic following the weight."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from console.metric_catalogue import BUILTIN_METRICS
from console.samples import HistoryPoint, Sample, TrackValues
from console.sim.scenario import Scenario, ScenarioEventSpec, TrackSpec
from console.sim.target import SimTarget

SMOKE_RPS = 20.0
"""Smoke traffic a deployed preview (blue-green's green at weight 0) takes."""


def _track_metrics(values: dict[str, object], rng: random.Random) -> dict[str, float]:
    error_rate = min(1.0, float(values["error_rate"]) * rng.uniform(0.7, 1.3))
    latency_noise = rng.uniform(0.95, 1.05)
    success = values.get("success_rate")
    return {
        "error_rate": error_rate,
        "success_rate": float(success) if success is not None else 1.0 - error_rate,
        "latency_p50": float(values["latency_p50_ms"]) * latency_noise,
        "latency_p95": float(values["latency_p95_ms"]) * latency_noise,
        "latency_p99": float(values["latency_p99_ms"]) * latency_noise,
        "cpu": min(1.0, max(0.0, float(values["cpu"]) + rng.uniform(-0.02, 0.02))),
        "memory": min(1.0, max(0.0, float(values["memory"]) + rng.uniform(-0.01, 0.01))),
        "health_check_failures": float(values["health_check_failures"]),
        "memory_oom_kills": float(values["memory_oom_kills"]),
        **values["metrics"],  # type: ignore[dict-item]  # a plan's business metrics, as the scenario gives them
    }


class SimMetricSource:
    """Deterministic for a seed and a clock reading, so a resumed run sees what the killed one would have."""

    def __init__(self, scenario: Scenario, target: SimTarget):
        self.scenario, self.target = scenario, target

    def inject(self, t: float, track: str, **values: object) -> None:
        """A fault from now on (the demo's keys): the scenario gains an event at `t`."""
        event = ScenarioEventSpec(at=t, track=track, set=TrackSpec(**values))
        self.scenario = replace(self.scenario, events=tuple(sorted((*self.scenario.events, event), key=lambda e: e.at)))

    def _rates(self) -> tuple[float, float]:
        """Requests per second on the canary and on stable now."""
        cluster = self.target.cluster
        total = float(self.scenario.stable["rps"])
        if not cluster.new_deployed:
            return 0.0, total
        canary = total * cluster.weight / 100 or SMOKE_RPS
        return canary, total * (100 - cluster.weight) / 100

    def values_at(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        rng = random.Random(self.scenario.seed * 1_000_003 + round(t * 1000))
        canary_rps, stable_rps = self._rates()
        tracks = {}
        for track, rps in (("canary", canary_rps), ("stable", stable_rps)):
            behaviour = self.scenario.track_at(track, t)
            measured = _track_metrics(behaviour, rng)
            if behaviour.get("no_data") or rps <= 0:
                tracks[track] = None
            else:
                tracks[track] = {**measured, "throughput": rps}
        canary, stable = tracks["canary"], tracks["stable"]
        values = {metric: TrackValues(canary.get(metric) if canary else None, stable.get(metric) if stable else None) for metric in metrics}
        requests = canary_rps * window_s if canary else None
        errors = ("simulated canary has no data",) if canary is None and canary_rps > 0 else ()
        if canary is not None:
            errors += tuple(f"the scenario gives {metric} no values" for metric in self.unknown(metrics))
        return Sample(values, requests, errors)

    def unknown(self, metrics: Sequence[str]) -> list[str]:
        """The metrics this source has no values for: business metrics the scenario does not name."""
        named = {*self.scenario.stable["metrics"], *self.scenario.canary["metrics"]}  # type: ignore[misc]
        named |= {name for event in self.scenario.events for name in event.set.metrics or ()}
        return [m for m in metrics if m not in BUILTIN_METRICS and m not in named]

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        return self.values_at(metrics, t, window_s)

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        # The simulator keeps no past of its own; the journal is the history.
        return []

    async def close(self) -> None:
        return None
