"""The `prometheus` check: an instant query whose every series must satisfy a condition.

"Alert rules for this app are loaded" is `count(prometheus_rule_group_rules{rule_group=~".*checkout.*"})`
with "> 0"; "nothing is firing" is `count(ALERTS{app="{app}",alertstate="firing"}) or vector(0)` with
"== 0"; "the error rate now" is a ratio with "< 0.001". The server and its credentials are the
plan's (metrics.prometheus), handled exactly as the metric source handles them.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from typing import Any

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from console.metrics.prometheus import (
    PrometheusConfigError,
    _resolve_credentials,
    describe_failure,
    expand_query,
    label_matchers,
    read_instant_result,
)
from console.plan.model import COMPARISON, PreflightSpec
from console.preflight.context import PreflightContext
from console.preflight.process import tail
from console.redact import redact, split_credentials

OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
PREFLIGHT_WINDOW = "5m"
"""What {window} stands for in a pre-flight query: recent enough to be "now", long enough for rate()."""
SHOWN_SERIES = 20
NO_DATA_HINT = "count() and sum() return nothing rather than 0 when no series match: append `or vector(0)` if no series means zero"


def parse_condition(text: str) -> tuple[str, float]:
    """("<", 0.001) from "< 0.001"; the plan model has already checked the form."""
    match = COMPARISON.match(text)
    if match is None:
        raise ValueError(f"not a comparison: {text!r}")
    return match.group(1), float(match.group(2))


def series_name(metric: dict[str, str]) -> str:
    """`ALERTS{alertname="HighErrors"}` or `{}` for an aggregate without labels."""
    labels = ",".join(f'{key}="{value}"' for key, value in metric.items() if key != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def judge_result(result: Any, condition: str) -> tuple[bool, list[str]]:
    """(every series satisfies the condition and there is at least one, a line per series)."""
    op, limit = parse_condition(condition)
    if isinstance(result, list) and result and isinstance(result[0], dict):
        series = [(series_name(entry.get("metric", {})), [entry]) for entry in result]
    else:
        series = [("scalar", result)] if result else []
    if not series:
        return False, [f"the query returned no data: nothing to compare with {condition!r}", NO_DATA_HINT]
    passed, lines = True, []
    for name, answer in series:
        reading = read_instant_result(answer, time.time(), math.inf)
        holds = reading.value is not None and OPERATORS[op](reading.value, limit)
        passed = passed and holds
        shown = f"{reading.value:g}" if reading.value is not None else f"no value ({reading.problem})"
        lines.append(f"{name} = {shown}: {'holds' if holds else 'FAILS'} {condition}")
    if len(lines) > SHOWN_SERIES:
        lines = lines[:SHOWN_SERIES] + [f"… and {len(lines) - SHOWN_SERIES} more series"]
    return passed, lines


async def check_query(item: PreflightSpec, context: PreflightContext) -> tuple[bool, str]:
    plan = context.plan
    spec = plan.metrics.prometheus
    url, url_auth = split_credentials((context.prometheus_url or spec.url).rstrip("/"))
    try:
        credentials = _resolve_credentials(spec, url_auth)
    except PrometheusConfigError as error:
        return False, str(error)
    query = expand_query(
        item.query or "",
        app=plan.app,
        track="stable",
        window=PREFLIGHT_WINDOW,
        matchers=label_matchers(plan.app, "stable", spec.labels),
    )
    client = PrometheusConnect(url=url, headers=credentials.headers, auth=credentials.basic, retry=Retry(total=0, raise_on_status=False), timeout=item.timeout)
    try:
        result = await asyncio.to_thread(client.custom_query, query)
    except Exception as error:  # the boundary: any failure becomes the check's output
        return False, redact(f"{query}\n{describe_failure(error, url, item.timeout)}", credentials.secrets)
    finally:
        client.close()
    passed, lines = judge_result(result, item.condition or "")
    return passed, tail("\n".join([query, *lines]))
