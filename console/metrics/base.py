"""What a metric source gives the controller: one sample of every judged metric, canary beside stable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class TrackValues:
    """One metric on both tracks; None where the source returned nothing (never a pass)."""

    canary: float | None
    stable: float | None


@dataclass(frozen=True)
class Sample:
    values: dict[str, TrackValues]
    canary_requests: float | None
    """Requests the canary served over the window the values cover (Prometheus: max(interval, 4 scrapes)),
    the requests behind the judged rates; None when unknown."""
    errors: tuple[str, ...] = field(default=())
    """What went wrong fetching (timeouts, HTTP errors, several series where one was expected)."""


@dataclass(frozen=True)
class HistoryPoint:
    t: float
    canary: float | None
    stable: float | None


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
