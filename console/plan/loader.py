"""Reading plans from YAML or HCL, with every problem reported as PATH:LINE: field: message."""

from __future__ import annotations

import difflib
import functools
import operator
import os
import re
import types
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from console.metric_catalogue import BUILTIN_METRICS, CATALOGUE, FRACTION_METRICS, POD_HEALTH_METRICS, REQUEST_METRICS, UNIT_WORDS
from console.plan import defaults
from console.plan.checks import Check, parse_check
from console.plan.document import Document, collector_paused, parse_document, read_document
from console.plan.model import (
    FlagStep,
    FlagStepSpec,
    PlanSpec,
    RolloutPlan,
    Stage,
    StageSpec,
    Trigger,
    TriggerSpec,
)
from console.plan.names import RELEASE_NAME_MAX, release_name_problem
from console.plan.plain_reading import Unsure, read_plainly
from console.plan.problems import Path_, PlanError, Problem
from console.units import UnitError, limit_unit, parse_duration

if TYPE_CHECKING:  # pydantic is imported only for a plan the plain reading cannot vouch for (plain_reading.py)
    from pydantic import BaseModel, ValidationError

Written = TypeVar("Written")
STRICT = {"extra": "forbid", "strict": True}
"""A number is a number (`weight: true` is not 1, `"5"` is not 5), a switch is true or false, and no field is unknown."""


def checked(written: type[Written], data: Any) -> Written:
    """`data` as a part of the plan as written (model.py's dataclass `written`), or ValidationError."""
    try:
        return read_plainly(written, data)
    except Unsure:
        return _as_written(_model(written).model_validate(data))


@functools.cache
def _model(written: type) -> type[BaseModel]:
    """The pydantic model that checks a part of the plan as written: its fields, defaults, constraints and
    `__post_init__` check, strictly; named as it is (pydantic's errors name a union's member by it)."""
    from pydantic import Field, create_model, model_validator

    hints = get_type_hints(written, include_extras=True)
    declared: dict[str, Any] = {}
    for part in fields(written):
        default = part.default if part.default is not MISSING else Field(default_factory=part.default_factory) if part.default_factory is not MISSING else ...
        declared[part.name] = (_modelled(hints[part.name]), default)
    validators = {}
    if hasattr(written, "__post_init__"):

        def whole(model: BaseModel) -> BaseModel:
            written.__post_init__(model)  # reads only fields, which the model has by the same names
            return model

        validators["whole"] = model_validator(mode="after")(whole)
    model = create_model(written.__name__, __config__=STRICT, __validators__=validators, **declared)
    _WRITTEN[model] = written
    return model


_WRITTEN: dict[type[BaseModel], type] = {}
"""Each model's dataclass."""


def _modelled(annotation: Any) -> Any:
    """`annotation` with every dataclass of the plan in it replaced by its model."""
    if isinstance(annotation, type) and is_dataclass(annotation):
        return _model(annotation)
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return Annotated[(_modelled(arguments[0]), *annotation.__metadata__)]
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, (_modelled(argument) for argument in arguments))
    if origin in (list, dict):
        return origin[tuple(_modelled(argument) for argument in arguments)]
    return annotation


