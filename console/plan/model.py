"""The rollout plan: its structure as written and its compiled form (the controller's).

Plain dataclasses, so that what only reads a plan (the console, which is handed the controller's as JSON)
never imports pydantic: the loader checks a document against them (plan/loader.py), pydantic models built
from these fields, their `Bounds` and their `Parsed` forms.

No `from __future__ import annotations` here: the field types are evaluated once, at import, not from their
strings by every get_type_hints (the console rebuilds the plan its controller serves through them)."""

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from console.plan.checks import Check
from console.plan.problems import Problem
from console.units import parse_duration, parse_percentage


@dataclass(frozen=True)
class Parsed:
    """A field written in a form of its own ("10m", "20%"): `parse` turns it into the value, or raises ValueError.

    Pydantic's hook for annotations, so that the loader's models parse it (pydantic is imported only there)."""

    parse: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.parse, handler(source))


@dataclass(frozen=True)
class Bounds:
    """Where a number must lie, checked by the loader's models as pydantic's own constraints are."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        number = schema["schema"] if schema["type"] == "function-before" else schema  # a form of its own is bounded once parsed
        number.update({name: limit for name, limit in vars(self).items() if limit is not None})
        return schema


Duration = Annotated[float, Parsed(parse_duration)]
"""Seconds, written "10m", "1h30m", "500ms" or as a number of seconds."""

COMPARISON = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
"""A comparison with a plain number: "< 0.001", "> 0", "== 1"."""
KUBERNETES_OBJECT = re.compile(r"^(deployment|service)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
"""An object a kubernetes check looks at, written as kubectl does: "deployment/checkout"."""


def _matching(pattern: re.Pattern[str], example: str):
    def validate(value: object) -> object:
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f"expected something like {example}, got {value!r}")
        return value.strip()

    return Parsed(validate)


Percentage = Annotated[float, Parsed(parse_percentage)]
"""A fraction, written with its %: "20%"."""
Comparison = Annotated[str, _matching(COMPARISON, '"< 0.001", "> 0" or "== 1"')]
KubernetesObject = Annotated[str, _matching(KUBERNETES_OBJECT, '"deployment/checkout" or "service/checkout"')]


as_written = dataclass(kw_only=True)
"""A part of the plan as written: its fields by name, every one checked by the loader (strictly: a number is a
number, `weight: true` is not 1 and `"5"` is not 5; a switch is true or false; no field it does not know)."""


@as_written
class StageSpec:
    """One step of traffic to the new version and how long it must hold."""

    name: str | None = None
    """Shown in the console and the report; "stage N" when left out."""
    weight: int
    """Percent of traffic the new version serves during this stage (0-100)."""
    observe: Duration = 600.0
    """The observation window: the stage passes only when the whole window held its criteria."""
    criteria: dict[str, list[str]] | None = None
    """Success conditions over the window, metric → "< 1%" or "<= 1.2x stable" (or a list)."""
    manual: bool = False
    """After this stage's window held, wait for an operator's promote (on the last stage: before completing)."""


@as_written
class TriggerSpec:
    """A trigger written in full: the breach condition and how many breaches in a row act."""

    when: str
    """The breach condition, "> 1%"."""
    consecutive: Annotated[int, Bounds(ge=1)] | None = None
    """Breaches in a row before the trigger acts; critical defaults to 1, warning to 2."""


@as_written
class TriggersSpec:
    """Checked on every sample while any stage runs; a metric set to null switches a default off."""

    critical: dict[str, TriggerSpec | None] = field(default_factory=dict)
    """Immediate automatic rollback."""
    warning: dict[str, TriggerSpec | None] = field(default_factory=dict)
    """Pause the rollout and call for a human."""


@as_written
class AnalysisSpec:
    """How samples are judged."""

    min_requests: Annotated[int, Bounds(ge=0)] = 50
    """Canary requests a sample needs for its rates and latencies to count; fewer is inconclusive."""
    inconclusive_limit: Annotated[int, Bounds(ge=1)] = 3
    """Inconclusive samples in a row that pause the rollout."""
    min_coverage: Annotated[float, Bounds(gt=0, le=1)] = 0.8
    """Share of a window's samples that must have had data for the window to count."""
    judge: Literal["sequential", "threshold"] = "sequential"
    """sequential: besides the limits, every sample tests the canary's errors, and its requests slower than a
    bound for each latency quantile judged, against stable's on the counts both served, and a canary worse
    beyond the tolerance is rolled back; threshold: the limits alone."""
    alpha: Annotated[float, Bounds(gt=0, lt=0.5)] = 0.01
    """The chance, per rollout, that the sequential judge rolls back a canary no worse than the tolerance:
    shared among the metrics it tests (alpha / their number each)."""
    tolerance: Annotated[Percentage, Bounds(gt=0, le=10)] = 0.2
    """How much worse than stable the canary may be before the judge calls it a regression (relative)."""
    floor: Annotated[Percentage, Bounds(ge=0, lt=1)] = 0.0001
    """An error rate too small to matter: a canary beyond doubt under it is no regression, whatever the ratio."""


