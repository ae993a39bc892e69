"""PrometheusSource without a Prometheus: parsing raw API answers, query templates, failures, secrets.

The last tests talk to small stand-ins on loopback (a canned HTTP API, a socket that never
answers) to check what reaches Sample.errors and that the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_api_client import PrometheusApiClientException

from console.metric_catalogue import REQUEST_METRICS
from console.metrics.prometheus import (
    PrometheusConfigError,
    PrometheusSource,
    Reading,
    describe_failure,
    expand_query,
    label_matchers,
    promql_duration,
    rate_window,
    read_instant_result,
    read_range_result,
    summarize_problems,
)
from console.plan.model import PrometheusSpec
from console.redact import redact, split_credentials
from testbed.json_http import json_server

NOW = 1_700_000_000.0
STALE_AFTER_S = 3.0


def vector(*values: str, at: float = NOW) -> list[dict]:
    return [{"metric": {"code": str(index)}, "value": [at, value]} for index, value in enumerate(values)]


def read(result: object) -> Reading:
    return read_instant_result(result, NOW, STALE_AFTER_S)


# Instant results, as Prometheus sends them.


def test_a_value_arrives_as_a_string() -> None:
    assert read(vector("0.01")) == Reading(0.01)


def test_a_scalar_is_a_bare_pair() -> None:
    assert read([NOW, "1"]) == Reading(1.0)


@pytest.mark.parametrize("text", ["NaN", "+Inf", "-Inf", "not-a-number"])
def test_values_that_are_not_numbers_are_missing_data(text: str) -> None:
    reading = read(vector(text))
    assert reading.value is None
    assert reading.problem


def test_nan_says_why() -> None:
    assert "NaN" in read(vector("NaN")).problem


def test_an_empty_vector_is_no_data() -> None:
    assert read([]) == Reading(None, "no data")


def test_several_series_name_the_count_and_the_fix() -> None:
    reading = read(vector("0.01", "0.02", "0.03"))
    assert reading.value is None
    assert "returns 3 series where one was expected" in reading.problem
    assert "sum()" in reading.problem


def test_a_sample_older_than_a_few_scrapes_is_stale() -> None:
    reading = read(vector("0.01", at=NOW - 42))
    assert reading.value is None
    assert "stale" in reading.problem and "42s" in reading.problem


def test_a_sample_within_the_staleness_limit_counts() -> None:
    assert read(vector("0.01", at=NOW - STALE_AFTER_S + 0.5)) == Reading(0.01)


def test_a_range_vector_is_refused() -> None:
    reading = read([{"metric": {}, "values": [[NOW, "1"]]}])
    assert reading.value is None
    assert "range vector" in reading.problem


def test_an_answer_that_is_not_a_list_is_refused() -> None:
    assert read({"unexpected": True}).value is None


CANARY_OF_CHECKOUT = {"app": "checkout", "track": "canary", "namespace": "shop"}


def labelled(**labels: str) -> list[dict]:
    return [{"metric": {"__name__": "http_requests_total", "code": "200", **labels}, "value": [NOW, "0.01"]}]


@pytest.mark.parametrize(
    "labels, named",
    [
        ({"app": "payments", "track": "canary"}, 'labelled app="payments", not app="checkout"'),
        ({"app": "checkout", "track": "stable"}, 'labelled track="stable", not track="canary"'),
        ({"app": "payments", "track": "stable", "namespace": "shop"}, 'labelled app="payments", track="stable", not app="checkout", track="canary"'),
        ({"namespace": "billing"}, 'labelled namespace="billing", not namespace="shop"'),
        ({"app": "pay\x1b[2Jments"}, 'labelled app="payments", not app="checkout"'),  # no terminal control from the server
    ],
)
def test_a_series_labelled_for_another_app_or_track_is_refused_naming_the_labels(labels, named) -> None:
    reading = read_instant_result(labelled(**labels), NOW, STALE_AFTER_S, CANARY_OF_CHECKOUT)
    assert reading.value is None
    assert reading.problem == f"the series is {named}: select the plan's series with {{matchers}} (or {{app}} and {{track}})"


@pytest.mark.parametrize(
    "result",
    [
        labelled(app="checkout", track="canary", namespace="shop", instance="10.0.0.7:8080"),
        labelled(track="canary"),  # summed by track: the app label is gone, nothing contradicts
        [{"metric": {}, "value": [NOW, "0.01"]}],  # sum(): no labels at all
        [NOW, "0.01"],  # a scalar
    ],
)
def test_a_series_that_carries_only_the_labels_asked_for_or_none_is_accepted(result) -> None:
    assert read_instant_result(result, NOW, STALE_AFTER_S, CANARY_OF_CHECKOUT) == Reading(0.01)


# Range results (history).


def test_range_values_are_read_and_nan_becomes_a_gap() -> None:
    result = [{"metric": {}, "values": [[NOW, "1.5"], [NOW + 1, "NaN"], [NOW + 2, "+Inf"]]}]
    assert read_range_result(result) == {NOW: 1.5, NOW + 1: None, NOW + 2: None}


@pytest.mark.parametrize("result", [[], [{"metric": {}, "values": []}] * 2, {"oops": 1}])
def test_a_range_without_exactly_one_series_is_empty(result: object) -> None:
    assert read_range_result(result) == {}


def test_a_range_labelled_for_another_track_is_empty() -> None:
    result = [{"metric": {"app": "checkout", "track": "stable"}, "values": [[NOW, "1.5"]]}]
    assert read_range_result(result, CANARY_OF_CHECKOUT) == {}
    assert read_range_result(result, {**CANARY_OF_CHECKOUT, "track": "stable"}) == {NOW: 1.5}


# Templates and windows.


def test_placeholders_are_filled_and_promql_braces_kept() -> None:
    matchers = label_matchers("checkout", "canary", {"namespace": "prod"})
    query = expand_query(
        'sum(rate(x{{matchers},code=~"5.."}[{window}])) / sum(y{app="{app}",track="{track}"})',
        app="checkout",
        track="canary",
        window="4s",
        matchers=matchers,
    )
    assert query == ('sum(rate(x{app="checkout",track="canary",namespace="prod",code=~"5.."}[4s])) / sum(y{app="checkout",track="canary"})')


def test_label_values_are_escaped_for_promql() -> None:
    assert label_matchers('we"ird\\app', "stable", {}) == 'app="we\\"ird\\\\app",track="stable"'


@pytest.mark.parametrize(
    ("sample_window_s", "scrape_interval_s", "expected"),
    [(1, 1, "4s"), (10, 1, "10s"), (1, 0.5, "2s"), (10, 15, "60s"), (0.625, 0.25, "1s")],
)
def test_the_rate_window_spans_at_least_four_scrapes(sample_window_s, scrape_interval_s, expected) -> None:
    assert promql_duration(rate_window(sample_window_s, scrape_interval_s)) == expected


def test_durations_use_whole_units() -> None:
    assert promql_duration(2.5) == "2500ms"


# Errors as the operator reads them.


def test_a_problem_every_query_shares_is_said_once() -> None:
    problems = [(metric, track, "cannot reach Prometheus") for metric in ("a", "b") for track in ("canary", "stable")]
    assert summarize_problems(problems, queries=4) == ("all queries: cannot reach Prometheus",)


def test_other_problems_are_grouped_per_metric() -> None:
    problems = [("p99", "canary", "no data"), ("p99", "stable", "no data"), ("rate", "canary", "stale")]
    assert summarize_problems(problems, queries=6) == ("p99 (canary, stable): no data", "rate (canary): stale")


SERVER = "http://prom:9090"


def api_error(status: int, body: dict | bytes) -> PrometheusApiClientException:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PrometheusApiClientException(f"HTTP Status Code {status} ({content!r})")


def test_a_rejected_query_quotes_prometheus() -> None:
    error = {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": parse error'}
    assert describe_failure(api_error(400, error), SERVER, 5) == ('Prometheus rejected the query: invalid parameter "query": parse error')


def test_refused_credentials_do_not_echo_the_body() -> None:
    message = describe_failure(api_error(401, b"<html>token s3cret is invalid</html>"), SERVER, 5)
    assert message == "Prometheus at http://prom:9090 refused the credentials (HTTP 401)"


def test_a_server_error_names_the_status() -> None:
    assert describe_failure(api_error(503, b"busy"), SERVER, 5) == "Prometheus at http://prom:9090 answered HTTP 503"


def test_a_timeout_names_the_limit() -> None:
    assert describe_failure(requests.ReadTimeout("read timed out"), SERVER, 2.5) == ("Prometheus at http://prom:9090 did not answer within 2.5s")


def test_a_refused_connection_says_so() -> None:
    exc = requests.ConnectionError("Failed to establish a new connection: [Errno 111] Connection refused")
    assert describe_failure(exc, SERVER, 5) == "cannot reach Prometheus at http://prom:9090 (connection refused)"


def test_an_answer_that_is_not_json_is_named() -> None:
    assert "not its API's JSON" in describe_failure(ValueError("Expecting value"), SERVER, 5)


# Secrets.


def test_redaction_strips_url_credentials_and_masks_secrets() -> None:
    text = "GET https://alice:pa%40ss@prom.example/api failed with token abc123"
    assert redact(text, ["abc123"]) == "GET https://prom.example/api failed with token ***"


def test_url_credentials_become_basic_auth() -> None:
    assert split_credentials("https://alice:pa%40ss@prom.example:9443/prom") == (
        "https://prom.example:9443/prom",
        ("alice", "pa@ss"),
    )
    assert split_credentials("http://prom:9090") == ("http://prom:9090", None)


def test_the_repr_shows_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "tok-s3cret")
    source = PrometheusSource("checkout", PrometheusSpec(url="https://bob:pw-s3cret@prom:9090", token_env="PROM_TOKEN"), {})
    assert repr(source) == "PrometheusSource(app='checkout', url='https://prom:9090')"
    asyncio.run(source.close())


def test_an_unset_credential_variable_is_named_without_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROM_PASSWORD", raising=False)
    monkeypatch.setenv("PROM_USER", "alice")
    spec = PrometheusSpec(username_env="PROM_USER", password_env="PROM_PASSWORD")
    with pytest.raises(PrometheusConfigError, match="PROM_PASSWORD is not set") as raised:
        PrometheusSource("checkout", spec, {})
    assert "alice" not in str(raised.value)


def test_an_unreadable_token_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(PrometheusConfigError, match="token_file"):
        PrometheusSource("checkout", PrometheusSpec(token_file=str(tmp_path / "missing")), {})


# The source against stand-ins on loopback.


class CannedPrometheus:
    """Answers every /api/v1/query with one canned status and body, or the count queries (of the built-in
    http_request series) with `counters` when given; it keeps the headers seen."""

    def __init__(self, status: int, body: dict, counters: list | None = None) -> None:
        self.status, self.body, self.counters, self.url = status, body, counters, ""
        self.authorizations: list[str | None] = []

    def respond(self, path: str, headers: Message) -> tuple[int, dict]:
        self.authorizations.append(headers.get("Authorization"))
        query = parse_qs(urlsplit(path).query).get("query", [""])[0]
        if self.counters is not None and query.startswith("http_request"):
            return 200, ok(self.counters)
        return (self.status if path.startswith("/api/v1/query") else 404), self.body

    @contextmanager
    def running(self) -> Iterator[CannedPrometheus]:
        with json_server(self.respond) as url:
            self.url = url
            yield self


def ok(result: object) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def source_at(url: str, queries: dict[str, str] | None = None, **spec: object) -> PrometheusSource:
    return PrometheusSource("checkout", PrometheusSpec(url=url, **spec), queries or {}, scrape_interval_s=1)


def idle_counters() -> list[dict]:
    """Counters that stand still: every count query reads, none has news."""
    return [{"metric": {"code": "200", "le": "+Inf"}, "value": [time.time(), "10"]}]


PLAN_ERROR_RATE = {"error_rate": "errors{{matchers}}"}
"""error_rate by the plan's query: run as a query, not derived from the counts."""


