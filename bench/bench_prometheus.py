"""BENCH prometheus_sample_ms: the median wall time of one PrometheusSource sample.

One sample is every built-in metric on canary and stable, derived from both tracks' counters
(6 instant queries, run in parallel; 18 on the first sample, which reads them at two past instants
too) against a real Prometheus scraping the demo service every second. Starts its own Prometheus and demo service and stops them; without the prometheus
binary it says so and skips (fails with BRAHMA_REQUIRE_PROMETHEUS=1).

    python bench/bench_prometheus.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.metric_catalogue import REQUEST_METRICS  # noqa: E402
from console.metrics.prometheus import PrometheusSource  # noqa: E402
from console.plan.model import PrometheusSpec  # noqa: E402
from testbed.prometheus_server import prometheus_missing, prometheus_required, running_demo_stack  # noqa: E402

WARMUP_SAMPLES = 5
MEASURED_SAMPLES = 50
SAMPLE_WINDOW_S = 1.0


async def sample_durations_ms(url: str) -> list[float]:
    source = PrometheusSource("checkout", PrometheusSpec(url=url), {})
    durations = []
    try:
        for index in range(WARMUP_SAMPLES + MEASURED_SAMPLES):
            started = time.perf_counter()
            sample = await source.sample(REQUEST_METRICS, t=0.0, window_s=SAMPLE_WINDOW_S)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if sample.errors:
                raise RuntimeError(f"the sample had errors: {sample.errors}")
            if index >= WARMUP_SAMPLES:
                durations.append(elapsed_ms)
    finally:
        await source.close()
    return durations


def main() -> int:
    reason = prometheus_missing()
    if reason:
        print(f"bench_prometheus: skipped: {reason}", file=sys.stderr)
        return 1 if prometheus_required() else 0
    with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as work_dir:
        with running_demo_stack(Path(work_dir)) as stack:
            durations = asyncio.run(sample_durations_ms(stack.prometheus.url))
    print(f"BENCH prometheus_sample_ms {statistics.median(durations):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
