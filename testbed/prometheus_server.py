"""A real Prometheus and the demo service, for end-to-end tests and benchmarks.

`PrometheusServer` runs the `prometheus` binary (Debian: `apt-get install prometheus`) on
127.0.0.1 with a free port, a scratch storage dir and 1 s scrapes of a static target list; it can
be killed and started again on the same port and data. `DemoServiceProcess` runs
`python -m testbed.demo_service`. `running_demo_stack` wires the two and returns once
both tracks' rates are queryable; `running_demo_services` wires one Prometheus to several.

Fixtures (import them into a conftest): `prometheus_server` and `demo_service` are factories whose
processes stop at the end of the test; `demo_stack` is one Prometheus scraping one demo service,
shared by a test module. Without the binary they skip, or fail when BRAHMA_REQUIRE_PROMETHEUS=1.

For whole rollouts on that stack (tests and benchmarks): `RolloutEvents` waits for a controller's
events as they happen, `wait_for_canary_errors_to_clear` for the rates to forget an injected fault.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from console.controller.controller import Controller
from console.journal import events as ev
from console.metrics.prometheus import RATE_WINDOW_SCRAPES
from testbed import ROOT

PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 1.0
STARTUP_TIMEOUT_S = 30.0
FIRST_SCRAPE_TIMEOUT_S = 30.0
"""Prometheus holds new targets back about 5 s before their first scrape; the rest is slack for slow machines."""
STOP_TIMEOUT_S = 10.0
POLL_STEP_S = 0.1

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll `check` every 100 ms until it returns something truthy; TimeoutError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(POLL_STEP_S)


def prometheus_required() -> bool:
    """BRAHMA_REQUIRE_PROMETHEUS=1: a missing binary is a failure, not a skip (CI that installed it)."""
    return os.environ.get("BRAHMA_REQUIRE_PROMETHEUS") == "1"


def prometheus_missing() -> str | None:
    """Why Prometheus cannot run here, or None when it can."""
    if Path(PROMETHEUS_BINARY).is_file():
        return None
    return f"Prometheus is not installed ({PROMETHEUS_BINARY}); on Debian: apt-get install -y prometheus"


def require_prometheus() -> None:
    """Skip the test without the binary, or fail it when BRAHMA_REQUIRE_PROMETHEUS=1 says it must run."""
    reason = prometheus_missing()
    if reason and prometheus_required():
        pytest.fail(f"BRAHMA_REQUIRE_PROMETHEUS=1 but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


def _http_json(url: str, method: str = "GET", timeout_s: float = 5.0) -> dict:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill if it will not go within the timeout."""
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrometheusServer:
    """One Prometheus process scraping `targets` ("host:port") every second, with its data in `data_dir`.

    With no targets it scrapes nothing and serves what `data_dir`/tsdb holds (blocks written by promtool:
    testbed/history.py); `scrape_interval_s` is then the history's, as PrometheusSource reads it from the
    configuration, and `retention` (a Prometheus duration) keeps old blocks from being deleted at start."""

    def __init__(
        self,
        targets: Sequence[str],
        data_dir: Path,
        port: int | None = None,
        scrape_interval_s: float = SCRAPE_INTERVAL_S,
        retention: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.data_dir = data_dir
        self.scrape_interval_s = scrape_interval_s
        self.retention = retention
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "prometheus.log"

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until it is ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.data_dir / "prometheus.yml"
        config_path.write_text(self._config())
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    PROMETHEUS_BINARY,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                    *([f"--storage.tsdb.retention.time={self.retention}"] if self.retention else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, STARTUP_TIMEOUT_S, f"Prometheus to be ready on {self.url}")

    def stop(self) -> None:
        """Terminate, then kill if it will not go within the timeout."""
        if self._process is None:
            return
        stop_process(self._process)
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown, the port closes at once."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def query(self, promql: str, at: float | None = None) -> list:
        """An instant query's result list, evaluated now or `at` (epoch seconds); empty on any failure."""
        parameters = {"query": promql} | ({} if at is None else {"time": f"{at:.3f}"})
        try:
            body = _http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(parameters)}")
        except OSError:
            return []
        return body.get("data", {}).get("result", [])

    def wait_for(self, promql: str, series: int = 1, timeout_s: float = FIRST_SCRAPE_TIMEOUT_S) -> list:
        """Poll until `promql` returns at least `series` series (the first scrapes have landed)."""

        def enough_series() -> list | None:
            result = self.query(promql)
            return result if len(result) >= series else None

        return wait_until(enough_series, timeout_s, promql)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            log_tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Prometheus exited with {self._process.returncode}:\n{log_tail}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def _config(self) -> str:
        interval = f"{self.scrape_interval_s:g}s"
        jobs = [{"job_name": "brahma-test", "static_configs": [{"targets": self.targets}]}] if self.targets else []
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}
        return json.dumps(config, indent=2)  # JSON is YAML