async def sample(source: PrometheusSource, metrics=REQUEST_METRICS):
    try:
        return await source.sample(metrics, t=0.0, window_s=1.0)
    finally:
        await source.close()


async def test_the_bearer_token_is_sent_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "tok-s3cret")
    with CannedPrometheus(401, {"status": "error", "error": "bad token tok-s3cret"}).running() as canned:
        source = source_at(canned.url, token_env="PROM_TOKEN")
        result = await sample(source)
    assert set(canned.authorizations) == {"Bearer tok-s3cret"}
    assert result.errors == (f"all queries: Prometheus at {canned.url} refused the credentials (HTTP 401)",)
    assert "tok-s3cret" not in repr(result)


async def test_basic_auth_comes_from_the_plans_variables_or_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_USER", "alice")
    monkeypatch.setenv("PROM_PASSWORD", "pw-s3cret")
    with CannedPrometheus(200, ok([])).running() as canned:
        await sample(source_at(canned.url, username_env="PROM_USER", password_env="PROM_PASSWORD"), [])
        await sample(source_at(canned.url.replace("http://", "http://alice:pw-s3cret@")), [])
    expected = "Basic " + base64.b64encode(b"alice:pw-s3cret").decode()
    assert len(canned.authorizations) > 2 and set(canned.authorizations) == {expected}


