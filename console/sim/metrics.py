"""Simulated metrics: each track's traffic drawn as counts at the weight of the moment, its values derived from them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from console.derived import track_values
from console.metric_catalogue import BUILTIN_METRICS
from console.samples import HistoryPoint, Sample, TrackCounts, TrackValues
from console.sim.scenario import Scenario, ScenarioEventSpec, TrackSpec, latency_shape
from console.sim.target import SimTarget
from console.sim.traffic import draw_track_counts

SMOKE_RPS = 20.0
"""Smoke traffic a deployed preview (blue-green's green at weight 0) takes."""


def _track_metrics(behaviour: dict[str, object], counts: TrackCounts, span_s: float, rng: random.Random) -> dict[str, float | None]:
    """A track's values: its rates and latencies derived from the counts it served, the rest as the scenario gives them."""
    derived = track_values(counts, span_s)
    success = behaviour.get("success_rate")
    return {
        **derived,
        "success_rate": float(success) if success is not None else derived["success_rate"],  # type: ignore[arg-type]
        "cpu": min(1.0, max(0.0, float(behaviour["cpu"]) + rng.uniform(-0.02, 0.02))),  # type: ignore[arg-type]
        "memory": min(1.0, max(0.0, float(behaviour["memory"]) + rng.uniform(-0.01, 0.01))),  # type: ignore[arg-type]
        "health_check_failures": float(behaviour["health_check_failures"]),  # type: ignore[arg-type]
        "memory_oom_kills": float(behaviour["memory_oom_kills"]),  # type: ignore[arg-type]
        **behaviour["metrics"],  # type: ignore[dict-item]  # a plan's business metrics, as the scenario gives them
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
        """What each track served over the `window_s` before `t`, drawn as counts, and the values derived from them."""
        rng = random.Random(self.scenario.seed * 1_000_003 + round(t * 1000))
        canary_rps, stable_rps = self._rates()
        tracks: dict[str, dict[str, float | None] | None] = {}
        counts: dict[str, TrackCounts | None] = {}
        for track, rps in (("canary", canary_rps), ("stable", stable_rps)):
            behaviour = self.scenario.track_at(track, t)
            if behaviour.get("no_data") or rps <= 0:
                tracks[track] = counts[track] = None
                continue
            counts[track] = draw_track_counts(rng, rps, window_s, float(behaviour["error_rate"]), latency_shape(behaviour))  # type: ignore[arg-type]
            tracks[track] = _track_metrics(behaviour, counts[track], window_s, rng)  # type: ignore[arg-type]
        canary, stable = tracks["canary"], tracks["stable"]
        values = {metric: TrackValues(canary.get(metric) if canary else None, stable.get(metric) if stable else None) for metric in metrics}
        canary_counts = counts["canary"]
        errors = ("simulated canary has no data",) if canary is None and canary_rps > 0 else ()
        if canary is not None:
            errors += tuple(f"the scenario gives {metric} no values" for metric in self.unknown(metrics))
        return Sample(
            values,
            canary_counts.requests if canary_counts else None,
            errors,
            canary_counts=canary_counts,
            stable_counts=counts["stable"],
        )

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