def _as_written(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return _WRITTEN[type(value)](**{name: _as_written(getattr(value, name)) for name in type(value).model_fields})
    if isinstance(value, list):
        return [_as_written(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_written(item) for key, item in value.items()}
    return value


COUNT_PLACEHOLDERS = frozenset({"app", "track", "matchers"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_RATE_FUNCTION = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\s*\(")
_AGGREGATION = re.compile(r"\b(sum|avg|min|max|count)\b\s*(\(|by\b|without\b)")


def _model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The model whose fields are allowed at a path of the document, for "did you mean"."""
    model: Any = root
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _nested_model(info.annotation)
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _data_path(data: Any, loc: tuple[str | int, ...]) -> Path_:
    """The part of pydantic's location that names places in the data (union member tags left out)."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index < len(loc) - 1 or not isinstance(current, dict):
            continue  # a union member's tag, like "str" or "TargetSpec"
        path.append(part)
    return tuple(path)


def structure_problems(document: Document, error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Pydantic's errors as problems at their lines, unknown fields with a "did you mean"."""
    problems = []
    errors = error.errors()
    for item in errors:
        if _judged_by_the_mapping_form(item, errors):
            continue
        path = _data_path(document.data, item["loc"])
        if item["type"] == "extra_forbidden":
            model = _model_at(root, path[:-1])
            choices = list(model.model_fields) if model else []
            message = f"unknown field{_suggest(str(path[-1]), choices)}"
        elif item["type"] == "missing":
            message = "is required"
        else:
            message = re.sub(r" or instance of \w+$", "", item["msg"].removeprefix("Value error, "))
        problems.append(document.problem(path, message))
    return problems


def _judged_by_the_mapping_form(item: Any, errors: list[Any]) -> bool:
    """A mapping refused by a union's plain members too ("Input should be a valid integer" of `{step: 25,
    obsrve: 2d}`), where the member written as a mapping says what is wrong with it: only that is said."""
    if not isinstance(item["input"], dict) or not isinstance(item["loc"][-1], str):
        return False
    union = item["loc"][:-1]
    return any(len(other["loc"]) > len(union) + 1 and other["loc"][: len(union)] == union and _is_model_member(other["loc"][len(union)]) for other in errors)


def _is_model_member(tag: Any) -> bool:
    """Pydantic names a union's model member by its class (FlagStepSpec); the plan's own fields are lower case."""
    return isinstance(tag, str) and tag[:1].isupper()


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Short forms people write, turned into the long form the model checks."""
    data = dict(data)
    if isinstance(data.get("target"), str):
        data["target"] = {"kind": data["target"]}
    stages = data.get("stages")
    if isinstance(stages, list):
        data["stages"] = [_normalise_stage(stage) for stage in stages]
    triggers = data.get("triggers")
    if isinstance(triggers, dict):
        data["triggers"] = {
            severity: {m: ({"when": t} if isinstance(t, str) else t) for m, t in entries.items()} if isinstance(entries, dict) else entries
            for severity, entries in triggers.items()
        }
    return data


def _normalise_stage(stage: Any) -> Any:
    """A criterion written as one check is a list of one."""
    if not isinstance(stage, dict) or not isinstance(stage.get("criteria"), dict):
        return stage
    criteria = {metric: checks if isinstance(checks, list) else [checks] for metric, checks in stage["criteria"].items()}
    return {**stage, "criteria": criteria}


class _Compiler:
    """The semantic checks the structure cannot express, then the plan with defaults applied."""

    def __init__(self, document: Document, spec: PlanSpec, pods: bool = True):
        self.document, self.spec = document, spec
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.units = spec.metrics.units
        business = set(spec.metrics.queries) | set(self.units)
        self.known_metrics = sorted(BUILTIN_METRICS | business)
        self.provider = spec.metrics.provider or ("sim" if spec.target.kind == "sim" else "prometheus")
        builtin = BUILTIN_METRICS if self.provider == "sim" else frozenset(REQUEST_METRICS)
        if spec.target.kind == "kubernetes" and pods:
            builtin = builtin | POD_HEALTH_METRICS  # read from the pods by the target
        # The simulator gives a business metric the values its scenario names (none: inconclusive).
        self.provided = builtin | set(spec.metrics.queries) | (business if self.provider == "sim" else set())

    def fail(self, path: Path_, message: str) -> None:
        self.problems.append(self.document.problem(path, message))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(self.document.problem(path, message))

    def release_name(self) -> str:
        """The written name, or app-tag; either must be fit to name the rollout's files."""
        spec = self.spec
        if spec.name is not None:
            if problem := release_name_problem(spec.name):
                self.fail(("name",), problem)
            return spec.name
        tag = spec.image.rsplit(":", 1)[1] if ":" in spec.image.rsplit("/", 1)[-1] else "latest"
        name = f"{spec.app}-{tag}"
        if problem := release_name_problem(name):
            fitted = re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:RELEASE_NAME_MAX].strip(".-_")
            example = fitted if fitted and release_name_problem(fitted) is None else "checkout-2.4.1"
            self.fail(
                ("image",),
                f"app and the image's tag make the release name {name!r}, which cannot name the rollout's files: "
                f"{problem}; give the plan a name, e.g. `name: {example}`",
            )
        return name

    def image(self) -> bool:
        """Whether the plan names an image; one whose tag moves (none, or :latest) is a warning."""
        image = self.spec.image
        if not image.strip():
            self.fail(("image",), "the new version's image is required, e.g. registry.example.com/checkout:2.4.1")
            return False
        if image != image.strip():
            self.fail(("image",), f"an image has no spaces around it: {image!r}")
            return False
        last = image.rsplit("/", 1)[-1]
        if "@" in last:
            return True  # a digest names one image for good
        tag = last.rsplit(":", 1)[1] if ":" in last else None
        if tag in (None, "latest"):
            written = f"{image!r} has no tag, so it is :latest" if tag is None else f"{image!r} is :latest"
            self.warn(
                ("image",),
                f"{written}, which names whatever was pushed last: each pod that starts (the canary's, "
                "one rescheduled, the rollout's at 100%) may pull another build, and the runbook cannot say "
                "which ran; name a version (:2.4.1) or a digest (@sha256:...)",
            )
        return True

    def queries(self) -> None:
        for metric, query in self.spec.metrics.queries.items():
            if "{track}" not in query and "{matchers}" not in query:
                self.warn(
                    ("metrics", "queries", metric),
                    "the query has no {track} (nor {matchers}): canary and stable read the same series, so the canary is never told apart from stable",
                )

    def count_queries(self) -> None:
        """The plan's count queries must select counters of one track: the judge weighs their increase."""
        for kind, query in self.spec.metrics.counts.given().items():
            path: Path_ = ("metrics", "counts", kind)
            unknown = sorted({name for name in _PLACEHOLDER.findall(query) if name not in COUNT_PLACEHOLDERS})
            if not query.strip():
                self.fail(path, "a count query selects the counters, e.g. http_requests_total{{matchers}}")
            elif unknown:
                self.fail(path, f"unknown placeholder {{{unknown[0]}}}: a count query may use {{app}}, {{track}} and {{matchers}}")
            elif "{track}" not in query and "{matchers}" not in query:
                self.fail(
                    path,
                    "the query has no {track} (nor {matchers}): canary and stable would be counted on the same series, and the judge could never tell them apart",
                )
            elif match := _RATE_FUNCTION.search(query):
                self.fail(
                    path,
                    f"{match.group(1)}() gives no counter: select the counters themselves (cumulative, as exported); Brahma takes their increase between samples",
                )
            elif _AGGREGATION.search(query):
                self.warn(
                    path, "summed counters hide a reset of one of them (a pod that restarts counts its whole history again): select the series as exported"
                )
        if self.spec.metrics.counts.given() and self.provider != "prometheus":
            self.warn(("metrics", "counts"), f"count queries are Prometheus': the {self.provider} provider does not read them")

    def flags_file(self) -> None:
        if self.spec.flags_file is not None and (problem := flags_file_problem(self.spec.flags_file)):
            self.fail(("flags_file",), problem)

    def metric_units(self, judged: set[str]) -> None:
        for metric in self.units:
            path: Path_ = ("metrics", "units", metric)
            if metric in BUILTIN_METRICS and metric not in FRACTION_METRICS:
                self.fail(path, f"{metric} is {UNIT_WORDS[CATALOGUE[metric].unit]}, not a percentage: only percentages take a unit")
            elif metric not in judged:
                self.warn(path, f"no stage or trigger judges {metric}: is its name the one the limits use?")

    def check(self, metric: str, text: object, consecutive: int = 1) -> Check:
        """One limit on `metric`, read in the unit its limits are written in; UnitError when it cannot be."""
        try:
            return parse_check(metric, text, consecutive, limit_unit(metric, self.units))
        except UnitError as error:
            if metric not in BUILTIN_METRICS and isinstance(text, str) and "%" in text:
                raise UnitError(
                    f"{error}: a percentage on {metric} needs its unit declared (metrics.units.{metric}: percent, its values fractions from 0 to 1)"
                ) from None
            raise

    def metric_known(self, path: Path_, metric: str, written: bool) -> bool:
        """Whether the provider gives this metric; a default on a metric it lacks is left out quietly."""
        if metric in self.provided:
            return True
        if not written:
            return False
        if metric in self.known_metrics:
            self.fail(path, f"metric {metric!r} has no built-in {self.provider} query: add metrics.queries.{metric}")
            return False
        hint = _suggest(metric, self.known_metrics) or " (define it under metrics.queries)"
        self.fail(path, f"metric {metric!r} is not defined by any provider{hint}")
        return False

    def checks(self, path: Path_, criteria: dict[str, Any], written: bool = True) -> tuple[Check, ...]:
        compiled = []
        for metric, texts in criteria.items():
            if not self.metric_known((*path, metric), metric, written):
                continue
            for text in texts if isinstance(texts, list) else [texts]:
                try:
                    compiled.append(self.check(metric, text))
                except UnitError as error:
                    self.fail((*path, metric), str(error))
        return tuple(compiled)

    def stages(self) -> tuple[Stage, ...]:
        written = self.spec.stages is not None
        specs = self.spec.stages if written else [checked(StageSpec, _normalise_stage(stage)) for stage in defaults.STAGES_BY_STRATEGY[self.spec.strategy]]
        if written and not specs:
            self.fail(("stages",), "a plan needs at least one stage (leave stages out for the defaults)")
        previous = -1
        stages = []
        for index, spec in enumerate(specs):
            path: Path_ = ("stages", index)
            if not 0 <= spec.weight <= 100:
                self.fail((*path, "weight"), f"a weight is a percentage from 0 to 100, got {spec.weight}")
            elif spec.weight <= previous:
                self.fail((*path, "weight"), f"weights must increase from stage to stage: {spec.weight} follows {previous}")
            elif previous == 100:
                self.fail((*path, "weight"), "no stage can follow the 100% stage")
            elif self.spec.target.kind == "kubernetes" and (problem := defaults.kubernetes_weight_problem(self.spec.strategy, spec.weight)):
                self.fail((*path, "weight"), problem)
            previous = max(previous, spec.weight)
            written_criteria = written and spec.criteria is not None
            criteria = spec.criteria if spec.criteria is not None else defaults.criteria_for_weight(spec.weight)
            checks = self.checks((*path, "criteria"), criteria, written_criteria)
            stages.append(Stage(index, spec.name or f"stage {index + 1}", spec.weight, spec.observe, checks, manual=spec.manual))
        if stages and stages[-1].weight < 100:
            observe = parse_duration(defaults.MONITORING_OBSERVE)
            stages.append(Stage(len(stages), "monitoring", 100, observe, self.checks((), defaults.POST_DEPLOY, written=False)))
        return tuple(stages)

    def flag_steps(self, first_index: int) -> tuple[Stage, ...]:
        """Each flag's enablement schedule as stages after promotion, judged by the post-deploy targets."""
        steps: list[Stage] = []
        for flag_index, flag in enumerate(self.spec.flags):
            users: tuple[str, ...] = ()
            previous = 0
            for step_index, written in enumerate(flag.schedule or ()):
                path: Path_ = ("flags", flag_index, "schedule", step_index)
                if isinstance(written, FlagStepSpec):
                    step, observe, path = written.step, written.observe, (*path, "step")
                else:
                    step, observe = written, None
                if step == "internal":
                    if not flag.internal_users:
                        self.fail(path, "an internal step needs internal_users")
                    users, label, percentage = tuple(flag.internal_users), "internal users", previous
                elif not previous < step <= 100:
                    self.fail(path, f"enablement steps must rise to at most 100%: {step} follows {previous}")
                    continue
                else:
                    percentage, label = step, f"{step}%"
                previous = percentage
                checks = self.checks((), defaults.POST_DEPLOY, written=False)
                step_spec = FlagStep(flag.name, percentage, users)
                stage = Stage(first_index + len(steps), f"{flag.name}: {label}", 100, flag.step_observe if observe is None else observe, checks, step_spec)
                steps.append(stage)
        return tuple(steps)

    def triggers(self) -> tuple[Trigger, ...]:
        triggers = []
        for severity, base in (("critical", defaults.CRITICAL), ("warning", defaults.WARNING)):
            merged: dict[str, TriggerSpec | None] = {m: TriggerSpec(when=t, consecutive=defaults.CONSECUTIVE[severity]) for m, t in base.items()}
            written = getattr(self.spec.triggers, severity)
            merged.update(written)
            for metric, trigger in merged.items():
                path: Path_ = ("triggers", severity, metric)
                if trigger is None or not self.metric_known(path, metric, metric in written):
                    continue
                try:
                    consecutive = trigger.consecutive or defaults.CONSECUTIVE[severity]
                    triggers.append(Trigger(severity, self.check(metric, trigger.when, consecutive)))
                except UnitError as error:
                    self.fail((*path, "when") if path in self.document.lines else path, str(error))
        return tuple(triggers)

    def preflight(self) -> None:
        needs = {"command": "argv", "http": "url", "file": "path", "prometheus": "query", "terraform": "dir"}
        seen: set[str] = set()
        for index, item in enumerate(self.spec.preflight):
            required_field = needs.get(item.kind)
            if required_field and not getattr(item, required_field):
                self.fail(("preflight", index, required_field), f"a {item.kind} check needs {required_field}")
            if item.name in seen:
                self.fail(("preflight", index, "name"), f"another pre-flight item is already named {item.name!r}")
            seen.add(item.name)

    def compile(self) -> RolloutPlan:
        spec = self.spec
        if not 1 <= spec.interval <= 600:
            self.fail(("interval",), "the sample interval must be between 1s and 10m")
        stages, triggers = self.stages(), self.triggers()
        stages += self.flag_steps(len(stages))
        self.preflight()
        self.metric_units({check.metric for stage in stages for check in stage.criteria} | {t.check.metric for t in triggers})
        self.queries()
        self.count_queries()
        self.flags_file()
        release = self.release_name() if self.image() else ""
        flag_names = [flag.name for flag in spec.flags]
        for index, name in enumerate(flag_names):
            if flag_names.index(name) != index:
                self.fail(("flags", index, "name"), f"flag {name!r} is listed twice")
        if self.problems:
            raise PlanError(sorted(self.problems, key=lambda p: p.line))
        judged = [check.metric for stage in stages for check in stage.criteria] + [t.check.metric for t in triggers]
        return RolloutPlan(
            name=release,
            app=spec.app,
            image=spec.image,
            strategy=spec.strategy,
            stages=stages,
            triggers=triggers,
            interval=spec.interval,
            pause_timeout=spec.pause_timeout,
            manual=spec.manual,
            min_requests=spec.analysis.min_requests,
            inconclusive_limit=spec.analysis.inconclusive_limit,
            min_coverage=spec.analysis.min_coverage,
            judge=spec.analysis.judge,
            alpha=spec.analysis.alpha,
            tolerance=spec.analysis.tolerance,
            floor=spec.analysis.floor,
            target=spec.target,
            metrics=spec.metrics,
            flags=tuple(spec.flags),
            flags_file=spec.flags_file,
            preflight=tuple(spec.preflight),
            rollback_window=spec.rollback_window,
            rollback_plan=spec.rollback_plan,
            notify=tuple(spec.notify),
            source=self.document.source,
            metric_names=tuple(dict.fromkeys(judged)),
            warnings=tuple(sorted(self.warnings, key=lambda p: p.line)),
        )


KERNEL_DIRECTORIES = ("/proc", "/sys", "/dev")
"""Files there are the kernel's interfaces: writing one does more than store text."""


def flags_file_problem(path: str) -> str | None:
    """Why a plan's flags may not be kept in `path`; None when they may.

    Brahma replaces the file whole (a rename over it), so it must be a flag file or not exist yet: never
    a directory, a device or a kernel interface, and never a file of something else (/etc/hosts, the
    plan itself by a typo). Checked when the plan is read, so a run refuses it before it starts.
    """
    from console.flags.backends import FileBackend
    from console.flags.errors import FlagFileError
    from console.flags.store import FlagStore

    real = os.path.realpath(path)
    system = next((d for d in KERNEL_DIRECTORIES if real == d or real.startswith(f"{d}/")), None)
    if system is not None:
        return f"{path} is under {system}: a kernel interface, not a flag file"
    if not os.path.exists(real):
        return None  # created, disabled, before the deploy
    if os.path.isdir(real):
        return f"{path} is a directory, not a flag file"
    if not os.path.isfile(real):
        return f"{path} is not a regular file (a device, a pipe or a socket), so it cannot be a flag file"
    try:
        FlagStore(FileBackend(path)).list()
    except FlagFileError as error:
        where = f"line {error.line}: " if error.line else ""
        return f"{path} is not a flagd flag file ({where}{error.message}): name the flag file your apps read"
    return None


def plan_from_document(document: Document, history_only: bool = False) -> RolloutPlan:
    data = document.data
    if history_only and isinstance(data, dict) and isinstance(data.get("metrics", {}), dict):
        data = {**data, "metrics": {**data.get("metrics", {}), "provider": "prometheus"}}
    written = _normalise(data)
    try:
        spec = read_plainly(PlanSpec, written)
    except Unsure:
        spec = _judged(document, written)
    return _Compiler(document, spec, pods=not history_only).compile()


def _judged(document: Document, written: Any, kind: type[Written] = PlanSpec) -> Written:  # type: ignore[assignment]
    """The document as written, read by the loader's models: PlanError with every problem they find."""
    from pydantic import ValidationError

    try:
        return _as_written(_model(kind).model_validate(written))
    except ValidationError as error:
        raise PlanError(sorted(structure_problems(document, error, _model(kind)), key=lambda p: p.line)) from None


def checked_document(kind: type[Written], document: Document) -> Written:
    """A document of another kind than a plan (a simulator's scenario), checked as a plan is: read plainly when it
    plainly is valid (plain_reading.py), else by the loader's models; PlanError with every problem they find."""
    try:
        return read_plainly(kind, document.data)
    except Unsure:
        return _judged(document, document.data, kind)


def load_plan(path: str | Path, history_only: bool = False) -> RolloutPlan:
    """The plan in a YAML or HCL file, or PlanError with every problem found. `history_only` compiles it as its
    metrics read from Prometheus history alone (a backtest): whatever the plan's target, no simulator and no pods,
    so the defaults on metrics history lacks are left out, as for any plan whose provider lacks them, and a
    limit written on one is a problem of the plan."""
    with collector_paused():
        return plan_from_document(read_document(path), history_only)


def load_plan_text(text: str | bytes, source: str = "<plan>", hcl: bool = False) -> RolloutPlan:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    with collector_paused():
        return plan_from_document(parse_document(source, raw, hcl))


__all__ = ["PlanError", "Problem", "load_plan", "load_plan_text", "parse_duration"]
