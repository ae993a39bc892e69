"""A stand-in service to try Brahma on a real Prometheus: random traffic on both tracks, faults on demand.

    python -m testbed.demo_service --port 8000 --app checkout

Serves, on one port:

    GET  /metrics   http_requests_total{app,track,code} and http_request_duration_seconds{app,track}
    GET  /state     each track's current profile (JSON)
    POST /fault?track=canary&error_rate=0.05&latency_ms=900&rps=50   change a track's profile
    POST /reset     back to the profiles it started with

SIGUSR1 sets the canary's error rate to --spike-error-rate. Every 100 ms each track serves a
Poisson number of requests at its rate; each fails (500 or 503) with its error rate and is
otherwise a 404 with CLIENT_ERROR_SHARE, so errors are binomial among requests; their latencies
are drawn into the histogram's buckets (console/sim/traffic.py's LATENCY_BUCKETS_S) from the
simulator's fitted latency shape, through the configured median with p95 ≈ 2.3x and p99 ≈ 3.2x
(a log-normal of sigma 0.5). The draws come from --seed and the tick's number, so one seed serves
the same traffic whenever it runs; a tick's requests land in the series all at once, so a scrape
never sees a request counted and not yet timed. It prints its URL when ready.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from console.samples import TRACKS
from console.sim.traffic import LATENCY_BUCKETS_S, LatencyShape, binomial, draw_latency_buckets, poisson

TICK_S = 0.1
LATENCY_SIGMA = 0.5
"""Spread of the log-normal latency: p99 = median x e^(2.326 x sigma) ≈ 3.2 x median."""
CLIENT_ERROR_SHARE = 0.02
"""404s in every track's traffic: client errors that must not count as failures."""
SERVER_ERRORS = ("500", "503")


@dataclass(frozen=True)
class TrackProfile:
    """How one track behaves."""

    rps: float
    error_rate: float
    """Share of requests answered 5xx (0..1)."""
    latency_ms: float
    """Median latency."""

    @property
    def latency_shape(self) -> LatencyShape:
        return LatencyShape.lognormal(self.latency_ms, LATENCY_SIGMA)


@dataclass
class _TrackSeries:
    """One track's counters as exported: requests by code, and the latency histogram (cumulative)."""

    by_code: dict[str, float]
    buckets: list[float]
    """Cumulative counts at each of LATENCY_BUCKETS_S and +Inf."""
    latency_sum_s: float = 0.0


def _midpoints() -> tuple[float, ...]:
    """Where a bucket's requests are taken to lie for the histogram's _sum: the middle of the bucket on the log scale."""
    lower = (LATENCY_BUCKETS_S[0] / 2, *LATENCY_BUCKETS_S)
    upper = (*LATENCY_BUCKETS_S, LATENCY_BUCKETS_S[-1] * 2)
    return tuple(math.sqrt(low * high) for low, high in zip(lower, upper, strict=True))


BUCKET_MIDPOINTS_S = _midpoints()


def serve_tick(rng: random.Random, profile: TrackProfile, elapsed_s: float) -> Iterator[tuple[str, tuple[tuple[float, float], ...]]]:
    """The requests of one tick by code, each code with its latencies as cumulative (bound, count) buckets."""
    requests = poisson(rng, profile.rps * elapsed_s)
    failed = binomial(rng, requests, profile.error_rate)
    client_errors = binomial(rng, requests - failed, CLIENT_ERROR_SHARE)
    first_kind = binomial(rng, failed, 0.5)
    shape = profile.latency_shape
    for code, count in (
        ("200", requests - failed - client_errors),
        ("404", client_errors),
        (SERVER_ERRORS[0], first_kind),
        (SERVER_ERRORS[1], failed - first_kind),
    ):
        if count:
            yield code, draw_latency_buckets(rng, count, shape)