async def test_a_malformed_answer_is_an_error_not_an_exception() -> None:
    with CannedPrometheus(200, ok([{"metric": {}, "value": ["only-one-field"]}])).running() as canned:
        result = await sample(source_at(canned.url), [])
    assert result.canary_requests is None
    not_json = f"Prometheus at {canned.url} answered with something that is not its API's JSON"
    assert result.errors == (f"all queries: {not_json}",)


async def test_every_metric_reads_its_value_and_unknown_ones_say_how_to_get_them() -> None:
    with CannedPrometheus(200, ok(vector("0.25", at=time.time())), idle_counters()).running() as canned:
        source = source_at(canned.url, {**PLAN_ERROR_RATE, "requests": "requests{{matchers}}"})
        result = await sample(source, ["error_rate", "cpu"])
    assert result.values["error_rate"].canary == result.values["error_rate"].stable == 0.25
    assert result.canary_requests == 0.25
    assert result.values["cpu"].canary is None
    assert result.errors == ("cpu: no query (no standard Prometheus series); add metrics.queries.cpu to the plan",)


async def test_a_plan_query_that_returns_several_series_is_missing_data_with_a_plain_error() -> None:
    with CannedPrometheus(200, ok(vector("1", "2", at=time.time())), idle_counters()).running() as canned:
        source = source_at(canned.url, PLAN_ERROR_RATE)
        result = await sample(source, ["error_rate"])
    assert result.values["error_rate"].canary is None
    assert result.errors == ("error_rate (canary, stable): the query returns 2 series where one was expected: fix the plan's query, e.g. wrap it in sum()",)


