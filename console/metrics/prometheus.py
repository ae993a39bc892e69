"""Samples from a real Prometheus server, over HTTP with prometheus-api-client.

With no queries in the plan the source assumes the usual exporter series, labelled with the app
and the track (design §3): `http_requests_total{app, track, code}` and
`http_request_duration_seconds_bucket{app, track, le}`. A plan's `metrics.queries` override these
or add business metrics; every query may use the placeholders {app}, {track} (canary or stable),
{window} (the rate window, e.g. "4s") and {matchers} (app, track and `prometheus.labels` as
PromQL label matchers). An answer whose series carries an app, track or plan label other than
the one asked for (a query that pins the track, a recording rule of another app) is missing data,
with the labels named; a result aggregated without those labels (sum()) cannot say and is accepted.

Counts. Every sample gives each track's counts (requests, 5xx errors, the latency histogram's
bucket counts: console/samples.py TrackCounts), the evidence the sequential judge sums over
samples. A sum of evidence must count no request twice, so a sample's counts cover the span
since the previous sample and nothing before it. increase() over the sample's window cannot
promise that: it extrapolates to the range's edges (so neighbouring ranges share fractions of
requests, or miss some), and with 10 s samples and 15 s scrapes a [10s] range often holds one
point and gives nothing. So each sample reads the counters themselves, with instant queries
(`http_requests_total{matchers}` by code, `http_request_duration_seconds_bucket{matchers}` by le,
series by series and not summed, so a reset shows), and takes their increase since the track's
previous read itself, resets handled as increase() handles them (console/metrics/counters.py).
Consecutive samples' counts then tile time: they add up to the counter's increase from the first
read to the last, in whole requests, whatever the scrape interval (a sample with no scrape since
the one before counts zero requests, and the next one counts both scrapes). The first sample
reads the counters as they were `window_s` before as well (Prometheus answers for any instant),
so it has counts of its own span too. Both tracks' counts are given only when both tracks were
read at this sample and at the same one before, so they cover the same span; otherwise the
sample's counts are None (no evidence, never zeros). A plan's `metrics.counts` gives its own
queries for requests, errors or latency_buckets: counters (never rates), with {app}, {track} and
{matchers}.

Values. error_rate, success_rate, throughput and latency_p50/p95/p99 are derived from those
counts, as Prometheus derives them (console/derived.py: ratios of increases, histogram_quantile's
interpolation), summed over the rate window below, as their rate() queries covered it before:
a quantile of one second of a small canary's requests is its slowest request, and the canary's
request count that min_requests judges is the window's. The first sample reads the counters a
rate window back too, so its values cover a whole window. A plan's metrics.queries for one of
these metrics wins, and runs as a query.

Rate windows: a window covers max(interval, 4 x scrape interval). rate() needs two points inside
its window, and four scrapes leave room for one missed or late scrape, so a window never comes
back empty on a healthy target. A shorter window would not detect faster: with 1 s scrapes and
1 s samples a 4 s window already shows a 0 → 5% error step above a 1% threshold after about one
second of bad traffic (a fifth of the window), while 2 s windows flicker to "no data". Longer
sample intervals use their own length so consecutive samples tile the observation window. The
scrape interval is read from the server's configuration unless the caller passes it.

Every query of a sample runs in its own thread at the same evaluation time, so canary, stable
and the counts describe the same instant and the event loop never waits on HTTP. History (the
charts) runs the rate() equivalents of the derived metrics as range queries, while the counts
come from the built-in series.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import re
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests
import yaml
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from console.derived import track_values
from console.metric_catalogue import REQUEST_METRICS
from console.metrics.counters import LATENCY_BUCKETS, CounterTally, Interval, SeriesKey, Snapshot, TallyState, bucket_bound
from console.plan.model import CountQueries, PrometheusSpec
from console.printable import printable
from console.redact import redact, split_credentials
from console.samples import TRACKS, HistoryPoint, Sample, TrackCounts, TrackValues
from console.units import parse_duration

REQUESTS_METRIC = "requests"
"""The canary's request count over the rate window (judged against min_requests); a plan may give its query."""

_REQUEST_RATE = "sum(rate(http_requests_total{{matchers}}[{window}]))"
_SERVER_ERROR_RATE = 'sum(rate(http_requests_total{{matchers},code=~"5.."}[{window}]))'
# A service that never failed has no 5xx series at all: count that as zero errors, not as no data.
# Without any requests the division is 0/0 = NaN, which reads as "no data" again.
_ERROR_RATIO = f"({_SERVER_ERROR_RATE} or vector(0)) / {_REQUEST_RATE}"