@as_written
class TargetSpec:
    """Where the release runs and traffic is split."""

    kind: Literal["sim", "kubernetes"] = "sim"
    namespace: str = "default"
    context: str | None = None
    """kubeconfig context; the current one when left out."""
    deployment: str | None = None
    """The stable Deployment; the app name when left out."""
    service: str | None = None
    """The Service that selects the active version (blue-green); the app name when left out."""
    preview_service: str | None = None
    """The Service in front of the new version before the switch (blue-green)."""
    httproute: str | None = None
    """A Gateway API HTTPRoute whose backendRefs carry exact canary weights."""
    replicas: Annotated[int, Bounds(ge=1)] | None = None
    """Replicas of the stable version (sim); read from the cluster otherwise."""


@as_written
class PrometheusSpec:
    """The Prometheus server the metrics come from, and how to reach it."""

    url: str = "http://127.0.0.1:9090"
    token_env: str | None = None
    """Name of the environment variable holding a bearer token (the token is never written anywhere)."""
    token_file: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    timeout: Duration = 5.0
    labels: dict[str, str] = field(default_factory=dict)
    """Extra label matchers for the built-in queries."""


@as_written
class CountQueries:
    """PromQL selecting the counters a track's counts are the increase of (Prometheus): each one's
    series as exported, cumulative, never rate() or increase() of them, nor summed (a sum hides a
    counter's reset). Placeholders {app}, {track} and {matchers} as in metrics.queries. One left out
    keeps the built-in query for the usual series."""

    requests: str | None = None
    """Every request the track served, e.g. `http_requests_total{{matchers}}`."""
    errors: str | None = None
    """The failed ones among them, e.g. `http_requests_total{{matchers},code=~"5.."}`; no series is no error."""
    latency_buckets: str | None = None
    """The latency histogram's bucket series (labelled le, in seconds), e.g. `http_request_duration_seconds_bucket{{matchers}}`."""

    def given(self) -> dict[str, str]:
        """The queries the plan gives, by kind."""
        return {part.name: getattr(self, part.name) for part in fields(self) if getattr(self, part.name) is not None}


@as_written
class MetricsSpec:
    """Where samples come from."""

    provider: Literal["sim", "prometheus"] | None = None
    """Default: sim with the sim target, prometheus otherwise."""
    scenario: str = "healthy"
    """Simulator behaviour: a built-in name or a scenario file."""
    prometheus: PrometheusSpec = field(default_factory=PrometheusSpec)
    queries: dict[str, str] = field(default_factory=dict)
    """PromQL per metric, with {app} and {track} placeholders; names a business metric or overrides a built-in one."""
    counts: CountQueries = field(default_factory=CountQueries)
    """Prometheus: the counters the judge's counts and the derived rates and quantiles come from."""
    units: dict[str, Literal["percent", "fraction"]] = field(default_factory=dict)
    """How a metric's limits are written: `percent` ("> 98%", a business metric whose values are fractions
    shown as percentages) or `fraction` ("< 0.05", 0 to 1). Built-in percentages (error_rate, success_rate,
    cpu, memory) are `percent` unless declared `fraction`; a business metric left out is a plain number."""


@as_written
class FlagStepSpec:
    """A step of a flag's schedule with a window of its own: `{step: 25, observe: 2d}`."""

    step: Literal["internal"] | int
    """internal (the internal users) or the percentage of everyone."""
    observe: Duration | None = None
    """How long this step must hold; the flag's step_observe when left out."""


@as_written
class FlagSpec:
    """A feature flag of the release."""

    name: str
    new: bool = True
    """Created with this release: kept disabled before deploy and switched off by the kill switch."""
    disable_on_rollback: bool = True
    """Switched off as part of every rollback."""
    schedule: list[Literal["internal"] | int | FlagStepSpec] | None = None
    """Enablement after promotion, each step held and judged like a stage: e.g. [internal, 5, 25, 50, 100];
    a step with a window of its own is written {step: 25, observe: 2d}."""
    internal_users: list[str] = field(default_factory=list)
    """Who "internal" switches the flag on for (targeting keys)."""
    step_observe: Duration = 600.0
    """How long each enablement step must hold, but those written with an observe of their own."""


