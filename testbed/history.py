"""Prometheus history made to order, for backtest and calibrate tests and benchmarks.

A `History` describes what an app's two tracks served over a range of wall time: base rates per track
(requests per second, error rate, latency p50/p95/p99), an optional daily swing of the request rate,
and events at known times: `Change` (a track's rates replaced from one time to another: an incident,
a stable that sits just outside a limit at night, see `nightly`), `Gap` (no scrapes: an outage of the
scraper) and `Restart` (Prometheus down for a while, and optionally the service restarting with it,
its counters starting again from zero). `generate` draws it, deterministic by seed, with the
simulator's traffic model (console/sim/traffic.py: Poisson requests, binomial errors, latencies in
the simulator's buckets from the shape fitted to p50/p95/p99), as the counters a service exports and
the product reads: `http_requests_total{app,track,code}` (200 and 500) and the histogram
`http_request_duration_seconds{app,track}` (_bucket by le, _count, _sum), sampled every scrape.

`build_tsdb` writes them as OpenMetrics and has promtool (Debian's prometheus package ships it) turn
them into TSDB blocks; `serving_history` starts a `PrometheusServer` on those blocks (no scrape
targets, the history's scrape interval in its configuration, since PrometheusSource reads it from
there, and a retention long enough to keep them all). `history_prometheus` is the pytest fixture.

Scrapes every 15 s by default: Prometheus' own default (and PrometheusSource's fallback), so history
looks like most real servers'; it is longer than the sample plans' 10 s interval, which exercises the
samples that see no new scrape; and it is two thirds of the data 10 s would make.

promtool 2.42 cuts blocks of two hours and parses its whole input once for each block it writes,
so a week in one file costs 84 parses of it: the history is written as one file per two-hour block,
converted two at a time. On this 2-core machine a day (one app, two tracks, 15 s) takes about 6 s to
draw and convert, a week about 40 s: benchmarks cache the blocks (build_tsdb's cache_dir,
default_cache_dir), tests keep to hours. Blocks of the past are served as they are, whatever their age relative to
the wall clock: Prometheus 2.42's time retention counts back from the newest block, not from now,
and with no scrapes the head stays empty, so nothing overlaps it.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from console.sim.traffic import LATENCY_BUCKETS_S, LatencyShape, draw_track_counts
from testbed.demo_service import BUCKET_MIDPOINTS_S
from testbed.prometheus_server import PrometheusServer, prometheus_required, require_prometheus

PROMTOOL_BINARY = shutil.which("promtool") or "/usr/bin/promtool"
PROMTOOL_TIMEOUT_S = 120.0
"""One two-hour block takes well under a second; the rest is slack for a busy machine."""
BLOCK_S = 2 * 3600
"""promtool's block length: each OpenMetrics file holds one block's samples, aligned as promtool aligns them."""
RETENTION = "100y"
"""Long enough that Prometheus deletes none of a history's blocks, however old."""
DEFAULT_SCRAPE_INTERVAL_S = 15.0
DAY_S = 86400.0
TRACKS = ("canary", "stable")
FORMAT_VERSION = 1
"""Part of the cache key: change it when the generator draws differently for the same History."""
CACHE_ENV = "BRAHMA_HISTORY_CACHE"
"""Where benchmarks cache blocks (default_cache_dir): a week takes about 40 s to draw and convert."""


@dataclass(frozen=True)
class TrackRates:
    """What a track serves: requests per second, the share of them that fail (500), latency quantiles."""

    rps: float = 100.0
    error_rate: float = 0.0001
    """A healthy service by the reference plan: well inside its tightest criterion (success > 99.95%)."""
    p50_ms: float = 40.0
    p95_ms: float = 120.0
    p99_ms: float = 200.0

    @property
    def latency(self) -> LatencyShape:
        return LatencyShape(self.p50_ms, self.p95_ms, self.p99_ms)


@dataclass(frozen=True)
class Change:
    """From `start` to `end` (epoch seconds) the track serves these rates instead (None: unchanged).
    Later changes win over earlier ones where they overlap."""

    track: str
    start: float
    end: float
    rps: float | None = None
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def applied_to(self, rates: TrackRates) -> TrackRates:
        changed = {name: getattr(self, name) for name in ("rps", "error_rate", "p50_ms", "p95_ms", "p99_ms") if getattr(self, name) is not None}
        return replace(rates, **changed)