def _latency_quantile(quantile: float) -> str:
    return f"histogram_quantile({quantile}, sum by (le) (rate(http_request_duration_seconds_bucket{{{{matchers}}}}[{{window}}]))) * 1000"


_REQUEST_SERIES_QUERIES = {
    "error_rate": _ERROR_RATIO,
    "success_rate": f"1 - ({_ERROR_RATIO})",
    "latency_p50": _latency_quantile(0.5),
    "latency_p95": _latency_quantile(0.95),
    "latency_p99": _latency_quantile(0.99),
    "throughput": _REQUEST_RATE,
}
BUILTIN_QUERIES: dict[str, str] = {
    **{metric: _REQUEST_SERIES_QUERIES[metric] for metric in REQUEST_METRICS},
    REQUESTS_METRIC: "sum(increase(http_requests_total{{matchers}}[{window}]))",
}
"""PromQL for the catalogue's metrics read from the request series, in their units (fractions,
milliseconds, requests/s): what history() charts. A sample derives them from the counts instead.

cpu, memory, health_check_failures and memory_oom_kills have no template: exporters do not label
them with app and track, and cpu or memory as a fraction needs a limit that only the platform
knows. They stay None (inconclusive) unless the plan gives a query."""

BUILTIN_COUNT_QUERIES: dict[str, str] = {
    "requests": "http_requests_total{{matchers}}",
    "errors": 'http_requests_total{{matchers},code=~"5.."}',
    LATENCY_BUCKETS: "http_request_duration_seconds_bucket{{matchers}}",
}
"""The counters each track's counts are the increase of: series by series, never summed (a sum hides a reset)."""
DERIVED_METRICS = frozenset(REQUEST_METRICS)
"""The metrics a sample derives from the counts unless the plan gives their query."""

RATE_WINDOW_SCRAPES = 4
STALE_AFTER_SCRAPES = 3
FALLBACK_SCRAPE_INTERVAL_S = 15.0
"""Used while the server does not tell its scrape interval: the interval of Prometheus' example configuration."""
MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses range queries with more points than this."""
_MAX_PARALLEL_QUERIES = 16
_RECORDED_READS_KEPT = 32
"""Counter reads of recorded answers a source keeps: a sample's (two tracks' few count queries) and the last one's."""
_DEADLINE_GRACE_S = 0.5
"""Time beyond the timeout a query thread gets before the sample stops waiting for it."""

_PLACEHOLDER = re.compile(r"\{(app|track|window|matchers)\}")

T = TypeVar("T")