class DemoService:
    """The service's metrics and its two tracks' profiles, safe to change from any thread."""

    def __init__(self, app: str, profiles: dict[str, TrackProfile], spike_error_rate: float, seed: int = 0) -> None:
        self.app = app
        self.seed = seed
        self.registry = CollectorRegistry()
        self._initial = dict(profiles)
        self._profiles = dict(profiles)
        self._spike_error_rate = spike_error_rate
        self._lock = threading.Lock()
        # Series exist from the first scrape, even for a track with no traffic yet.
        self._series = {track: _TrackSeries({"200": 0.0}, [0.0] * (len(LATENCY_BUCKETS_S) + 1)) for track in TRACKS}
        self._rngs = {track: random.Random(f"{seed}:{track}") for track in TRACKS}
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """The series as Prometheus scrapes them (prometheus_client's collector protocol)."""
        requests = CounterMetricFamily("http_requests", "Requests served.", labels=["app", "track", "code"])
        duration = HistogramMetricFamily("http_request_duration_seconds", "Time to serve a request.", labels=["app", "track"])
        with self._lock:
            for track, series in self._series.items():
                for code, count in sorted(series.by_code.items()):
                    requests.add_metric([self.app, track, code], count)
                bounds = [f"{bound:g}" for bound in LATENCY_BUCKETS_S] + ["+Inf"]
                duration.add_metric([self.app, track], list(zip(bounds, series.buckets, strict=True)), series.latency_sum_s)
        yield requests
        yield duration

    def state(self) -> dict[str, object]:
        with self._lock:
            return {"app": self.app, "seed": self.seed, "tracks": {track: asdict(profile) for track, profile in self._profiles.items()}}

    def set_profile(self, track: str, **changes: float) -> None:
        if track not in TRACKS:
            raise ValueError(f"track must be canary or stable, not {track!r}")
        for name, value in changes.items():
            if not math.isfinite(value) or value < 0 or (name == "error_rate" and value > 1):
                raise ValueError(f"{name} out of range: {value}")
        with self._lock:
            self._profiles[track] = replace(self._profiles[track], **changes)

    def spike(self) -> None:
        self.set_profile("canary", error_rate=self._spike_error_rate)

    def reset(self) -> None:
        with self._lock:
            self._profiles = dict(self._initial)

    def serve(self, elapsed_s: float) -> None:
        """Each track's requests of one tick, added to its series at once."""
        with self._lock:
            profiles = dict(self._profiles)
        served = {track: list(serve_tick(self._rngs[track], profile, elapsed_s)) for track, profile in profiles.items()}
        with self._lock:
            for track, codes in served.items():
                series = self._series[track]
                for code, buckets in codes:
                    series.by_code[code] = series.by_code.get(code, 0.0) + buckets[-1][1]
                    below = 0.0
                    for index, (_, cumulative) in enumerate(buckets):
                        series.buckets[index] += cumulative
                        series.latency_sum_s += (cumulative - below) * BUCKET_MIDPOINTS_S[index]
                        below = cumulative

    def run_traffic(self, stop: threading.Event) -> None:
        """Serve a tick every TICK_S until `stop` is set; ticks missed (a busy machine) are served late, not lost."""
        started, ticks = time.monotonic(), 0
        while not stop.wait(max(0.0, started + (ticks + 1) * TICK_S - time.monotonic())):
            due = int((time.monotonic() - started) / TICK_S)
            for _ in range(due - ticks):
                self.serve(TICK_S)
            ticks = due


_PROFILE_FIELDS = ("rps", "error_rate", "latency_ms")


def make_handler(service: DemoService) -> type[BaseHTTPRequestHandler]:
    """The HTTP routes: /metrics and /state to read, /fault and /reset to change the traffic."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._reply(HTTPStatus.OK, generate_latest(service.registry), CONTENT_TYPE_LATEST)
            elif path == "/state":
                self._reply_json(HTTPStatus.OK, service.state())
            else:
                self._reply_json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/reset":
                service.reset()
            elif url.path == "/fault":
                params = {name: values[-1] for name, values in parse_qs(url.query).items()}
                try:
                    changes = {name: float(params[name]) for name in _PROFILE_FIELDS if name in params}
                    service.set_profile(params.get("track", "canary"), **changes)
                except ValueError as exc:
                    self._reply_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                    return
            else:
                self._reply_json(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
                return
            self._reply_json(HTTPStatus.OK, service.state())

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: Prometheus scrapes every second."""

        def _reply_json(self, status: HTTPStatus, body: dict[str, object]) -> None:
            self._reply(status, json.dumps(body).encode(), "application/json")

        def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.demo_service", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--app", default="checkout")
    parser.add_argument("--rps", type=float, default=100.0, help="stable requests per second")
    parser.add_argument("--canary-rps", type=float, default=25.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="5xx share on both tracks at start")
    parser.add_argument("--canary-error-rate", type=float, default=None, help="the canary's 5xx share at start (default: --error-rate)")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="median latency on both tracks at start")
    parser.add_argument("--spike-error-rate", type=float, default=0.05, help="the canary's error rate after SIGUSR1")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same traffic")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    canary_error_rate = args.error_rate if args.canary_error_rate is None else args.canary_error_rate
    profiles = {
        "canary": TrackProfile(rps=args.canary_rps, error_rate=canary_error_rate, latency_ms=args.latency_ms),
        "stable": TrackProfile(rps=args.rps, error_rate=args.error_rate, latency_ms=args.latency_ms),
    }
    service = DemoService(args.app, profiles, args.spike_error_rate, args.seed)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(service))
    stop = threading.Event()
    traffic = threading.Thread(target=service.run_traffic, args=(stop,), name="traffic", daemon=True)
    traffic.start()
    signal.signal(signal.SIGUSR1, lambda *_: service.spike())
    host, port = server.server_address[:2]
    print(f"demo service for {args.app} on http://{host}:{port}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


if __name__ == "__main__":
    main()