@dataclass(frozen=True)
class Gap:
    """No scrapes from `start` to `end`: the service served on, nobody recorded it."""

    start: float
    end: float


@dataclass(frozen=True)
class Restart:
    """Prometheus down from `at` for `down_s` (no scrapes); with `counters_reset` the service restarted at `at`
    too, so its counters count again from zero."""

    at: float
    down_s: float = 60.0
    counters_reset: bool = True


def nightly(track: str, start: float, end: float, from_hour: float, to_hour: float, **rates: float) -> tuple[Change, ...]:
    """The same change every day between `from_hour` and `to_hour` (UTC) within start..end: a stable that is
    slower or fails more at night (batch jobs, a nightly backup)."""
    first_day = math.floor(start / DAY_S) * DAY_S
    windows = ((day + from_hour * 3600, day + to_hour * 3600) for day in _days(first_day, end))
    return tuple(Change(track, max(begin, start), min(finish, end), **rates) for begin, finish in windows if finish > start and begin < end)


def _days(first_day: float, end: float) -> Iterator[float]:
    day = first_day
    while day < end:
        yield day
        day += DAY_S


@dataclass(frozen=True)
class History:
    """What one or more apps' canary and stable tracks served from `start` to `end` (epoch seconds)."""

    start: float
    end: float
    apps: tuple[str, ...] = ("checkout",)
    stable: TrackRates = TrackRates()
    canary: TrackRates = TrackRates()
    changes: tuple[Change, ...] = ()
    gaps: tuple[Gap, ...] = ()
    restarts: tuple[Restart, ...] = ()
    diurnal_swing: float = 0.0
    """The request rate swings by this share of itself over a day (0.5: from half to one and a half times the base)."""
    diurnal_peak_hour: float = 15.0
    """When in the day (UTC) the request rate peaks."""
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
    seed: int = 0

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a history must end after it starts ({self.start:g} .. {self.end:g})")
        if not 0 <= self.diurnal_swing < 1:
            raise ValueError(f"diurnal_swing is a share below 1, not {self.diurnal_swing:g}")
        for change in self.changes:
            if change.track not in TRACKS:
                raise ValueError(f"a change's track is canary or stable, not {change.track!r}")

    @property
    def scrape_times(self) -> Iterator[float]:
        """Every scrape time, on multiples of the scrape interval (so tests can name them), gaps included."""
        step = self.scrape_interval_s
        index = math.ceil(self.start / step)
        while index * step <= self.end:
            yield index * step
            index += 1

    def rates(self, track: str, at: float) -> TrackRates:
        """The track's rates at wall time `at`: its base, the changes that cover `at`, then the day's swing."""
        rates = self.stable if track == "stable" else self.canary
        for change in self.changes:
            if change.track == track and change.start <= at < change.end:
                rates = change.applied_to(rates)
        if self.diurnal_swing:
            hours_from_peak = (at % DAY_S) / 3600 - self.diurnal_peak_hour
            rates = replace(rates, rps=rates.rps * (1 + self.diurnal_swing * math.cos(2 * math.pi * hours_from_peak / 24)))
        return rates

    def scraped(self, at: float) -> bool:
        return not any(gap.start <= at < gap.end for gap in self.gaps) and not any(r.at <= at < r.at + r.down_s for r in self.restarts)

    def cache_key(self) -> str:
        return hashlib.sha256(f"{FORMAT_VERSION}:{self!r}".encode()).hexdigest()[:20]


BOUNDS = (*LATENCY_BUCKETS_S, math.inf)
LE_LABELS = tuple(f"{bound:g}" for bound in LATENCY_BUCKETS_S) + ("+Inf",)
"""As the demo service (prometheus_client) writes them."""


@dataclass
class TrackSeries:
    """One app's track as scraped: each counter's value at every scrape time (gaps left out)."""

    times: array = field(default_factory=lambda: array("d"))
    ok: array = field(default_factory=lambda: array("d"))
    """http_requests_total{code="200"}"""
    errors: array = field(default_factory=lambda: array("d"))
    """http_requests_total{code="500"}"""
    buckets: list[array] = field(default_factory=lambda: [array("d") for _ in BOUNDS])
    """http_request_duration_seconds_bucket at each bound of BOUNDS (cumulative; the last is _count)."""
    latency_sum_s: array = field(default_factory=lambda: array("d"))

    def index_at(self, at: float) -> int:
        """The last scrape at or before `at` (what an instant query at `at` answers, within its lookback)."""
        index = bisect_right(self.times, at) - 1
        if index < 0:
            raise ValueError(f"no scrape at or before {at:g}")
        return index

    def requests_at(self, at: float) -> float:
        index = self.index_at(at)
        return self.ok[index] + self.errors[index]

    def errors_at(self, at: float) -> float:
        return self.errors[self.index_at(at)]


