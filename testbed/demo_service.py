"""A stand-in service to try Brahma on a real Prometheus: synthetic traffic on both tracks, faults on demand.

    python -m testbed.demo_service --port 8000 --app checkout

Serves, on one port:

    GET  /metrics   http_requests_total{app,track,code} and http_request_duration_seconds{app,track}
    GET  /state     each track's current profile (JSON)
    POST /fault?track=canary&error_rate=0.05&latency_ms=900&rps=50   change a track's profile
    POST /reset     back to the profiles it started with

SIGUSR1 sets the canary's error rate to --spike-error-rate. Traffic is deterministic: a background
thread records each track's requests every 100 ms, with exactly the configured share of 5xx
(500/503) and of 404s, and latencies that follow a log-normal with the configured median
(p95 ≈ 2.3x, p99 ≈ 3.2x), spread evenly over its quantiles. It prints its URL when ready.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from statistics import NormalDist
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

TRACKS = ("canary", "stable")
TICK_S = 0.1
LATENCY_SIGMA = 0.5
"""Spread of the log-normal latency: p99 = median x e^(2.326 x sigma) ≈ 3.2 x median."""
CLIENT_ERROR_SHARE = 0.02
"""404s in every track's traffic: client errors that must not count as failures."""
LATENCY_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)
_GOLDEN_RATIO_FRACTION = (math.sqrt(5) - 1) / 2
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class TrackProfile:
    """How one track behaves."""

    rps: float
    error_rate: float
    """Share of requests answered 5xx (0..1)."""
    latency_ms: float
    """Median latency."""


class _TrackTraffic:
    """Turns a profile into exact requests: fractions of requests, 5xx and 404s carry over between ticks."""

    def __init__(self) -> None:
        self._requests_due = 0.0
        self._errors_due = 0.0
        self._client_errors_due = 0.0
        self._served = 0

    def requests(self, profile: TrackProfile, elapsed_s: float) -> Iterator[tuple[str, float]]:
        """(status code, latency in seconds) of each request served in `elapsed_s`."""
        self._requests_due += profile.rps * elapsed_s
        while self._requests_due >= 1:
            self._requests_due -= 1
            self._served += 1
            yield self._status(profile), self._latency_s(profile)

    def _status(self, profile: TrackProfile) -> str:
        self._errors_due += profile.error_rate
        self._client_errors_due += CLIENT_ERROR_SHARE
        if self._errors_due >= 1:
            self._errors_due -= 1
            return "500" if self._served % 2 else "503"
        if self._client_errors_due >= 1:
            self._client_errors_due -= 1
            return "404"
        return "200"

    def _latency_s(self, profile: TrackProfile) -> float:
        # The golden-ratio sequence visits the quantiles evenly, so any window sees the whole distribution.
        quantile = max((self._served * _GOLDEN_RATIO_FRACTION) % 1.0, 1e-9)
        return profile.latency_ms / 1000 * math.exp(LATENCY_SIGMA * _STANDARD_NORMAL.inv_cdf(quantile))


class DemoService:
    """The service's metrics and its two tracks' profiles, safe to change from any thread."""

    def __init__(self, app: str, profiles: dict[str, TrackProfile], spike_error_rate: float) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        self._requests = Counter("http_requests", "Requests served.", ["app", "track", "code"], registry=self.registry)
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time to serve a request.",
            ["app", "track"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._initial = dict(profiles)
        self._profiles = dict(profiles)
        self._spike_error_rate = spike_error_rate
        self._lock = threading.Lock()
        self._traffic = {track: _TrackTraffic() for track in TRACKS}
        for track in TRACKS:  # series exist from the first scrape, even for a track with no traffic yet
            self._requests.labels(app, track, "200")
            self._duration.labels(app, track)

    def state(self) -> dict[str, object]:
        with self._lock:
            return {"app": self.app, "tracks": {track: asdict(profile) for track, profile in self._profiles.items()}}

    def set_profile(self, track: str, **changes: float) -> None:
        if track not in TRACKS:
            raise ValueError(f"track must be canary or stable, not {track!r}")
        for name, value in changes.items():
            if value < 0 or (name == "error_rate" and value > 1):
                raise ValueError(f"{name} out of range: {value}")
        with self._lock:
            self._profiles[track] = replace(self._profiles[track], **changes)

    def spike(self) -> None:
        self.set_profile("canary", error_rate=self._spike_error_rate)

    def reset(self) -> None:
        with self._lock:
            self._profiles = dict(self._initial)

    def run_traffic(self, stop: threading.Event) -> None:
        """Record each track's requests every tick until `stop` is set."""
        last = time.monotonic()
        while not stop.wait(TICK_S):
            now = time.monotonic()
            with self._lock:
                profiles = dict(self._profiles)
            for track, profile in profiles.items():
                for code, latency_s in self._traffic[track].requests(profile, now - last):
                    self._requests.labels(self.app, track, code).inc()
                    self._duration.labels(self.app, track).observe(latency_s)
            last = now


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
    parser.add_argument("--latency-ms", type=float, default=40.0, help="median latency on both tracks at start")
    parser.add_argument("--spike-error-rate", type=float, default=0.05, help="the canary's error rate after SIGUSR1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    profiles = {
        track: TrackProfile(rps=rps, error_rate=args.error_rate, latency_ms=args.latency_ms)
        for track, rps in (("canary", args.canary_rps), ("stable", args.rps))
    }
    service = DemoService(args.app, profiles, args.spike_error_rate)
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