async def test_a_server_answering_for_another_app_gives_no_values_and_names_its_labels() -> None:
    answer = [{"metric": {"app": "payments"}, "value": [time.time(), "0.001"]}]
    with CannedPrometheus(200, ok(answer)).running() as canned:
        result = await sample(source_at(canned.url), ["error_rate", "latency_p99"])
    assert result.values["error_rate"].canary is None and result.values["latency_p99"].stable is None
    assert result.canary_requests is None, "too little traffic is not judged on another app's requests either"
    assert result.errors == (
        'all queries: the series is labelled app="payments", not app="checkout": select the plan\'s series with {matchers} (or {app} and {track})',
    )


async def test_the_stable_series_in_the_canarys_answer_is_refused_for_the_canary_only() -> None:
    answer = [{"metric": {"app": "checkout", "track": "stable"}, "value": [time.time(), "0.001"]}]
    with CannedPrometheus(200, ok(answer), idle_counters()).running() as canned:
        result = await sample(source_at(canned.url, PLAN_ERROR_RATE), ["error_rate"])
    assert result.values["error_rate"].canary is None
    assert result.values["error_rate"].stable == 0.001
    assert result.errors[0] == (
        'error_rate (canary): the series is labelled track="stable", not track="canary": select the plan\'s series with {matchers} (or {app} and {track})'
    )


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_a_server_that_never_answers_times_out_in_parallel_without_blocking_the_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    with silent_server() as url:
        source = source_at(url, timeout=0.3)
        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        result = await sample(source)
        elapsed = time.monotonic() - started
        ticking.cancel()
    # 18 queries of 0.3 s each (a first sample reads both tracks' three counters at three instants): serially 5 s.
    assert elapsed < 1.5
    assert ticks > 10
    assert all(values.canary is None and values.stable is None for values in result.values.values())
    assert result.errors == (f"all queries: Prometheus at {url} did not answer within 0.3s",)


async def test_a_server_that_is_gone_is_an_error_not_an_exception() -> None:
    with silent_server() as url:
        pass  # the port is closed again: connections are refused
    source = source_at(url)
    result = await sample(source)
    assert result.canary_requests is None
    assert result.errors == (f"all queries: cannot reach Prometheus at {url} (connection refused)",)
