"""What a metric source gives the controller: one sample of every judged metric, canary beside stable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from console.samples import HistoryPoint, Sample


class MetricSource(Protocol):
    """Where samples come from: the simulator or Prometheus.

    `t` is the rollout clock (seconds since the first stage started), `window_s` the sample interval
    the values should cover. Implementations never raise for missing data: they return None values
    and say why in `errors`.
    """

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample: ...

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        """Past values for the console's charts and the report; empty when the source keeps none."""
        ...

    async def close(self) -> None: ...