@as_written
class PreflightSpec:
    """One item of the pre-flight gate."""

    name: str
    kind: Literal["command", "http", "file", "manual", "prometheus", "kubernetes", "terraform", "flags", "calibrate"]
    required: bool | None = None
    """Required items must pass for the gate to pass; advisory ones are shown and recorded. Default: required,
    but a calibrate item is advisory (a measurement of the plan, not of the release)."""
    timeout: Duration = 60.0
    argv: list[str] | None = None
    """command: the program and its arguments, run without a shell; exit 0 passes."""
    url: str | None = None
    """http: the address to fetch."""
    status: int = 200
    body_contains: str | None = None
    path: str | None = None
    """file: a document that must exist and not be empty (the rollback plan, say)."""
    query: str | None = None
    """prometheus: an instant query; {app}, {matchers} and {window} as in metrics.queries (track stable)."""
    condition: Comparison | None = None
    """prometheus: what every series the query returns must satisfy, "< 0.001"; no series at all fails."""
    dir: str | None = None
    """terraform: the Terraform/OpenTofu directory that declares the app's objects."""
    objects: list[KubernetesObject] | None = None
    """kubernetes: "deployment/NAME" and "service/NAME" that must exist and be ready; default: the plan's."""
    flags: list[str] | None = None
    """flags: the flags that must exist and be disabled; default: the plan's flags marked new."""
    lookback: Duration | None = None
    """calibrate: the history the A/A replays run over, up to now (default 7d)."""
    every: Duration | None = None
    """calibrate: time between the replays' starts (default: the plan's planned duration, so they do not overlap)."""
    max_false_rollbacks: Percentage | None = None
    """calibrate: the estimated false-rollback rate over which the item fails (default 1%)."""

    def __post_init__(self) -> None:
        if self.kind == "prometheus" and self.condition is None:
            raise ValueError('a prometheus check needs a condition, like "< 0.001" or "> 0"')
        if self.kind == "calibrate" and self.max_false_rollbacks is not None and not 0 < self.max_false_rollbacks < 1:
            raise ValueError("max_false_rollbacks is a share of the replays between 0% and 100%, like 1%")
        if self.kind == "calibrate" and any(span is not None and span <= 0 for span in (self.lookback, self.every)):
            raise ValueError("a calibrate item's lookback and every are durations longer than nothing, like 7d and 2h")
        if self.required is None:
            self.required = self.kind != "calibrate"


CALIBRATE_LOOKBACK_S = 7 * 86400.0
"""A calibrate item's default lookback: a week holds every day of the week once."""
CALIBRATE_MAX_FALSE_ROLLBACKS = 0.01
"""A calibrate item's default max_false_rollbacks: the same as `brahma calibrate --target-false-rollbacks`."""


NotifyEvent = Literal["preflight_failed", "paused", "rollback_started", "rollback_failed", "rolled_back", "completed"]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)


@as_written
class WebhookSpec:
    """A webhook told of the rollout's turning points: Slack's incoming webhooks, or any JSON endpoint."""

    kind: Literal["slack", "json"] = "json"
    """slack: {"text", "blocks"} as Slack's incoming webhooks take; json: the event and the release."""
    url: str | None = None
    """The address. A secret one (Slack's carry their key in the path) belongs in url_env instead."""
    url_env: str | None = None
    """Name of the environment variable holding the address; it is never written anywhere."""
    events: list[NotifyEvent] = field(default_factory=lambda: list(NOTIFY_EVENTS))
    """Which events are sent: the gate failed, a pause, a rollback started, not verified for a minute, and done, the release completed."""
    timeout: Duration = 5.0
    """For one delivery attempt."""
    attempts: Annotated[int, Bounds(ge=1, le=10)] = 3
    """Deliveries tried before the notification is recorded as failed."""
    backoff: Duration = 1.0
    """Wait before the second attempt, doubled before each further one."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook needs either url or url_env (not both)")


@as_written
class PlanSpec:
    """A rollout plan as written; every field but app and image has a default."""

    app: str
    """The application: names its objects and labels its metrics."""
    image: str
    """The new version's image."""
    name: str | None = None
    """The release; names the journal. Default: app-tag."""
    strategy: Literal["canary", "blue-green", "rolling"] = "canary"
    target: TargetSpec = field(default_factory=TargetSpec)
    """Where it runs: `sim`, `kubernetes`, or a mapping with kind and the cluster's names."""
    interval: Duration = 10.0
    """Time between samples (1s to 10m)."""
    pause_timeout: Duration = 900.0
    """How long a headless run waits for a human after a pause before it rolls back."""
    manual: bool = False
    """Every stage waits for the captain's promote after its window held."""
    stages: list[StageSpec] | None = None
    triggers: TriggersSpec = field(default_factory=TriggersSpec)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    flags: list[FlagSpec] = field(default_factory=list)
    flags_file: str | None = None
    preflight: list[PreflightSpec] = field(default_factory=list)
    rollback_window: Duration = 86400.0
    """Blue-green: how long the old colour is kept for a rollback."""
    rollback_plan: str | None = None
    """What the runbook says to do when rolling back by hand."""
    notify: list[WebhookSpec] = field(default_factory=list)
    """Webhooks told when the gate fails, the rollout pauses, rolls back or completes."""


