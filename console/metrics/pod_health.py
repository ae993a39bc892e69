"""Pod health beside the metric source's numbers: health_check_failures and memory_oom_kills come
from the cluster itself (failing readiness, restarts, OOMKilled), one list request a sample."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from console.metric_catalogue import POD_HEALTH_METRICS
from console.metrics.base import MetricSource
from console.samples import HistoryPoint, Sample, TrackValues


class WithPodHealth:
    """A MetricSource that adds the target's pod health to another source's samples."""

    def __init__(self, source: MetricSource, pod_health: Callable[[], Awaitable[dict[str, TrackValues]]]):
        self.source, self.pod_health = source, pod_health

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        wanted = [m for m in metrics if m in POD_HEALTH_METRICS]
        sample = await self.source.sample([m for m in metrics if m not in POD_HEALTH_METRICS], t, window_s)
        if not wanted:
            return sample
        try:
            health = await self.pod_health()
            errors = sample.errors
        except Exception as error:  # the cluster may be away: the values are missing, never healthy
            health, errors = {}, (*sample.errors, f"pod health: {error}")
        values = {**sample.values, **{m: health.get(m, TrackValues(None, None)) for m in wanted}}
        return replace(sample, values=values, errors=errors)  # the counts go through as the source gave them

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        return await self.source.history(metric, start_t, end_t, step_s)

    async def close(self) -> None:
        await self.source.close()