@dataclass
class GeneratedHistory:
    history: History
    tracks: dict[tuple[str, str], TrackSeries]
    """(app, track) → its series."""


def generate(history: History) -> GeneratedHistory:
    """Draw every app's tracks' counters at every scrape time. Each (app, track) has its own random stream
    seeded by the history's seed, so adding an app or an event elsewhere leaves the others' draws alone."""
    tracks = {(app, track): _generate_track(history, app, track) for app in history.apps for track in TRACKS}
    return GeneratedHistory(history, tracks)


def _generate_track(history: History, app: str, track: str) -> TrackSeries:
    rng = random.Random(f"{history.seed}:{app}:{track}")
    series = TrackSeries()
    ok = errors = latency_sum = 0.0
    buckets = [0.0] * len(BOUNDS)
    resets = sorted(restart.at for restart in history.restarts if restart.counters_reset)
    shapes: dict[tuple[float, float, float], LatencyShape] = {}
    step = history.scrape_interval_s
    previous = None
    for at in history.scrape_times:
        if previous is not None:
            if resets and resets[0] <= at:  # the service restarted since the last scrape: what it served since counts from zero
                while resets and resets[0] <= at:
                    resets.pop(0)
                ok = errors = latency_sum = 0.0
                buckets = [0.0] * len(BOUNDS)
            rates = history.rates(track, at - step / 2)
            quantiles = (rates.p50_ms, rates.p95_ms, rates.p99_ms)
            shape = shapes.get(quantiles) or shapes.setdefault(quantiles, rates.latency)
            counts = draw_track_counts(rng, rates.rps, step, rates.error_rate, shape)
            ok += counts.requests - counts.errors
            errors += counts.errors
            below = 0.0
            for index, (_, cumulative) in enumerate(counts.latency_buckets):
                buckets[index] += cumulative
                latency_sum += (cumulative - below) * BUCKET_MIDPOINTS_S[index]
                below = cumulative
        previous = at
        if history.scraped(at):
            series.times.append(at)
            series.ok.append(ok)
            series.errors.append(errors)
            for index, value in enumerate(buckets):
                series.buckets[index].append(value)
            series.latency_sum_s.append(latency_sum)
    return series


