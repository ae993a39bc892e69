"""The prometheus check against a real Prometheus scraping the demo service (app "checkout")."""

from __future__ import annotations

from console.plan.model import PreflightSpec
from console.preflight import CheckResult, Gate, PreflightContext
from testbed.prometheus_server import DemoStack, free_port
from tests.conftest import plan_from

ERROR_RATIO = '(sum(rate(http_requests_total{{matchers},code=~"5.."}[{window}])) or vector(0)) / sum(rate(http_requests_total{{matchers}}[{window}]))'


async def check(url: str, query: str, condition: str, plan_extra: str = "", **context) -> CheckResult:
    plan = plan_from(f"app: checkout\nimage: r/checkout:2\nmetrics: {{prometheus: {{url: '{url}', timeout: 3s{plan_extra}}}}}\n")
    spec = PreflightSpec(name="prometheus", kind="prometheus", query=query, condition=condition, timeout=5)
    [result] = await Gate((spec,), PreflightContext(plan, **context)).run_checks(lambda result: None)
    return result


async def test_the_error_rate_now_is_under_the_limit(demo_stack: DemoStack):
    result = await check(demo_stack.prometheus.url, ERROR_RATIO, "< 0.001")
    assert result.status == "pass", result.output
    query, verdict = result.output.splitlines()
    assert 'http_requests_total{app="checkout",track="stable",code=~"5.."}[5m]' in query
    assert verdict == "{} = 0: holds < 0.001"


async def test_a_condition_that_does_not_hold_fails(demo_stack: DemoStack):
    result = await check(demo_stack.prometheus.url, 'count(up{job="brahma-test"})', "== 2")
    assert result.status == "fail"
    assert result.output.splitlines()[-1] == "{} = 1: FAILS == 2"


async def test_every_series_is_judged(demo_stack: DemoStack):
    result = await check(demo_stack.prometheus.url, 'sum by (track) (rate(http_requests_total{app="{app}"}[1m]))', "> 0")
    assert result.status == "pass", result.output
    lines = sorted(result.output.splitlines()[1:])
    assert [line.split(" = ")[0] for line in lines] == ['{track="canary"}', '{track="stable"}']


async def test_rules_that_are_not_loaded_give_no_data_and_fail_clearly(demo_stack: DemoStack):
    result = await check(demo_stack.prometheus.url, 'count(prometheus_rule_group_rules{rule_group=~".*checkout.*"})', "> 0")
    assert result.status == "fail"
    assert "the query returned no data: nothing to compare with '> 0'" in result.output


async def test_a_query_prometheus_rejects_says_why(demo_stack: DemoStack):
    result = await check(demo_stack.prometheus.url, "sum(rate(http_requests_total[5m]", "> 0")
    assert result.status == "fail"
    assert "Prometheus rejected the query: " in result.output


async def test_basic_auth_from_the_url_is_used_and_never_shown(demo_stack: DemoStack):
    url = demo_stack.prometheus.url.replace("http://", "http://release:hunter2@")
    result = await check(url, 'count(up{job="brahma-test"})', "== 1")
    assert result.status == "pass", result.output
    refused = await check(f"http://release:hunter2@127.0.0.1:{free_port()}", "up", "> 0")
    assert refused.status == "fail"
    assert "cannot reach Prometheus at http://127.0.0.1:" in refused.output
    assert "hunter2" not in result.output + refused.output


async def test_a_missing_token_variable_fails_before_any_query(demo_stack: DemoStack, monkeypatch):
    monkeypatch.delenv("BRAHMA_TEST_PROMETHEUS_TOKEN", raising=False)
    result = await check(demo_stack.prometheus.url, "up", "> 0", ", token_env: BRAHMA_TEST_PROMETHEUS_TOKEN")
    assert result.output == "metrics.prometheus.token_env: environment variable BRAHMA_TEST_PROMETHEUS_TOKEN is not set"


async def test_the_command_line_server_overrides_the_plan(demo_stack: DemoStack):
    result = await check(f"http://127.0.0.1:{free_port()}", 'count(up{job="brahma-test"})', "== 1", prometheus_url=demo_stack.prometheus.url)
    assert result.status == "pass", result.output
