"""Counts for the simulator's samples, until it draws its own: each track's requests and Poisson errors.

Wraps a SimMetricSource: its values stay as they are (the limits judge them), and each sample gains
the counts a service with the scenario's error rates would have served at the weight of the moment,
seeded by the scenario's seed and the clock reading like the simulator, so a resumed run counts what
the killed one would have."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

from console.samples import Sample, TrackCounts
from console.sim.metrics import SimMetricSource


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's product of uniforms, in chunks so that a large mean does not underflow."""
    count = 0
    while mean > 0:
        chunk = min(mean, 30.0)
        mean -= chunk
        limit, product = math.exp(-chunk), rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
    return count


class CountedTraffic:
    def __init__(self, source: SimMetricSource):
        self.source = source

    def __getattr__(self, name: str):  # history, close, inject, unknown: the simulator's
        return getattr(self.source, name)

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        sample = await self.source.sample(metrics, t, window_s)
        rng = random.Random(self.source.scenario.seed * 7_000_003 + round(t * 1000))
        counted = {}
        for track, rps in zip(("canary", "stable"), self.source._rates(), strict=True):
            behaviour = self.source.scenario.track_at(track, t)
            if rps <= 0 or behaviour.get("no_data"):
                counted[track] = None
                continue
            requests = rps * window_s
            counted[track] = TrackCounts(requests, poisson(rng, requests * float(behaviour["error_rate"])))
        return dataclasses.replace(sample, canary_counts=counted["canary"], stable_counts=counted["stable"])