class DemoServiceProcess:
    """`python -m testbed.demo_service` on a given port, with its fault knobs as methods."""

    def __init__(self, app: str = "checkout", port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = f"127.0.0.1:{self.port}"
        self._extra_args = list(extra_args)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start and wait for the line that says it serves."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "testbed.demo_service", "--port", str(self.port), "--app", self.app] + self._extra_args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self._process.stdout], [], [], STARTUP_TIMEOUT_S)
        if not ready or self.url not in self._process.stdout.readline():
            self.stop()
            raise RuntimeError(f"the demo service did not report {self.url} within {STARTUP_TIMEOUT_S:g}s")

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process(self._process)
        self._process.stdout.close()
        self._process = None

    def fault(self, track: str = "canary", **profile: float) -> dict:
        """Change a track's error_rate, latency_ms or rps; returns the new state."""
        query = urllib.parse.urlencode({"track": track, **profile})
        return _http_json(f"{self.url}/fault?{query}", method="POST")

    def reset(self) -> dict:
        return _http_json(f"{self.url}/reset", method="POST")

    def state(self) -> dict:
        return _http_json(f"{self.url}/state")

    def __enter__(self) -> DemoServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for_demo_rates(prometheus: PrometheusServer, app: str, timeout_s: float = FIRST_SCRAPE_TIMEOUT_S) -> None:
    """Until both tracks' series span a whole rate window (four scrapes, PrometheusSource's window at 1 s
    samples): rates over a series younger than its window are extrapolated from less and read low."""
    scrapes = RATE_WINDOW_SCRAPES + 1
    window = f"{scrapes * SCRAPE_INTERVAL_S:g}s"
    series = f'http_requests_total{{app="{app}",code="200"}}'
    prometheus.wait_for(f"count_over_time({series}[{window}]) >= {scrapes}", series=2, timeout_s=timeout_s)


@dataclass
class DemoStack:
    prometheus: PrometheusServer
    demo: DemoServiceProcess


@contextmanager
def running_demo_services(work_dir: Path, demos: Sequence[DemoServiceProcess]) -> Iterator[PrometheusServer]:
    """Prometheus first (it waits ~5 s before scraping a new target), then the demo services (one app each);
    yields once every app's rates are queryable on both tracks and stops them all on the way out."""
    with ExitStack() as stack:
        prometheus = stack.enter_context(PrometheusServer([demo.target for demo in demos], work_dir / "prometheus"))
        for demo in demos:
            stack.enter_context(demo)
        for demo in demos:
            wait_for_demo_rates(prometheus, demo.app)
        yield prometheus


@contextmanager
def running_demo_stack(work_dir: Path, app: str = "checkout", demo_args: Sequence[str] = ()) -> Iterator[DemoStack]:
    """One Prometheus scraping one demo service: see running_demo_services."""
    demo = DemoServiceProcess(app, extra_args=demo_args)
    with running_demo_services(work_dir, [demo]) as prometheus:
        yield DemoStack(prometheus, demo)


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """prometheus_server(targets) → a running Prometheus scraping them every second; stopped after the test."""
    require_prometheus()
    with ExitStack() as stack:

        def start(targets: Sequence[str], port: int | None = None) -> PrometheusServer:
            data_dir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=tmp_path))
            return stack.enter_context(PrometheusServer(targets, data_dir, port))

        yield start


@pytest.fixture
def demo_service() -> Iterator[Callable[..., DemoServiceProcess]]:
    """demo_service(app=..., port=..., extra_args=...) → a running demo service; stopped after the test."""
    with ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(DemoServiceProcess(*args, **kwargs))


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """One Prometheus scraping one demo service (app "checkout"), shared by the module's tests.

    Tests that inject faults reset them and wait until the source sees healthy values again."""
    require_prometheus()
    with running_demo_stack(tmp_path_factory.mktemp("demo_stack")) as stack:
        yield stack


def wait_for_canary_errors_to_clear(prometheus: PrometheusServer, app: str, timeout_s: float = FIRST_SCRAPE_TIMEOUT_S) -> None:
    """After a fault is reset: until the canary's 5xx counters have not moved for a rate window and two scrapes
    more, so the next rollout starts on healthy numbers (its first sample reads the counters a rate window
    back, and that read holds the scrape before it). A service that never failed has no 5xx series: still."""
    window = f"{(RATE_WINDOW_SCRAPES + 2) * SCRAPE_INTERVAL_S:g}s"
    errors = f'http_requests_total{{app="{app}",track="canary",code=~"5.."}}'
    prometheus.wait_for(f"((sum({errors}) or vector(0)) - (sum({errors} offset {window}) or vector(0))) == 0", timeout_s=timeout_s)


def is_healthy_sample(event: ev.Event) -> bool:
    """A sample with every judged value in hand that met every criterion and no trigger."""
    return isinstance(event, ev.SampleTaken) and event.verdict == "pass"


class RolloutEvents:
    """Every event a controller emits, in order, and ways to wait for the next ones that match."""

    def __init__(self, controller: Controller) -> None:
        self.seen: list[ev.Event] = []
        self._arrived = asyncio.Event()
        controller.subscribe(self._record)

    def _record(self, event: ev.Event) -> None:
        self.seen.append(event)
        self._arrived.set()

    async def wait_for(self, matches: Callable[[ev.Event], bool], what: str, timeout_s: float, since: int = 0) -> ev.Event:
        """The first event at position `since` or later that `matches`; TimeoutError naming `what` after the deadline."""
        checked = since
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    match = next((event for event in self.seen[checked:] if matches(event)), None)
                    if match is not None:
                        return match
                    checked = len(self.seen)
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}") from None

    async def wait_for_healthy_samples(self, count: int, timeout_s: float) -> None:
        """Until `count` more samples have passed: the stage is under way on healthy numbers."""
        for _ in range(count):
            await self.wait_for(is_healthy_sample, "a healthy sample", timeout_s, since=len(self.seen))