@dataclass(frozen=True)
class FlagStep:
    """One step of a flag's enablement: on for these users and this share of everyone else."""

    flag: str
    percentage: int
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of the compiled plan: its traffic weight, its window and its criteria."""

    index: int
    name: str
    weight: int
    observe: float
    criteria: tuple[Check, ...]
    flag_step: FlagStep | None = None
    """Set for the enablement steps that follow promotion (the weight stays 100)."""
    manual: bool = False
    """Waits for an operator's promote after its window held (the plan's `stages[i].manual`)."""


@dataclass(frozen=True)
class Trigger:
    """A trigger of the compiled plan: critical rolls back, warning pauses."""

    severity: Literal["critical", "warning"]
    check: Check
    """The breach condition: the trigger fires when it holds `consecutive` samples in a row."""


@dataclass(frozen=True)
class RolloutPlan:
    """A validated plan with every default applied; what the controller runs."""

    name: str
    app: str
    image: str
    strategy: str
    stages: tuple[Stage, ...]
    triggers: tuple[Trigger, ...]
    interval: float
    pause_timeout: float
    manual: bool
    min_requests: int
    inconclusive_limit: int
    min_coverage: float
    target: TargetSpec
    metrics: MetricsSpec
    flags: tuple[FlagSpec, ...] = ()
    flags_file: str | None = None
    preflight: tuple[PreflightSpec, ...] = ()
    rollback_window: float = 86400.0
    rollback_plan: str | None = None
    notify: tuple[WebhookSpec, ...] = ()
    source: str = ""
    """The file the plan was read from."""
    metric_names: tuple[str, ...] = field(default=())
    """Every metric a stage or trigger judges, in display order."""
    warnings: tuple[Problem, ...] = ()
    """What runs as written but is likely a mistake; `validate` and `run` print them."""
    judge: str = "sequential"
    alpha: float = 0.01
    tolerance: float = 0.2
    floor: float = 0.0001
    """analysis.judge, alpha, tolerance and floor (AnalysisSpec says what each means)."""

    @property
    def planned_duration(self) -> float:
        return sum(stage.observe for stage in self.stages)

    def waits_for_promote(self, index: int, manual: bool = False) -> bool:
        """Stage `index` waits for a promote after its window held: it says so, or the plan (or the run,
        `manual`) is manual, which holds every stage but the last."""
        return self.stages[index].manual or ((manual or self.manual) and index < len(self.stages) - 1)


def plan_from_plain(data: dict[str, Any]) -> RolloutPlan:
    """A compiled plan from its plain form (`dataclasses.asdict`'s, as the controller serves it in JSON), as it was:
    checked when it was compiled, it is not checked again (and no loader, no pydantic is imported for it)."""
    return _rebuilt(RolloutPlan, data)


def _rebuilt(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if is_dataclass(kind):
        hints = _field_types(kind)
        return kind(**{part.name: _rebuilt(hints[part.name], value[part.name]) for part in fields(kind) if part.name in value})
    origin, arguments = get_origin(kind), get_args(kind)
    if origin is tuple:
        return tuple(_rebuilt(arguments[0], item) for item in value)
    if origin is list:
        return [_rebuilt(arguments[0], item) for item in value]
    if origin is dict:
        return {key: _rebuilt(arguments[1], item) for key, item in value.items()}
    if arguments and origin is not Literal:  # X | None, or a flag's schedule step: a number or word, or a mapping
        members = [argument for argument in arguments if argument is not type(None)]
        written_in_full = next((member for member in members if is_dataclass(member)), None) if isinstance(value, dict) else None
        return _rebuilt(written_in_full or members[0], value)
    return value


@functools.cache
def _field_types(kind: type) -> dict[str, Any]:
    """A dataclass's field types, looked up once per kind: a plan has many stages, checks and specs of one kind."""
    return get_type_hints(kind)