class QueryClient(Protocol):
    """What answers a sample's instant queries: PrometheusConnect, or a backtest's prefetched history (whose
    `in_memory = True` has the source call it in the event loop rather than in a thread: a backtest's loop
    has nothing else to do, and the few answers it lacks it asks the server for, within the timeout)."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any: ...


class RecordedClient(QueryClient, Protocol):
    """A QueryClient over recorded answers (a backtest's history), which names the answers it has."""

    def instant_key(self, query: str, params: dict[str, Any]) -> Hashable | None:
        """What the answer to `query` at `params` is a function of, stamped at the time asked (so never stale);
        None when the client would ask the server."""
        ...


class Selector(Protocol):
    """A track's own PromQL label matchers (console/backtest/selectors.py)."""

    @property
    def matchers(self) -> str:
        """As PromQL writes them inside braces: `pod="checkout-7f9",env!="dev"`."""
        ...

    @property
    def equal(self) -> Mapping[str, str]:
        """The labels it pins to one value: an answer's series labelled otherwise is not the one asked for."""
        ...


class PrometheusConfigError(ValueError):
    """The plan's Prometheus settings cannot be used (a credential variable unset, a token file unreadable)."""


@dataclass(frozen=True)
class Reading:
    """One query's answer: its value, or None and why."""

    value: float | None
    problem: str | None = None


def rate_window(sample_window_s: float, scrape_interval_s: float) -> float:
    """Seconds a rate covers: the sample's own window, but never fewer than four scrapes."""
    return max(sample_window_s, RATE_WINDOW_SCRAPES * scrape_interval_s)


def promql_duration(seconds: float) -> str:
    """A PromQL range duration (whole units only): 4 → "4s", 2.5 → "2500ms"."""
    milliseconds = max(1, round(seconds * 1000))
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def query_labels(app: str, track: str, extra_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a sample's query is for: the app, the track and the plan's extra labels."""
    return {"app": app, "track": track, **extra_labels}


def label_matchers(app: str, track: str, extra_labels: Mapping[str, str]) -> str:
    """`app="checkout",track="canary"` plus the plan's extra labels, values escaped for PromQL."""
    labels = query_labels(app, track, extra_labels)
    return ",".join(f'{name}="{_promql_string(value)}"' for name, value in labels.items())


def _format_labels(labels: Mapping[str, str]) -> str:
    # Label values come from the server: shown as PromQL writes them, with no terminal control.
    return ", ".join(f'{name}="{printable(_promql_string(str(value)))}"' for name, value in labels.items())


def other_labels(series: Any, wanted: Mapping[str, str] | None) -> str | None:
    """Why a series is not the one asked for (labelled for another app or track), or None when it is.

    Only labels the series carries are compared: a result aggregated without them (sum()) is accepted.
    """
    labels = series.get("metric") if isinstance(series, dict) else None
    if not wanted or not isinstance(labels, dict):
        return None
    # Every series of every count query is checked: the common case (none differs) builds nothing.
    for name, value in wanted.items():
        if labels.get(name, value) != value:
            break
    else:
        return None
    differing = {name: value for name, value in wanted.items() if name in labels and labels[name] != value}
    found = {name: labels[name] for name in differing}
    return (
        f"the series is labelled {_format_labels(found)}, not {_format_labels(differing)}: "
        "select the plan's series with {matchers} (or {app} and {track})"
    )


def expand_query(template: str, *, app: str, track: str, window: str, matchers: str) -> str:
    """The template with its placeholders filled; PromQL's own braces are left alone."""
    values = {"app": _promql_string(app), "track": track, "window": window, "matchers": matchers}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _read_value(text: Any) -> Reading:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return Reading(None, f"unreadable value {text!r}")
    if math.isnan(value):
        return Reading(None, "NaN (0/0: no requests in the window?)")
    if math.isinf(value):
        return Reading(None, f"{text} (a division by zero in the query?)")
    return Reading(value)


def _is_sample_pair(result: Any) -> bool:
    return isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict)


def read_instant_result(result: Any, evaluated_at: float, stale_after_s: float, wanted: Mapping[str, str] | None = None) -> Reading:
    """The single value in an instant query's `data.result`, or None and why.

    Prometheus sends values as strings ("0.01", "NaN", "+Inf") beside a timestamp; a vector holds
    one entry per series, a scalar is a bare [timestamp, value] pair. Prometheus stamps answers
    with the evaluation time asked for, so an older stamp means a cache or a federated backend
    answered with old data. A series labelled otherwise than `wanted` (another app, the other
    track) is refused.
    """
    if _is_sample_pair(result):
        point = result
    elif not isinstance(result, list):
        return Reading(None, "unexpected answer from Prometheus")
    elif not result:
        return Reading(None, "no data")
    elif len(result) > 1:
        return Reading(
            None,
            f"the query returns {len(result)} series where one was expected: fix the plan's query, e.g. wrap it in sum()",
        )
    elif "value" not in result[0]:
        return Reading(None, "the query returns a range vector: use rate(), last_over_time() or similar")
    elif mislabelled := other_labels(result[0], wanted):
        return Reading(None, mislabelled)
    else:
        point = result[0]["value"]
    timestamp, text = point
    age_s = evaluated_at - float(timestamp)
    if age_s > stale_after_s:
        return Reading(None, f"stale: the newest sample is {age_s:.0f}s old")
    return _read_value(text)


def read_range_result(result: Any, wanted: Mapping[str, str] | None = None) -> dict[float, float | None]:
    """Timestamp → value of a range query's single series; empty when there is not exactly one,
    or when it is labelled otherwise than `wanted`."""
    if not isinstance(result, list) or len(result) != 1 or "values" not in result[0] or other_labels(result[0], wanted):
        return {}
    return {float(timestamp): _read_value(text).value for timestamp, text in result[0]["values"]}


@dataclass(frozen=True)
class CounterRead:
    """One count query's answer: each series' value, or None and why."""

    series: dict[SeriesKey, float] | None
    problem: str | None = None


def read_counter_result(result: Any, evaluated_at: float, stale_after_s: float, wanted: Mapping[str, str] | None, kind: str) -> CounterRead:
    """The series of an instant query of counters (`data.result`), keyed by their labels.

    No series at all is zero for errors (a service that never failed has no 5xx series) and for the
    latency histogram (a service without one: its quantiles are unknown); for requests it is no data.
    A value that is not a finite number at or above zero is no counter's; a bucket series needs `le`.
    """
    if not isinstance(result, list) or (result and not isinstance(result[0], dict)):
        return CounterRead(None, "a count query must return the counters' series (an instant vector), not a scalar")
    if not result:
        return CounterRead(None, "no data") if kind == "requests" else CounterRead({})
    series: dict[SeriesKey, float] = {}
    for entry in result:
        if "value" not in entry:
            return CounterRead(None, "the query returns a range vector: select the counters themselves, with no [range]")
        if mislabelled := other_labels(entry, wanted):
            return CounterRead(None, mislabelled)
        timestamp, text = entry["value"]
        age_s = evaluated_at - float(timestamp)
        if age_s > stale_after_s:
            return CounterRead(None, f"stale: the newest sample is {age_s:.0f}s old")
        try:
            value = float(text)
        except (TypeError, ValueError):
            return CounterRead(None, f"unreadable value {text!r}")
        if not math.isfinite(value) or value < 0:
            return CounterRead(None, f"{text} is no counter's value: select the counters themselves, not rate() or a ratio of them")
        labels = entry.get("metric") or {}
        if kind == LATENCY_BUCKETS and bucket_bound(labels.get("le")) is None:
            return CounterRead(None, "a series has no le label: select the histogram's _bucket series, not summed away from le")
        series[tuple(sorted(labels.items()))] = value
    return CounterRead(series)


def summarize_problems(problems: Sequence[tuple[str, str, str]], queries: int) -> tuple[str, ...]:
    """Short lines from (metric, track, problem): once when every query had it (the server is down),
    otherwise one line per metric and problem naming its tracks."""
    reasons = list(dict.fromkeys(problem for _, _, problem in problems))
    if len(problems) == queries and len(reasons) == 1:
        return (f"all queries: {reasons[0]}",)
    tracks_by_metric_problem: dict[tuple[str, str], list[str]] = {}
    for metric, track, problem in problems:
        tracks_by_metric_problem.setdefault((metric, problem), []).append(track)
    return tuple(f"{metric} ({', '.join(tracks)}): {problem}" for (metric, problem), tracks in tracks_by_metric_problem.items())


def _connection_cause(exc: BaseException) -> str:
    text = str(exc)
    causes = {
        "refused": "connection refused",
        "NameResolution": "host name not found",
        "Name or service not known": "host name not found",
        "reset": "connection reset",
        "RemoteDisconnected": "connection closed by the server",
        "SSL": "TLS handshake failed",
    }
    return next((cause for marker, cause in causes.items() if marker in text), "connection failed")


def _api_error(exc: PrometheusApiClientException) -> tuple[int | None, str | None]:
    """The HTTP status and Prometheus' own error text from the client's "HTTP Status Code N (b'...')"."""
    match = re.match(r"HTTP Status Code (\d+) \((b.*)\)$", str(exc), re.DOTALL)
    if not match:
        return None, None
    try:
        body = json.loads(ast.literal_eval(match.group(2)))
        error = str(body["error"])
    except (ValueError, SyntaxError, TypeError, KeyError):
        error = None
    return int(match.group(1)), error


def _timeout_message(server: str, timeout_s: float) -> str:
    return f"Prometheus at {server} did not answer within {timeout_s:g}s"


def describe_failure(exc: BaseException, server: str, timeout_s: float) -> str:
    """A short reason for a failed query; never the response headers, never credentials."""
    # With retries off, urllib3 reports a read timeout as exhausted retries: requests raises ConnectionError.
    if isinstance(exc, requests.Timeout) or (isinstance(exc, requests.ConnectionError) and "timed out" in str(exc)):
        return _timeout_message(server, timeout_s)
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach Prometheus at {server} ({_connection_cause(exc)})"
    if isinstance(exc, PrometheusApiClientException):
        status, error = _api_error(exc)
        if status in (401, 403):
            return f"Prometheus at {server} refused the credentials (HTTP {status})"
        if status in (400, 422) and error:
            return f"Prometheus rejected the query: {error[:200]}"
        return f"Prometheus at {server} answered HTTP {status}" + (f": {error[:200]}" if error else "")
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return f"Prometheus at {server} answered with something that is not its API's JSON"
    return f"query to Prometheus at {server} failed ({type(exc).__name__})"


def _env_secret(variable: str, field: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise PrometheusConfigError(f"metrics.prometheus.{field}: environment variable {variable} is not set")
    return value


@dataclass(frozen=True, repr=False)
class _Credentials:
    """A bearer token or a basic-auth pair (or neither); repr=False keeps them out of any printout."""

    bearer_token: str | None = None
    basic: tuple[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for secret in (self.bearer_token, *(self.basic or ())) if secret)


def _resolve_credentials(spec: PrometheusSpec, url_auth: tuple[str, str] | None) -> _Credentials:
    """What the plan asks for: a token (env or file), else basic auth from env, else the URL's user:password."""
    if spec.token_env:
        return _Credentials(bearer_token=_env_secret(spec.token_env, "token_env"))
    if spec.token_file:
        try:
            return _Credentials(bearer_token=Path(spec.token_file).read_text().strip())
        except OSError as exc:
            raise PrometheusConfigError(f"metrics.prometheus.token_file: cannot read {spec.token_file} ({exc.strerror})") from None
    if spec.username_env or spec.password_env:
        username = _env_secret(spec.username_env, "username_env") if spec.username_env else ""
        password = _env_secret(spec.password_env, "password_env") if spec.password_env else ""
        return _Credentials(basic=(username, password))
    return _Credentials(basic=url_auth)


def _same_span(canary: Interval | None, stable: Interval | None) -> tuple[TrackCounts | None, TrackCounts | None]:
    """Both tracks' counts when both cover the same span (read now and at the same read before), else neither:
    the judge weighs one track's errors against the other's over the same requests' time."""
    if canary is None or stable is None or canary.start != stable.start:
        return None, None
    return canary.counts, stable.counts


def _underived(metrics: Sequence[str], values: Mapping[str, float | None], counts: TrackCounts, track: str) -> list[tuple[str, str, str]]:
    """Why a derived metric has no value over a window whose counts are known."""
    reasons = []
    for metric in metrics:
        if values.get(metric) is not None:
            continue
        if metric.startswith("latency_") and not counts.latency_buckets:
            reasons.append((metric, track, "no latency histogram: counts.latency_buckets found no series"))
        else:
            reasons.append((metric, track, "no requests in the window"))
    return reasons


class PrometheusSource:
    """A MetricSource on a Prometheus server: built-in queries for the usual series, the plan's on top.

    `clock_to_wall` maps the rollout clock t to wall time (epoch seconds, advancing at real speed)
    for history(); without it there is no history. `scrape_interval_s` sizes the rate windows;
    when None it is read from the server's configuration (global scrape_interval) on first use.
    `counts` are the plan's count queries (metrics.counts). `wall_clock` is the instant each sample is
    evaluated at (now; tests and backtests replay past instants). `selectors` gives a track PromQL label
    matchers of its own in place of {matchers} (app, track and the plan's labels): a past release another
    tool ran with other labels. `clients` gives a track what answers its sample's instant queries in place
    of the server (PrometheusConnect's custom_query): a backtest's prefetched history. Credentials never
    appear in errors or in the repr.
    """

    def __init__(
        self,
        app: str,
        spec: PrometheusSpec,
        queries: dict[str, str],
        url_override: str | None = None,
        clock_to_wall: Callable[[float], float] | None = None,
        *,
        counts: CountQueries | None = None,
        scrape_interval_s: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        selectors: Mapping[str, Selector] | None = None,
        clients: Mapping[str, QueryClient] | None = None,
    ) -> None:
        url, url_auth = split_credentials((url_override or spec.url).rstrip("/"))
        credentials = _resolve_credentials(spec, url_auth)
        self._app = app
        self._url = url
        self._labels = dict(spec.labels)
        self._plan_queries = dict(queries)
        self._queries = {**BUILTIN_QUERIES, **queries}
        given_counts = counts.given() if counts else {}
        self._count_queries = {**BUILTIN_COUNT_QUERIES, **given_counts}
        # The rate() charts read the built-in series: of other counters they would chart something else.
        self._charted = set(queries) | (set() if given_counts else set(DERIVED_METRICS))
        self._tallies = {track: CounterTally() for track in TRACKS}
        self._wall_clock = wall_clock
        self.clock_to_wall = clock_to_wall
        self._timeout_s = spec.timeout
        self._scrape_interval_s = scrape_interval_s
        self._secrets = credentials.secrets
        self._session = requests.Session()
        # No retries inside a sample: the next sample is the retry, and a sample must not outlast its timeout.
        retry = Retry(total=0, raise_on_status=False)
        self._client = PrometheusConnect(
            url=url,
            headers=credentials.headers,
            auth=credentials.basic,
            retry=retry,
            session=self._session,
            timeout=spec.timeout,
        )
        # A connection per parallel query, so none is opened and thrown away on every sample.
        self._session.mount(url, HTTPAdapter(max_retries=retry, pool_maxsize=_MAX_PARALLEL_QUERIES))
        self._executor = ThreadPoolExecutor(_MAX_PARALLEL_QUERIES, thread_name_prefix="prometheus-query")
        self._selectors = dict(selectors or {})
        self._expanded: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = {}
        """_expand's answers: every sample expands the same few templates for the same tracks and window."""
        self._clients: dict[str, QueryClient] = {track: self._client for track in TRACKS} | dict(clients or {})
        # Answers from memory are read in the loop: handing each to a thread would cost more than it does.
        self._in_memory = all(getattr(client, "in_memory", False) for client in self._clients.values())
        self._instant_keys: dict[str, Callable[[str, dict[str, Any]], Hashable | None]] = {
            track: client.instant_key for track, client in self._clients.items() if callable(getattr(client, "instant_key", None))
        }
        """Each RecordedClient's instant_key, by track."""
        self._recorded_reads: dict[Hashable, CounterRead] = {}
        """Counter reads of recorded answers, by the answer's key, its labels and kind: the newest few. In an A/A
        backtest the canary reads, one interval late, the stable's series, so each of its reads is the stable's last."""

    @property
    def server(self) -> PrometheusConnect:
        """The server's client, with the plan's credentials: what a backtest's history is fetched with."""
        return self._client

    def __repr__(self) -> str:
        return f"PrometheusSource(app={self._app!r}, url={self._url!r})"

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        """Every metric on both tracks, the canary's request count and both tracks' counts; None and a reason
        where data is missing."""
        scrape_interval_s = await self._scrape_interval()
        evaluated_at = self._wall_clock()
        rate_window_s = rate_window(window_s, scrape_interval_s)
        window = promql_duration(rate_window_s)
        stale_after_s = STALE_AFTER_SCRAPES * scrape_interval_s
        derived = [metric for metric in metrics if metric in DERIVED_METRICS and metric not in self._plan_queries]
        queried = [metric for metric in metrics if metric not in derived]
        pairs = [(metric, track) for metric in queried for track in TRACKS]
        if REQUESTS_METRIC in self._plan_queries:
            pairs.append((REQUESTS_METRIC, "canary"))
        wanted = dict.fromkeys(pairs)
        unqueryable = list(dict.fromkeys(metric for metric, _ in wanted if metric not in self._queries))
        calls: dict[Any, Callable[[], Reading | CounterRead]] = {
            (metric, track): partial(self._query_instant, track, *self._expand(self._queries[metric], track, window), evaluated_at, stale_after_s)
            for metric, track in wanted
            if metric in self._queries
        }
        read_times = {track: self._read_times(track, evaluated_at, window_s, rate_window_s) for track in TRACKS}
        for track, times in read_times.items():
            for kind, template in self._count_queries.items():
                query, labels = self._expand(template, track, window)
                for at in times:
                    calls[(kind, track, at)] = partial(self._query_counters, track, query, labels, at, stale_after_s, kind)
        timed_out = Reading(None, _timeout_message(self._url, self._timeout_s))
        readings = {key: call() for key, call in calls.items()} if self._in_memory else await self._run_in_threads(calls, timed_out)

        problems: list[tuple[str, str, str]] = []
        intervals: dict[str, Interval | None] = {}
        window_values: dict[str, dict[str, float | None]] = {}
        window_requests: dict[str, float | None] = {}
        for track in TRACKS:
            intervals[track], read_now, count_problems = self._tally(track, read_times[track], readings)
            problems += count_problems
            counted = self._tallies[track].window(evaluated_at, rate_window_s, window_s) if read_now else None
            window_values[track] = track_values(*counted) if counted else {}
            window_requests[track] = counted[0].requests if counted else None
            if counted:
                problems += _underived(derived, window_values[track], counted[0], track)
            elif read_now:
                problems += [(metric, track, "no counts yet (the counters' first read)") for metric in derived]

        def value(metric: str, track: str) -> float | None:
            if metric in derived:
                return window_values[track].get(metric)
            reading = readings.get((metric, track))
            return reading.value if isinstance(reading, Reading) else None

        for metric, track in wanted:
            reading = readings.get((metric, track))
            if reading is not None and reading.problem:
                problems.append((metric, track, reading.problem))
        # The counters' reads of past instants (a first sample's) are not this sample's queries: their failures are not said.
        queries_now = len(calls) - sum(len(times) - 1 for times in read_times.values()) * len(self._count_queries)
        errors = summarize_problems(problems, queries_now) + tuple(
            f"{metric}: no query (no standard Prometheus series); add metrics.queries.{metric} to the plan" for metric in unqueryable
        )
        canary_counts, stable_counts = _same_span(intervals["canary"], intervals["stable"])
        return Sample(
            values={metric: TrackValues(value(metric, "canary"), value(metric, "stable")) for metric in metrics},
            canary_requests=value(REQUESTS_METRIC, "canary") if REQUESTS_METRIC in self._plan_queries else window_requests["canary"],
            errors=errors,
            canary_counts=canary_counts,
            stable_counts=stable_counts,
        )

    def counter_states(self) -> dict[str, TallyState]:
        """Each track's counters as the samples so far left them: what the next sample's counts start from."""
        return {track: tally.state() for track, tally in self._tallies.items()}

    def restore_counters(self, states: Mapping[str, TallyState]) -> None:
        """Go on from `states` (counter_states of a source that read the same history), as if this source had read it."""
        for track, state in states.items():
            self._tallies[track].restore(state)

    def _read_times(self, track: str, now: float, window_s: float, rate_window_s: float) -> list[float]:
        """When to read a track's counters: now, and on its first read also a sample and a rate window before,
        so that the first sample has counts of its span and values over a whole window."""
        if self._tallies[track].read_at is not None:
            return [now]
        return sorted({now - rate_window_s, now - window_s, now})

    def _tally(self, track: str, times: list[float], readings: dict[Any, Any]) -> tuple[Interval | None, bool, list[tuple[str, str, str]]]:
        """The track's counters read at each time, added to its tally in order: this sample's interval (None on its
        first read or a failed one), whether the counters were read now, and why not (the read now's problems)."""
        interval, now = None, times[-1]
        for at in times:
            reads = {kind: readings[(kind, track, at)] for kind in self._count_queries}
            failed = {kind: read.problem for kind, read in reads.items() if not isinstance(read, CounterRead) or read.series is None}
            if failed:
                if at == now:
                    return None, False, [(f"counts.{kind}", track, problem or "no answer") for kind, problem in failed.items()]
                continue
            snapshot: Snapshot = {kind: read.series for kind, read in reads.items()}
            interval = self._tallies[track].add(at, snapshot)
        return interval, True, []

    def _query_counters(self, track: str, query: str, labels: dict[str, str], evaluated_at: float, stale_after_s: float, kind: str) -> CounterRead:
        params = {"time": f"{evaluated_at:.3f}", "timeout": promql_duration(self._timeout_s)}
        client, keyed = self._clients[track], self._instant_keys.get(track)
        try:
            instant_key = keyed(query, params) if keyed is not None else None
            if instant_key is not None:
                memo_key = (instant_key, tuple(labels.items()), kind)
                if (read := self._recorded_reads.get(memo_key)) is not None:
                    return read
            read = read_counter_result(client.custom_query(query, params=params), evaluated_at, stale_after_s, labels, kind)
        except Exception as exc:  # the boundary: any failure, a malformed answer too, becomes a reason
            return CounterRead(None, self._describe(exc))
        if instant_key is not None:
            if len(self._recorded_reads) >= _RECORDED_READS_KEPT:
                del self._recorded_reads[next(iter(self._recorded_reads))]
            self._recorded_reads[memo_key] = read
        return read

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        """Range queries for both tracks between two rollout times; empty without a clock mapping or on failure."""
        template = self._queries.get(metric)
        if template is None or metric not in self._charted or self.clock_to_wall is None or end_t < start_t or step_s <= 0:
            return []
        start_wall, end_wall = self.clock_to_wall(start_t), self.clock_to_wall(end_t)
        step_s = max(step_s, (end_wall - start_wall) / MAX_POINTS_PER_SERIES)
        window = promql_duration(rate_window(step_s, await self._scrape_interval()))
        calls = {track: partial(self._query_range, *self._expand(template, track, window), start_wall, end_wall, step_s) for track in TRACKS}
        series = await self._run_in_threads(calls, {})
        timestamps = sorted(set(series["canary"]) | set(series["stable"]))
        return [
            HistoryPoint(
                t=start_t + (timestamp - start_wall),
                canary=series["canary"].get(timestamp),
                stable=series["stable"].get(timestamp),
            )
            for timestamp in timestamps
        ]

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _expand(self, template: str, track: str, window: str) -> tuple[str, dict[str, str]]:
        """The query for one track, and the labels its answer must not contradict (read, never changed)."""
        key = (template, track, window)
        expanded = self._expanded.get(key)
        if expanded is None:
            expanded = self._expanded[key] = self._expand_anew(template, track, window)
        return expanded

    def _expand_anew(self, template: str, track: str, window: str) -> tuple[str, dict[str, str]]:
        selector = self._selectors.get(track)
        if selector is not None:
            query = expand_query(template, app=self._app, track=track, window=window, matchers=selector.matchers)
            return query, dict(selector.equal)
        matchers = label_matchers(self._app, track, self._labels)
        query = expand_query(template, app=self._app, track=track, window=window, matchers=matchers)
        return query, query_labels(self._app, track, self._labels)

    async def sample_queries(self, metrics: Sequence[str], window_s: float) -> dict[str, list[str]]:
        """Per track, every instant query a sample of `metrics` over `window_s` makes (the counters and the
        plan's queries), as sent: what a backtest fetches ahead as range queries."""
        window = promql_duration(rate_window(window_s, await self._scrape_interval()))
        templates = [*self._count_queries.values()]
        templates += [
            self._queries[metric] for metric in metrics if metric in self._queries and (metric not in DERIVED_METRICS or metric in self._plan_queries)
        ]
        if REQUESTS_METRIC in self._plan_queries:
            templates.append(self._queries[REQUESTS_METRIC])
        return {track: list(dict.fromkeys(self._expand(template, track, window)[0] for template in templates)) for track in TRACKS}

    async def rate_window_s(self, window_s: float) -> float:
        """Seconds a sample over `window_s` rates over (a first sample also reads the counters that far back)."""
        return rate_window(window_s, await self.scrape_interval())

    async def scrape_interval(self) -> float:
        """The scrape interval the rate windows are sized by: given, or the server's (the default while it will not say)."""
        return await self._scrape_interval()

    async def _run_in_threads(self, calls: dict[Any, Callable[[], T]], on_timeout: T) -> dict[Any, T]:
        """Every call in the pool at once; calls still running after the timeout count as `on_timeout`."""
        if not calls:
            return {}
        loop = asyncio.get_running_loop()
        futures = {key: loop.run_in_executor(self._executor, call) for key, call in calls.items()}
        _, pending = await asyncio.wait(futures.values(), timeout=self._timeout_s + _DEADLINE_GRACE_S)
        for future in pending:
            future.cancel()
        return {key: on_timeout if future in pending else future.result() for key, future in futures.items()}

    def _query_instant(self, track: str, query: str, labels: dict[str, str], evaluated_at: float, stale_after_s: float) -> Reading:
        params = {"time": f"{evaluated_at:.3f}", "timeout": promql_duration(self._timeout_s)}
        try:
            answer = self._clients[track].custom_query(query, params=params)
            return read_instant_result(answer, evaluated_at, stale_after_s, labels)
        except Exception as exc:  # the boundary: any failure, a malformed answer too, becomes a reason
            return Reading(None, self._describe(exc))

    def _query_range(self, query: str, labels: dict[str, str], start_wall: float, end_wall: float, step_s: float) -> dict[float, float | None]:
        # The client rounds both ends to whole seconds: round inwards so no point falls outside the span asked for.
        try:
            result = self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(math.ceil(start_wall), UTC),
                end_time=datetime.fromtimestamp(math.floor(end_wall), UTC),
                step=f"{step_s:g}",
            )
            return read_range_result(result, labels)
        except Exception:  # history only feeds charts: a failure shows as a gap
            return {}

    def _describe(self, exc: BaseException) -> str:
        return redact(describe_failure(exc, self._url, self._timeout_s), self._secrets)

    async def _scrape_interval(self) -> float:
        if self._scrape_interval_s is None:
            loop = asyncio.get_running_loop()
            discovered = await loop.run_in_executor(self._executor, self._read_scrape_interval)
            if discovered is None:
                return FALLBACK_SCRAPE_INTERVAL_S
            self._scrape_interval_s = discovered
        return self._scrape_interval_s

    def _read_scrape_interval(self) -> float | None:
        """The server's global scrape_interval, or None when it will not say (down, or not Prometheus itself)."""
        try:
            response = self._session.get(
                f"{self._url}/api/v1/status/config",
                headers=self._client.headers,
                auth=self._client.auth,
                timeout=self._timeout_s,
            )
            response.raise_for_status()
            config = yaml.safe_load(response.json()["data"]["yaml"])
            return parse_duration(config["global"]["scrape_interval"])
        except Exception:  # any failure falls back to the default interval and is retried next sample
            return None