def write_openmetrics(generated: GeneratedHistory, out_dir: Path) -> list[Path]:
    """The samples as OpenMetrics files, one a promtool block (two hours, aligned as promtool aligns them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    history = generated.history
    first_block = math.floor(history.start / BLOCK_S) * BLOCK_S
    paths = []
    for block_start in _blocks(first_block, history.end):
        path = out_dir / f"history-{int(block_start)}.om"
        with path.open("w") as out:
            wrote = _write_block(out, generated, block_start, block_start + BLOCK_S)
        if wrote:
            paths.append(path)
        else:
            path.unlink()
    return paths


def _blocks(first_block: float, end: float) -> Iterator[float]:
    block = first_block
    while block <= end:
        yield block
        block += BLOCK_S


def _write_block(out, generated: GeneratedHistory, start: float, end: float) -> bool:
    """Every series' samples from `start` up to `end`, family by family and series by series (OpenMetrics keeps
    a family's samples together and a series' in time order); False when there were none."""
    spans = {key: (bisect_right(series.times, start - 1e-9), bisect_right(series.times, end - 1e-9)) for key, series in generated.tracks.items()}
    if all(low == high for low, high in spans.values()):
        return False
    out.write("# TYPE http_requests counter\n")
    for (app, track), series in generated.tracks.items():
        low, high = spans[app, track]
        for code, values in (("200", series.ok), ("500", series.errors)):
            _write_series(out, f'http_requests_total{{app="{app}",track="{track}",code="{code}"}}', series.times, values, low, high)
    out.write("# TYPE http_request_duration_seconds histogram\n")
    for (app, track), series in generated.tracks.items():
        low, high = spans[app, track]
        labels = f'app="{app}",track="{track}"'
        for le, values in zip(LE_LABELS, series.buckets, strict=True):
            _write_series(out, f'http_request_duration_seconds_bucket{{{labels},le="{le}"}}', series.times, values, low, high)
        _write_series(out, f"http_request_duration_seconds_count{{{labels}}}", series.times, series.buckets[-1], low, high)
        _write_series(out, f"http_request_duration_seconds_sum{{{labels}}}", series.times, series.latency_sum_s, low, high, integral=False)
    out.write("# EOF\n")
    return True


def _write_series(out, name: str, times: array, values: array, low: int, high: int, integral: bool = True) -> None:
    if integral:
        out.write("".join(f"{name} {values[i]:.0f} {times[i]:.3f}\n" for i in range(low, high)))
    else:
        out.write("".join(f"{name} {values[i]!r} {times[i]:.3f}\n" for i in range(low, high)))


def build_tsdb(history: History, tsdb_dir: Path, cache_dir: Path | None = None) -> GeneratedHistory | None:
    """The history's TSDB blocks in `tsdb_dir` (made or emptied first). With `cache_dir`, blocks already built for
    these parameters are linked from there instead of being made again, and None is returned (nothing was drawn);
    otherwise the generated history, whose values tests compare with what Prometheus serves."""
    if tsdb_dir.exists():
        shutil.rmtree(tsdb_dir)
    if cache_dir is None:
        generated = generate(history)
        _convert(generated, tsdb_dir)
        return generated
    cached = cache_dir / history.cache_key()
    generated = None
    if not cached.is_dir():
        generated = generate(history)
        cache_dir.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix="building-", dir=cache_dir))
        _convert(generated, building)
        building.rename(cached)
    # Links, not copies: Prometheus replaces a block's files (compaction writes new blocks, deletes old ones)
    # and never writes into them, so the cache's stay as built.
    shutil.copytree(cached, tsdb_dir, copy_function=os.link)
    return generated


def _convert(generated: GeneratedHistory, tsdb_dir: Path) -> None:
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openmetrics-") as scratch:
        files = write_openmetrics(generated, Path(scratch))
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda path: _promtool_block(path, tsdb_dir), files))


def _promtool_block(openmetrics: Path, tsdb_dir: Path) -> None:
    try:
        subprocess.run(
            [PROMTOOL_BINARY, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(openmetrics), str(tsdb_dir)],
            check=True,
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as failed:
        raise RuntimeError(f"promtool could not convert {openmetrics.name}: {failed.stderr.strip()}") from None


def default_cache_dir() -> Path:
    """$BRAHMA_HISTORY_CACHE, or ~/.cache/brahma/history."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "brahma" / "history")


def promtool_missing() -> str | None:
    if Path(PROMTOOL_BINARY).is_file():
        return None
    return f"promtool is not installed ({PROMTOOL_BINARY}); on Debian: apt-get install -y prometheus"


@contextmanager
def serving_history(history: History, work_dir: Path, cache_dir: Path | None = None) -> Iterator[tuple[PrometheusServer, GeneratedHistory | None]]:
    """A Prometheus serving `history` from blocks in `work_dir` (see build_tsdb for `cache_dir`), and the generated
    history (None when the blocks came from the cache); stopped on the way out."""
    data_dir = work_dir / "prometheus"
    generated = build_tsdb(history, data_dir / "tsdb", cache_dir)
    with PrometheusServer([], data_dir, scrape_interval_s=history.scrape_interval_s, retention=RETENTION) as server:
        yield server, generated


def require_history_tools() -> None:
    """As require_prometheus, for promtool too."""
    require_prometheus()
    reason = promtool_missing()
    if reason and prometheus_required():
        pytest.fail(f"BRAHMA_REQUIRE_PROMETHEUS=1 but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def history_prometheus(tmp_path: Path) -> Iterator[Callable[[History], tuple[PrometheusServer, GeneratedHistory]]]:
    """history_prometheus(history) → (a Prometheus serving it, what was generated); stopped after the test."""
    require_history_tools()
    with ExitStack() as stack:

        def start(history: History) -> tuple[PrometheusServer, GeneratedHistory]:
            work_dir = Path(tempfile.mkdtemp(prefix="history-", dir=tmp_path))
            return stack.enter_context(serving_history(history, work_dir))

        yield start


def recent_range(duration_s: float, scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S) -> tuple[float, float]:
    """(start, end) of `duration_s` ending at the last scrape time before now."""
    end = math.floor(time.time() / scrape_interval_s) * scrape_interval_s
    return end - duration_s, end
