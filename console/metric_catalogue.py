"""The built-in metrics, each described once: its unit, its label, which way is worse, whether it
needs traffic and where it is read from. Units, the plan's checks and defaults, the metric sources,
the report and the console read it here (the console's first frame imports it: keep it light)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["fraction", "ms", "rps", "count"]
Source = Literal["requests", "pods", "resources"]


@dataclass(frozen=True)
class BuiltinMetric:
    """A metric Brahma knows by name: its unit, its label and how to judge it."""

    name: str
    unit: Unit
    """fraction: 0 to 1, its limits written and its values shown as percentages ("< 1%"); ms:
    milliseconds ("< 500ms", "< 0.5s"); rps: requests per second; count: a plain number."""
    label: str
    """The short name the console's metric table has room for."""
    higher_is_worse: bool
    """Which way the new version gets worse, where no limit of the plan tells (the report's comparison with stable)."""
    needs_traffic: bool
    """A rate or a latency, which means little on a handful of requests: set aside (inconclusive) on a
    sample where the canary served fewer than min_requests. Counts and resource use do not depend on traffic."""
    source: Source
    """requests: derived from the request series every HTTP exporter has (the Prometheus source has
    built-in queries for them); pods: read from the pods by a Kubernetes target; resources: the
    simulator's, or a plan's query."""


CATALOGUE: dict[str, BuiltinMetric] = {
    metric.name: metric
    for metric in (
        BuiltinMetric("error_rate", "fraction", "errors", higher_is_worse=True, needs_traffic=True, source="requests"),
        BuiltinMetric("success_rate", "fraction", "success", higher_is_worse=False, needs_traffic=True, source="requests"),
        BuiltinMetric("latency_p50", "ms", "p50", higher_is_worse=True, needs_traffic=True, source="requests"),
        BuiltinMetric("latency_p95", "ms", "p95", higher_is_worse=True, needs_traffic=True, source="requests"),
        BuiltinMetric("latency_p99", "ms", "p99", higher_is_worse=True, needs_traffic=True, source="requests"),
        BuiltinMetric("throughput", "rps", "req/s", higher_is_worse=False, needs_traffic=False, source="requests"),
        BuiltinMetric("cpu", "fraction", "cpu", higher_is_worse=True, needs_traffic=False, source="resources"),
        BuiltinMetric("memory", "fraction", "memory", higher_is_worse=True, needs_traffic=False, source="resources"),
        BuiltinMetric("health_check_failures", "count", "hc fails", higher_is_worse=True, needs_traffic=False, source="pods"),
        BuiltinMetric("memory_oom_kills", "count", "OOM kills", higher_is_worse=True, needs_traffic=False, source="pods"),
    )
}

BUILTIN_METRICS = frozenset(CATALOGUE)
FRACTION_METRICS = frozenset(name for name, metric in CATALOGUE.items() if metric.unit == "fraction")
"""Measured as fractions, shown as percentages."""
LATENCY_METRICS = frozenset(name for name, metric in CATALOGUE.items() if metric.unit == "ms")
TRAFFIC_METRICS = frozenset(name for name, metric in CATALOGUE.items() if metric.needs_traffic)
REQUEST_METRICS = tuple(name for name, metric in CATALOGUE.items() if metric.source == "requests")
"""What the Prometheus source samples with no queries in the plan; anything else needs a query."""
POD_HEALTH_METRICS = frozenset(name for name, metric in CATALOGUE.items() if metric.source == "pods")
"""What a Kubernetes target reads from the pods themselves."""

UNIT_WORDS: dict[str, str] = {"fraction": "a percentage", "ms": "in milliseconds", "rps": "in requests per second", "count": "a count"}
"""A unit as a sentence says it ("latency_p99 is in milliseconds")."""


def label(metric: str) -> str:
    """The short name the console shows: the catalogue's, or a business metric's own name."""
    known = CATALOGUE.get(metric)
    return known.label if known else metric


def higher_is_worse(metric: str) -> bool:
    """Which way is worse for a built-in metric; a business metric is taken to be worse lower (a success rate, revenue)."""
    known = CATALOGUE.get(metric)
    return known.higher_is_worse if known else False
